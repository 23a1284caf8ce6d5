"""What the benchmarks share: the project folder, the seeded history's first day, a clean environment
for the processes they time, one `dagster asset materialize` of trusted/tmdb, the rows a run
committed, and the side-by-side table they print.

Imported by the scripts in this folder (`from common import ...`: a script's own folder is first on
`sys.path`). It imports no lake_assets module at import time, so a script can still set
TMDB_START_DATE before the code location is imported.
"""

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The seeded raw history starts here, and so must the daily partitions (TMDB_START_DATE).
START = dt.date(2024, 1, 1)
# What points the lake, its catalog, Spark, S3 or Dagster somewhere. A benchmark sets these itself,
# so that a developer's shell never sends a timed run to another lake or catalog.
STEERING = ("LAKE_", "PYICEBERG_CATALOG__LAKE__", "AWS_", "SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "DAGSTER_", "TMDB_")
DEFINITIONS = "lake_assets.defs.definitions"


def bench_env(**values: str) -> dict[str, str]:
    """os.environ without the STEERING variables, then `values`: the environment of a timed process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
    env.update(values)
    return env


def materialize_tmdb(lake_root: Path, workdir: Path, remote: str | None, *selection: str) -> tuple[float, str]:
    """One `dagster asset materialize` process of trusted/tmdb for `selection` (`--partition D` or
    `--partition-range A...B`) on a local lake: its wall seconds and its output."""
    env = bench_env(LAKE_ROOT=str(lake_root), TMDB_START_DATE=START.isoformat())
    if remote:
        env["SPARK_REMOTE"] = remote
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", DEFINITIONS, "--select", "trusted/tmdb"]
    command += selection
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def rows_per_day(lake) -> dict[str, int]:
    """trusted/tmdb's rows per `dt` in its committed version, read with plain pyiceberg: what a run is
    checked against. A folder glob would also count retained versions and a dead writer's files."""
    from lake_assets.lib.tables.catalog import open_catalog, table_identifier  # after the script set its environment

    table = open_catalog(lake).load_table(table_identifier("trusted/tmdb"))
    rows = table.scan(selected_fields=("dt",)).to_arrow()
    counts = rows.group_by("dt").aggregate([("dt", "count")])
    return dict(zip(counts["dt"].to_pylist(), counts["dt_count"].to_pylist(), strict=True))


class RequestCounter:
    """Requests made through boto3 clients (S3, SQS), by operation; a ListObjectsV2 with a delimiter
    is counted apart."""

    def __init__(self, *clients):
        self.counts: dict[str, int] = {}
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._count)

    def _count(self, model, params, **_):
        name = model.name + (" (delimiter)" if params.get("Delimiter") else "")
        self.counts[name] = self.counts.get(name, 0) + 1

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts


class SensorTicks:
    """Ticks of the raw-arrival sensor on a real lake and instance, at simulated times 30 s apart (so
    an hourly rescan comes without waiting an hour). A call returns (seconds, result, requests by
    operation) and stores the result's events, as the daemon would."""

    def __init__(self, instance, lake, counter: RequestCounter, queue=None):
        self.instance, self.lake, self.counter, self.queue = instance, lake, counter, queue
        self.cursor: str | None = None
        self.clock = time.time()

    def __call__(self):
        from dagster import build_sensor_context

        from lake_assets.defs.sensors import TICK_INTERVAL_S, evaluate

        self.clock += TICK_INTERVAL_S
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources={"lake": self.lake})
        self.counter.take()
        started = time.monotonic()
        result = evaluate(context, self.lake, now=self.clock, queue=self.queue)
        elapsed = time.monotonic() - started
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = result.cursor
        return elapsed, result, self.counter.take()


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Cells padded to their column's width, ` | ` between columns and a `-|-` rule under the header."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
