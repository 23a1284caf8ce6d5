"""The TMDB assets' daily partitions, and the day they start."""

import datetime as dt
import functools
import logging

from dagster import DailyPartitionsDefinition

from lake_assets.defs.settings import Settings
from lake_assets.lib.errors import first_line
from lake_assets.lib.partitions import dt_folders
from lake_assets.lib.registry import RAW_TMDB

_log = logging.getLogger(__name__)


def first_partition_date(settings: Settings | None = None) -> str:
    """Where this lake's history starts, so that a day the UI calls "Missing" was really missed (TMDB
    serves only today's data). TMDB_START_DATE when set; else the earliest raw/tmdb/dt= folder of the
    lake (history landed as files counts) or today (UTC), whichever is earlier: a fresh lake starts today."""
    settings = settings or Settings.from_env()
    if settings.tmdb.start_date:
        return settings.tmdb.start_date
    from lake_assets.defs.resources.lake import lake_resource_from_env  # the resource module imports this one

    today = dt.datetime.now(dt.UTC).date().isoformat()
    try:
        lake = lake_resource_from_env(settings).process_config_and_initialize()  # resolves the EnvVar credentials
        landed = dt_folders(lake.storage("raw"), f"{RAW_TMDB.path}/", lake.layout)
    except Exception as error:  # an unreachable lake must not stop the code location from loading
        _log.warning(
            f"daily partitions start today ({today}): listing {RAW_TMDB.path}/ failed: {type(error).__name__}: {first_line(error)}"
        )
        return today
    return min(landed.keys() | {today})


@functools.cache
def _daily_partitions() -> DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, because the collector runs during the day it collects.
    return DailyPartitionsDefinition(start_date=first_partition_date(), end_offset=1, timezone="UTC")


def __getattr__(name: str):
    # `daily_partitions` is built on first use, not at import: finding its start lists the lake through
    # the lake resource, whose module imports this one.
    if name == "daily_partitions":
        return _daily_partitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
