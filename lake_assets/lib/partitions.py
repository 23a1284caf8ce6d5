"""The one rule that turns a partition key into a `dt=` path, and back.

Partition keys are UTC collection dates, `YYYY-MM-DD`.
"""

import datetime as dt
import re
from enum import StrEnum

from lake_assets.lib.storage import Storage


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


def file_path_pattern(layout: DtLayout | str = DtLayout.HIVE) -> str:
    """A regex for a data file's full path in its day's folder, or one level below it (the folder of
    the write that made it), capturing year, month and day."""
    return f"/{_SEGMENTS[DtLayout(layout)]}/([^/]+/)?[^/]+$"


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
