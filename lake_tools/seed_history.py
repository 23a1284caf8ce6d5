"""Seed a range of historical raw TMDB partitions for a demo, from the bundled offline snapshot.

    python -m lake_tools.seed_history --start 2024-01-01 --days 30      # or: make seed-history

TMDB serves only today's data, so a history has to come from somewhere else; here it is the offline
snapshot. Each day gets a different subset of the snapshot's movies (between half and all of them,
chosen from a hash of the date), so row counts differ from day to day and are the same on every
machine. A day is landed by the raw IO manager's own code, exactly as `raw/tmdb_json` lands it
(`raw/tmdb/dt=D/part-*.jsonl` and the publish protocol's `_manifest.json`), on the lake that
`LAKE_ROOT`/`LAKE_RAW_ROOT` name (a folder or S3). No materialisation is recorded: to Dagster these
files arrived from outside, which is what the raw-arrival sensor and the backfill demo start from.
"""

import argparse
import datetime as dt
import hashlib
import logging
import random
import sys

from lake_assets.assets import raw
from lake_assets.io_managers import lake_path, land_json_lines
from lake_assets.partitions import daily_partitions, dt_path
from lake_assets.resources.lake import LakeResource, lake_resource_from_env
from lake_assets.resources.tmdb import MAX_PAGE, TMDBResource

RAW_TMDB_PATH = lake_path(raw.tmdb_json)
MIN_SHARE = 0.5  # the smallest day keeps half of the snapshot's movies


def snapshot_records() -> list[dict]:
    """Every Drama/Romance movie of the bundled snapshot, through the collector's own filter."""
    quiet = logging.getLogger(f"{__name__}.snapshot")
    quiet.setLevel(logging.ERROR)  # reading the offline snapshot is the point here, not a warning
    return TMDBResource(pages=MAX_PAGE).collect(log=quiet).records


def records_for_day(records: list[dict], day: str) -> list[dict]:
    """A deterministic subset for one date: the same date always gives the same movies."""
    rng = random.Random(int.from_bytes(hashlib.sha256(day.encode()).digest()[:8], "big"))
    size = rng.randint(max(1, int(len(records) * MIN_SHARE)), len(records))
    return sorted(rng.sample(records, size), key=lambda record: record["id"])


def seed(lake: LakeResource, start: dt.date, days: int, records: list[dict] | None = None) -> dict[str, int]:
    """Land `days` daily partitions from `start`; returns {partition key: records landed}."""
    dates = [(start + dt.timedelta(days=offset)).isoformat() for offset in range(days)]
    for day in dates:
        if not daily_partitions.has_partition_key(day):
            raise ValueError(
                f"{day} is not a daily partition: they run from {daily_partitions.start:%Y-%m-%d} to today. "
                f"For history, start them earlier: export TMDB_START_DATE={start.isoformat()} (for make dev too)"
            )
    records = snapshot_records() if records is None else records
    storage = lake.storage("raw")
    landed = {}
    for day in dates:
        day_records = records_for_day(records, day)
        land_json_lines(storage, f"{RAW_TMDB_PATH}/{dt_path(day, lake.dt_layout)}", day_records)
        landed[day] = len(day_records)
    return landed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.seed_history", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, default=dt.date.fromisoformat(daily_partitions.start.strftime("%Y-%m-%d"))
    )
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    lake = lake_resource_from_env().process_config_and_initialize()  # resolves the EnvVars
    try:
        landed = seed(lake, args.start, args.days)
    except ValueError as refused:
        print(f"seed-history: {refused}", file=sys.stderr)
        return 2
    root = lake.storage("raw").uri(RAW_TMDB_PATH)
    print(f"seeded {len(landed)} day(s) of raw TMDB history under {root}: {sum(landed.values())} records")
    for day, count in landed.items():
        print(f"  dt={day}  {count:>4} records")
    first, last = min(landed), max(landed)
    print(
        "\nNext: turn on raw_arrivals_sensor in the UI (Automation), or backfill trusted/tmdb for these dates "
        f"(UI: Materialize... > partitions {first}...{last}; CLI: dagster asset materialize -m lake_assets.definitions "
        f"--select trusted/tmdb --partition-range {first}...{last})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
