"""Daily partitions of the TMDB assets, where they start, and the one rule that turns a partition key
into a `dt=` path.

Partition keys are UTC collection dates, `YYYY-MM-DD`.
"""

import datetime as dt
import functools
import logging
import os
import re
from enum import StrEnum

from dagster import DailyPartitionsDefinition
from pyspark.sql import Column
from pyspark.sql import functions as F

from lake_assets.storage import Storage

# raw/tmdb_json's folder, declared here because the partitions' start is read from it; the asset
# takes its lake_path from this name.
RAW_TMDB_PATH = "raw/tmdb"

_log = logging.getLogger(__name__)


class DtLayout(StrEnum):
    """How a partition key becomes a folder.

    `hive` (default) gives one `dt=2024-03-31` segment: the form Spark, Hive, Athena/Glue, DuckDB and
    pyarrow read back as a single `dt` column. `seed` reproduces the original design's literal
    `dt=2024/03/31`, which those engines see as nested folders, not as a `dt` column.
    """

    HIVE = "hive"
    SEED = "seed"


def dt_path(partition_key: str, layout: DtLayout | str = DtLayout.HIVE) -> str:
    """The folder of one partition, relative to its table: the only place this rule is written."""
    year, month, day = partition_key.split("-")
    if DtLayout(layout) is DtLayout.SEED:
        return f"dt={year}/{month}/{day}"
    return f"dt={year}-{month}-{day}"


def partition_key_from_path(path: str, layout: DtLayout | str = DtLayout.HIVE) -> str | None:
    """The inverse of `dt_path` for a key below a table (`dt=2024-03-31/x.jsonl` -> `2024-03-31`)."""
    match = re.match(_SEGMENTS[DtLayout(layout)] + "/", path)
    return "-".join(match.groups()) if match else None


def partition_key_column(file_path: Column, layout: DtLayout | str = DtLayout.HIVE) -> Column:
    """The same inverse as a Spark column, for a data file's full path (`_metadata.file_path`): the key
    of the partition folder the file sits in, or null. One read of many days' files then knows each
    row's day, instead of one read per day."""
    # A file sits in its day's folder, or one level below it, in the folder of the write that made it.
    pattern = f"/{_SEGMENTS[DtLayout(layout)]}/([^/]+/)?[^/]+$"
    parts = [F.regexp_extract(file_path, pattern, group) for group in (1, 2, 3)]
    return F.when(file_path.rlike(pattern), F.concat_ws("-", *parts))


# The dt= segment of each layout, as `dt_path` writes it: year, month and day captured.
_SEGMENTS = {
    DtLayout.HIVE: r"dt=(\d{4})-(\d{2})-(\d{2})",
    DtLayout.SEED: r"dt=(\d{4})/(\d{2})/(\d{2})",
}


def dt_folders(storage: Storage, table: str, layout: DtLayout | str = DtLayout.HIVE) -> dict[str, str]:
    """Partition key -> folder key of every dt= folder below the folder `table` ("raw/tmdb/"): one delimiter
    listing per folder level (hive: one request per 1,000 folders, whatever the objects inside them)."""
    levels = dt_path("2000-01-01", layout).count("/") + 1  # seed layout: dt=YYYY/MM/DD
    level = [folder for folder in storage.list_folders(table) if folder[len(table) :].startswith("dt=")]
    for _ in range(levels - 1):
        level = [child for folder in level for child in storage.list_folders(folder)]
    folders = {}
    for folder in level:
        key = partition_key_from_path(folder[len(table) :], layout)
        if key is not None and _is_date(key):
            folders[key] = folder
    return folders


def _is_date(key: str) -> bool:
    try:
        dt.date.fromisoformat(key)
    except ValueError:
        return False
    return True


def first_partition_date() -> str:
    """Where this lake's history starts, so that a day the UI calls "Missing" was really missed (TMDB
    serves only today's data). TMDB_START_DATE when set; else the earliest raw/tmdb/dt= folder of the
    lake (history landed as files counts) or today (UTC), whichever is earlier: a fresh lake starts today."""
    configured = os.environ.get("TMDB_START_DATE", "").strip()
    if configured:
        return configured
    from lake_assets.resources.lake import lake_resource_from_env  # the resource module imports this one

    today = dt.datetime.now(dt.UTC).date().isoformat()
    try:
        lake = lake_resource_from_env().process_config_and_initialize()  # resolves the EnvVar credentials
        landed = dt_folders(lake.storage("raw"), f"{RAW_TMDB_PATH}/", lake.layout)
    except Exception as error:  # an unreachable lake must not stop the code location from loading
        first_line = (str(error).strip().splitlines() or [""])[0]
        _log.warning(
            f"daily partitions start today ({today}): listing {RAW_TMDB_PATH}/ failed: {type(error).__name__}: {first_line}"
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
