"""Seed a range of historical raw TMDB partitions for a demo, from the bundled offline snapshot.

    python -m lake_tools.seed_history --start 2024-01-01 --days 30      # or: make seed-history

TMDB serves only today's data, so a history has to come from somewhere else; here it is the offline
snapshot. Each day gets a different subset of the snapshot's movies (between half and all of them,
chosen from a hash of the date), so row counts differ from day to day and are the same on every
machine. A day is landed by the raw IO manager's own code, exactly as `raw/tmdb_json` lands it
(`raw/tmdb/dt=D/part-*.jsonl` and the publish protocol's `_manifest.json`), on the lake that
`LAKE_ROOT`/`LAKE_RAW_ROOT` name (a folder or S3). No materialisation is recorded: to Dagster these
files arrived from outside, which is what the raw-arrival sensor and the backfill demo start from.
Days before the first daily partition are fine: the partitions start at the lake's earliest landed day
once the code location loads again (lake_assets/defs/partitions.py). Days after today are refused.
"""

import argparse
import datetime as dt
import hashlib
import logging
import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path

from dagster import DefaultSensorStatus

from lake_assets.defs.partitions import first_partition_date
from lake_assets.defs.resources.lake import LakeResource, lake_resource_from_env
from lake_assets.defs.resources.tmdb import TMDBResource
from lake_assets.defs.sensors import SENSOR_NAME, raw_arrivals_sensor
from lake_assets.lib.partitions import dt_path
from lake_assets.lib.raw_zone import land_json_lines
from lake_assets.lib.registry import RAW_TMDB
from lake_assets.lib.tmdb_client import MAX_PAGE
from lake_tools.devserver import PROJECT_DIR

RAW_TMDB_PATH = RAW_TMDB.path
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
    today = _today()
    if dates and dates[-1] > today:
        raise ValueError(f"{dates[-1]} is after today ({today}): history ends today at the latest")
    records = snapshot_records() if records is None else records
    storage = lake.storage("raw")
    landed = {}
    for day in dates:
        day_records = records_for_day(records, day)
        land_json_lines(storage, f"{RAW_TMDB_PATH}/{dt_path(day, lake.dt_layout)}", day_records)
        landed[day] = len(day_records)
    return landed


def next_steps(first: str, last: str, started: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """What makes the days first...last show and run in the UI of `make dev`, true for this environment;
    `started` is where the daily partitions started before they landed."""
    start = first_partition_date()
    if raw_arrivals_sensor.default_status == DefaultSensorStatus.RUNNING:
        sensor = f"{SENSOR_NAME} (running by default with make dev)"
    else:
        sensor = f"{SENSOR_NAME}, once turned on under Automation (LAKE_AUTOMATION or LAKE_RAW_SENSOR starts it stopped),"
    registers = f"{sensor} registers these days and requests trusted/tmdb for them"
    if started <= first:
        steps = [f"Next: {registers} at its next tick."]
    elif start <= first:
        steps = [
            f"Next: reload the code location in the UI (Deployment > Reload), so the daily partitions start at {start} "
            "(a make dev started after this needs no reload).",
            # The sensor ignores days outside the partitions; once they are partitions, only its full
            # listing finds files it has already seen (docs/sensor.md).
            f"Then {registers}: at its first tick if make dev starts after this, else at its hourly full listing.",
        ]
    else:
        steps = [
            f"Next: TMDB_START_DATE={environ.get('TMDB_START_DATE')} starts the partitions after {first}: unset it, so they "
            "start at the lake's first day, and reload the code location in the UI (Deployment > Reload).",
            f"Then {registers} at its hourly full listing.",
        ]
    # What the UI's instance and its Spark server are: DAGSTER_HOME of make dev, and SPARK_REMOTE when set
    # (its ;-parameters can carry a token: left to the shell, not printed).
    settings = [f"DAGSTER_HOME={PROJECT_DIR / '.dagster_home'}"]
    if environ.get("SPARK_REMOTE"):
        remote = environ["SPARK_REMOTE"]
        settings.append('SPARK_REMOTE="$SPARK_REMOTE"' if ";" in remote else f"SPARK_REMOTE={remote}")
    dagster = Path(sys.executable).parent / "dagster"
    if dagster.is_relative_to(PROJECT_DIR):
        dagster = dagster.relative_to(PROJECT_DIR)
    return [
        *steps,
        f"Or backfill now: in the UI, trusted/tmdb > Materialize... > partitions {first}...{last}; from the project folder:",
        f"  {' '.join(settings)} {dagster} asset materialize -m lake_assets.defs.definitions --select trusted/tmdb "
        f"--partition-range {first}...{last}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.seed_history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, help="the first day (default: --days before today)")
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    start = args.start or dt.date.fromisoformat(_today()) - dt.timedelta(days=args.days)
    lake = lake_resource_from_env().process_config_and_initialize()  # resolves the EnvVars
    started = first_partition_date()
    try:
        landed = seed(lake, start, args.days)
    except ValueError as refused:
        print(f"seed-history: {refused}", file=sys.stderr)
        return 2
    root = lake.storage("raw").uri(RAW_TMDB_PATH)
    print(f"seeded {len(landed)} day(s) of raw TMDB history under {root}: {sum(landed.values())} records")
    for day, count in landed.items():
        print(f"  dt={day}  {count:>4} records")
    print()
    for line in next_steps(min(landed), max(landed), started):
        print(line)
    return 0


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


if __name__ == "__main__":
    sys.exit(main())
