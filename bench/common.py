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


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Cells padded to their column's width, ` | ` between columns and a `-|-` rule under the header."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
