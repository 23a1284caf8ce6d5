"""What a trusted/tmdb run costs, side by side in one session, on one warm Spark Connect server:

1. one daily partition: the project's asset vs the toy asset (bench/toy_partition.py: read the day's
   JSON Lines, write Parquet, count), each a whole `dagster asset materialize` process, plus the
   in-run time (RUN_START to RUN_SUCCESS, from the Dagster instance);
2. history at scale: single-run backfills of 1, 365 and all days from 2024-01-01 (`--days-all`,
   default 1,063) vs one partition; the Connect server's RSS after each; the client process's peak
   RSS; the size of the run's materialisation metadata.

    .venv/bin/python bench/bench_tmdb_runs.py [--repeat 3] [--days-all 1063]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

# Before lake_assets is imported: the daily partitions of this history start in 2024.
os.environ["TMDB_START_DATE"] = "2024-01-01"

from common import DEFINITIONS, ROOT, START, bench_env  # noqa: E402
from dagster import DagsterEventType, DagsterInstance  # noqa: E402

from lake_assets.defs.resources import LakeResource  # noqa: E402
from lake_tools.devserver import SparkConnectServer  # noqa: E402
from lake_tools.processes import free_port, timed_run  # noqa: E402
from lake_tools.seed_history import seed, snapshot_records  # noqa: E402


def in_run(home: Path) -> tuple[float, int]:
    """RUN_START to RUN_SUCCESS of the latest run, and the bytes of its materialisation metadata."""
    with DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records(limit=1)
        stats = instance.get_run_stats(record.dagster_run.run_id)
        events = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        metadata = sum(len(json.dumps({k: str(v) for k, v in e.asset_materialization.metadata.items()})) for e in events)
        return stats.end_time - stats.start_time, metadata


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days-all", type=int, default=1063)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tmdb-runs-"))
    spark = SparkConnectServer(work / "spark", port=free_port())
    try:
        spark.start()
        spark.warm_up()
        lake_root, home = work / "lake", work / "home"
        home.mkdir()
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = bench_env(
            LAKE_ROOT=str(lake_root), SPARK_REMOTE=spark.remote, TMDB_START_DATE=START.isoformat(), DAGSTER_HOME=str(home)
        )
        print(f"seeding {args.days_all} days of raw history ...", file=sys.stderr, flush=True)
        landed = seed(LakeResource(root=str(lake_root)), START, args.days_all, snapshot_records())
        days = sorted(landed)
        dagster = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
        project = [*dagster, "-m", DEFINITIONS, "--select", "trusted/tmdb"]
        toy = [*dagster, "-f", str(ROOT / "bench" / "toy_partition.py"), "--select", "toy"]

        # 1. One partition, project vs toy, interleaved so that both see the same machine.
        timings: dict[str, list[tuple[float, float]]] = {"toy asset": [], "trusted/tmdb": []}
        for attempt in range(args.repeat + 1):
            day = days[100 + attempt]
            for name, command in (("toy asset", toy), ("trusted/tmdb", project)):
                seconds, _ = timed_run([*command, "--partition", day], env, work)
                if attempt:  # the first round warms the server's caches for both
                    timings[name].append((seconds, in_run(home)[0]))
        print(
            f"\n1. One daily partition ({landed[days[100]]}-{landed[days[100 + args.repeat]]} movies), warm Spark Connect, median of {args.repeat}"
        )
        print(f"{'run':<16} {'whole process s':>16} {'in-run s':>9} {'vs toy (process)':>17}")
        toy_process = statistics.median(t for t, _ in timings["toy asset"])
        for name, values in timings.items():
            process, inside = statistics.median(t for t, _ in values), statistics.median(i for _, i in values)
            print(f"{name:<16} {process:>16.2f} {inside:>9.2f} {process / toy_process:>16.2f}x")

        # 2. History at scale: one range run each.
        rows = []
        for count in (1, 365, args.days_all):
            first, last = days[0], days[count - 1]
            selection = ["--partition", first] if count == 1 else ["--partition-range", f"{first}...{last}"]
            seconds, peak = timed_run([*project, *selection], env, work)
            inside, metadata = in_run(home)
            rows.append((count, seconds, inside, peak, rss_mb(spark.pid()), metadata, sum(landed[d] for d in days[:count])))
        one = rows[0][1]
        print(f"\n2. Single-run backfills of trusted/tmdb from {days[0]} (raw history seeded from the offline snapshot)")
        print(
            f"{'days':>5} {'movies':>8} {'process s':>10} {'in-run s':>9} {'vs 1 day':>9} {'client peak MB':>15} {'Connect RSS MB':>15} {'metadata KB':>12}"
        )
        for count, seconds, inside, peak, server, metadata, movies in rows:
            print(
                f"{count:>5} {movies:>8} {seconds:>10.1f} {inside:>9.1f} {seconds / one:>8.1f}x {peak:>15} {server:>15} {metadata / 1024:>12.0f}"
            )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
