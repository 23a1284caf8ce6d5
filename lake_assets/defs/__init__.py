"""Dagster definitions: assets, checks, sensors, schedules, automation, alerts, jobs, resources and IO
managers. Everything that imports Dagster lives here; the work itself is in `lake_assets.lib`."""
