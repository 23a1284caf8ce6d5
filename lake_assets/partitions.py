"""Daily partitions of the TMDB assets, and the one rule that turns a partition key into a `dt=` path.

Partition keys are UTC collection dates, `YYYY-MM-DD`.
"""

import os
import re
from enum import StrEnum

from dagster import DailyPartitionsDefinition
from pyspark.sql import Column
from pyspark.sql import functions as F

# The first day this lake collected, so that a day the UI calls "missing" was really missed: TMDB serves
# only today's data, so days before the first collection can never be filled. Set it earlier only when
# history arrives as files (a migration, or `make seed-history` for a demo).
FIRST_COLLECTION_DATE = "2026-12-01"
TMDB_START_DATE = os.environ.get("TMDB_START_DATE") or FIRST_COLLECTION_DATE

# end_offset=1: today's partition exists, because the collector runs during the day it collects.
daily_partitions = DailyPartitionsDefinition(start_date=TMDB_START_DATE, end_offset=1, timezone="UTC")


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
    pattern = f"/{_SEGMENTS[DtLayout(layout)]}/[^/]+$"
    parts = [F.regexp_extract(file_path, pattern, group) for group in (1, 2, 3)]
    return F.when(file_path.rlike(pattern), F.concat_ws("-", *parts))


# The dt= segment of each layout, as `dt_path` writes it: year, month and day captured.
_SEGMENTS = {
    DtLayout.HIVE: r"dt=(\d{4})-(\d{2})-(\d{2})",
    DtLayout.SEED: r"dt=(\d{4})/(\d{2})/(\d{2})",
}
