"""The code location: the four lake assets (the trusted ones carry their contract checks), the raw-arrival
sensor, the daily schedule, declarative automation, freshness, alerts, the tables' maintenance and
rollback jobs, and their resources.

Resources are built from the environment (see the README's configuration table); secrets go
through `EnvVar`, so they are read at run time and never stored in the definitions.
"""

from dagster import Definitions, in_process_executor

from lake_assets.defs.alerts import ALERT_SENSORS
from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.automation import automated, automation_sensor, daily_tmdb_collection, deadline_sensor
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.io_managers.trusted import TrustedParquetIOManager
from lake_assets.defs.resources import (
    alert_webhook_from_env,
    catalog_resource_from_env,
    lake_resource_from_env,
    spark_resource_from_env,
    tmdb_resource_from_env,
)
from lake_assets.defs.sensors import raw_arrivals_sensor
from lake_assets.defs.settings import Settings
from lake_assets.defs.table_jobs import JOBS, SCHEDULES

# automated(): the automation conditions and freshness policies, kept in automation.py.
ASSETS = automated([raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb])


def resources_from_env(settings: Settings | None = None) -> dict:
    """Every resource, from one reading of the environment."""
    settings = settings or Settings.from_env()
    lake = lake_resource_from_env(settings)
    spark = spark_resource_from_env(settings)
    catalog = catalog_resource_from_env(settings)
    return {
        "lake": lake,
        "spark": spark,
        "tmdb": tmdb_resource_from_env(settings),
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark, catalog=catalog),
        "catalog": catalog,
        "webhook": alert_webhook_from_env(settings),
    }


defs = Definitions(
    assets=ASSETS,
    jobs=JOBS,
    schedules=[daily_tmdb_collection, *SCHEDULES],
    sensors=[raw_arrivals_sensor, automation_sensor, deadline_sensor, *ALERT_SENSORS],
    resources=resources_from_env(),
    # All steps of a run share one process, so one Spark session: a step process of its own
    # costs ~4 s of imports plus, on a classic session, ~6 s of JVM start, and 2 cores gain
    # nothing from running a raw step and a check in parallel.
    executor=in_process_executor,
)
