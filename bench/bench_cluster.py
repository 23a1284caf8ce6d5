"""trusted/tmdb's 365-day backfill on a Spark standalone cluster of 1 worker vs 2 workers, with the
local[2] Connect server of `make dev` as the baseline, side by side in one run.

Each configuration gets a fresh Connect server (for the cluster ones attached to a fresh master with
workers of 1 core and 1 GiB, an executor of 768 MiB on each), warmed up with one small job; then
`--runs` whole `dagster asset materialize --partition-range` processes of the range (one run:
BackfillPolicy.single_run()), each checked for exact rows per day with DuckDB. "step" is the
trusted/tmdb step alone as Dagster timed it (the Spark work plus the publish); "wall" adds the
process start and Dagster's own work.

    .venv/bin/python bench/bench_cluster.py [--days 365] [--runs 2]
"""

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ["TMDB_START_DATE"] = "2024-01-01"  # before lake_assets is imported: the daily partitions start here
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

import requests  # noqa: E402
from common import START, materialize_tmdb, print_table, rows_per_day  # noqa: E402

from lake_assets.defs.resources.lake import LakeResource  # noqa: E402
from lake_tools.cluster import StandaloneCluster  # noqa: E402
from lake_tools.devserver import SparkConnectServer  # noqa: E402
from lake_tools.processes import free_port, reap, start_watchdog  # noqa: E402
from lake_tools.seed_history import seed  # noqa: E402

_STEP_TIME = re.compile(r'Finished execution of step "trusted__tmdb" in (\S+)\.')
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def materialize(lake_root: Path, workdir: Path, remote: str, first: str, last: str) -> tuple[float, float]:
    """One `dagster asset materialize` process over the range: (wall seconds, step seconds)."""
    wall, output = materialize_tmdb(lake_root, workdir, remote, "--partition-range", f"{first}...{last}")
    found = _STEP_TIME.search(output)
    if found is None:
        raise RuntimeError("no step duration in the run's output")
    # Dagster's format_duration: "950ms", "12.3s", "1m5s"
    step = sum(float(n) * _UNIT_S[unit] for n, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", found.group(1)))
    return wall, step


def executor_busy_s(ui: str) -> tuple[float, int]:
    """(seconds of task time, tasks) summed over every executor, from the driver's REST API."""
    busy, tasks = 0, 0
    for app in requests.get(f"{ui}/api/v1/applications", timeout=60).json():
        for executor in requests.get(f"{ui}/api/v1/applications/{app['id']}/allexecutors", timeout=60).json():
            busy += executor["totalDuration"]
            tasks += executor["totalTasks"]
    return busy / 1000, tasks


def bench(label: str, workers: int | None, work: Path, lake_root: Path, landed: dict[str, int], runs: int) -> dict:
    """One configuration: `workers` None is the local[2] Connect server."""
    name = f"workers-{workers}" if workers else "local"
    cluster = StandaloneCluster(work / name / "cluster", workers=workers) if workers else None
    ui_port = free_port()
    started = time.monotonic()
    watcher = None
    if cluster is not None:
        cluster.start()
        spark = cluster.connect_server(work / name / "spark", port=free_port(), ui_port=ui_port)
    else:
        ui = {"spark.ui.enabled": "true", "spark.ui.port": str(ui_port)}  # for its REST API, as on the cluster
        spark = SparkConnectServer(work / name / "spark", port=free_port(), conf=ui)
    try:
        spark.start()
        watcher = start_watchdog(groups=list(cluster.pids().values()) if cluster else [], pids=[spark.pid()])
        if cluster is not None:
            cluster.wait_for_executors()
        up = time.monotonic() - started
        warm = spark.warm_up()
        keys = sorted(landed)
        walls, steps, busy, tasks = [], [], [], {}
        ui = f"http://127.0.0.1:{ui_port}"
        for _ in range(runs):
            before = cluster.tasks_per_worker(ui) if cluster else {}
            busy_before = executor_busy_s(ui)
            wall, step = materialize(lake_root, work, spark.remote, keys[0], keys[-1])
            busy_after = executor_busy_s(ui)
            busy.append((busy_after[0] - busy_before[0], busy_after[1] - busy_before[1]))
            assert rows_per_day(LakeResource(root=str(lake_root))) == landed, (
                f"{label}: the run wrote other row counts than were seeded"
            )
            walls.append(wall)
            steps.append(step)
            if cluster is not None:
                after = cluster.tasks_per_worker(ui)
                tasks = {where: after[where] - before.get(where, 0) for where in after if where != "elsewhere"}
                assert after.get("elsewhere", 0) == before.get("elsewhere", 0), "tasks ran outside the workers"
    finally:
        spark.stop()
        if cluster is not None:
            cluster.stop()
        reap(watcher)
    return {"label": label, "up": up, "warm": warm, "walls": walls, "steps": steps, "busy": busy, "tasks": sorted(tasks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        lake_root = work / "lake"
        landed = seed(LakeResource(root=str(lake_root)), START, args.days)
        raw_mb = sum(p.stat().st_size for p in (lake_root / "raw").rglob("*.jsonl")) / 1e6
        results = [
            bench("local[2] Connect server (baseline)", None, work, lake_root, landed, args.runs),
            bench("standalone, 1 worker x 1 core", 1, work, lake_root, landed, args.runs),
            bench("standalone, 2 workers x 1 core", 2, work, lake_root, landed, args.runs),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_wall, base_step = statistics.mean(results[0]["walls"]), statistics.mean(results[0]["steps"])
    header = (
        "configuration",
        "wall s (each run)",
        "step s",
        "step vs baseline",
        "task time s (tasks)",
        "tasks per worker",
        "start + warm-up s",
    )
    rows = [
        (
            r["label"],
            f"{statistics.mean(r['walls']):.1f} ({', '.join(f'{w:.1f}' for w in r['walls'])})",
            f"{statistics.mean(r['steps']):.1f}",
            f"{statistics.mean(r['steps']) / base_step:.2f}x",
            f"{statistics.mean(b for b, _ in r['busy']):.0f} ({r['busy'][-1][1]})",
            " + ".join(str(t) for t in r["tasks"]) or "-",
            f"{r['up']:.0f} + {r['warm']:.0f}",
        )
        for r in results
    ]
    print(f"\ntrusted/tmdb, one range run of {args.days} days ({sum(landed.values()):,} rows, {raw_mb:.0f} MB of raw JSON)")
    print_table(header, rows)
    print(
        f"\nbaseline wall {base_wall:.1f} s; machine: {os.cpu_count()} cores shared by every JVM; each run is a whole "
        "`dagster asset materialize` process; workers 1 GiB, executors 768 MiB, 1 core each; task time: the "
        "executors' summed task durations per run (driver REST API), tasks of the last run; tasks per worker: last run"
    )


if __name__ == "__main__":
    main()
