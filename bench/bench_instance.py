"""Dagster's own storage under trusted/tmdb, SQLite (make dev) vs PostgreSQL (make deploy-up), one run:

1. a one-day run and a 365-day single-run backfill on each instance, whole `dagster asset
   materialize` processes on one warm Spark Connect server: seconds, the ratio to one day, and
   launch to first step (the run's creation, with its planned events, to STEP_START);
2. where the time goes: the events a 365-day run writes, and the cost of one event written alone
   and in a batch (`store_event_batch`, what batching planned events upstream would use);
3. with 1,000 materialised days, the GraphQL queries of the UI's asset page and partitions page,
   median of 5 through `dagster-webserver`.

    .venv/bin/python bench/bench_instance.py [--repeat 3] [--days 1000]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before lake_assets is imported: the daily partitions of this history start in 2024.
os.environ["TMDB_START_DATE"] = "2024-01-01"

import requests  # noqa: E402
import yaml  # noqa: E402
from common import DEFINITIONS, ROOT, START, bench_env  # noqa: E402
from dagster import AssetKey, DagsterEventType, DagsterInstance  # noqa: E402
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent  # noqa: E402
from dagster._core.events.log import EventLogEntry  # noqa: E402

from lake_assets.defs.resources import LakeResource  # noqa: E402
from lake_tools.devserver import SparkConnectServer  # noqa: E402
from lake_tools.postgres import DURABLE_SETTINGS, Postgres  # noqa: E402
from lake_tools.processes import free_port, start_process, stop_pid, timed_run, wait_until_ready  # noqa: E402
from lake_tools.seed_history import seed, snapshot_records  # noqa: E402

KEY = {"path": ["trusted", "tmdb"]}
ASSET_PAGE = """query A($k: AssetKeyInput!) {
  assetNodeOrError(assetKey: $k) { ... on AssetNode { id description opName groupName isPartitioned
    partitionDefinition { description } automationCondition { label } } }
  assetOrError(assetKey: $k) { ... on Asset { assetMaterializations(limit: 100) {
    runId partition timestamp metadataEntries { label } } } } }"""
PARTITIONS_PAGE = """query P($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
  partitionKeysByDimension { name partitionKeys }
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
  partitionStats { numMaterialized numPartitions numFailed numMaterializing } } } }"""


def instance_yaml(postgres: Postgres | None) -> dict:
    """The development instance, with PostgreSQL storage (the deployment's, fsync on) when given."""
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    if postgres:
        config["storage"] = {"postgres": {"postgres_url": postgres.uri(driver="postgresql+psycopg2")}}
    return config


def launch_and_run(home: Path) -> tuple[float, float, int]:
    """The latest run: its creation to its first STEP_START, RUN_START to RUN_SUCCESS, its events."""
    with DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records(limit=1)
        run_id = record.dagster_run.run_id
        events = instance.all_logs(run_id)
        step = min(e.timestamp for e in events if e.dagster_event_type == DagsterEventType.STEP_START)
        stats = instance.get_run_stats(run_id)
        return step - record.create_timestamp.timestamp(), stats.end_time - stats.start_time, len(events)


def event_cost_ms(home: Path, count: int = 300) -> tuple[float, float]:
    """Milliseconds per planned-materialisation event, stored one at a time and as one batch (the
    only kinds Dagster batches are asset events), in a throwaway run."""
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.create_run_for_job(job_def=_empty_job(), run_id=None)

        def entry(n: int) -> EventLogEntry:  # a planned materialisation: what a backfill writes per day
            data = AssetMaterializationPlannedData(asset_key=AssetKey(["bench"]), partition=f"{n:04d}")
            event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value, "bench", event_specific_data=data)
            return EventLogEntry(
                error_info=None, level=20, user_message="", run_id=run.run_id, timestamp=time.time(), dagster_event=event
            )

        started = time.perf_counter()
        for n in range(count):
            instance.event_log_storage.store_event(entry(n))
        alone = (time.perf_counter() - started) * 1000 / count
        started = time.perf_counter()
        instance.event_log_storage.store_event_batch([entry(n) for n in range(count)])
        batched = (time.perf_counter() - started) * 1000 / count
        instance.delete_run(run.run_id)
        return alone, batched


def _empty_job():
    from dagster import job, op

    @op
    def nothing():
        return None

    @job
    def bench_events():
        nothing()

    return bench_events


def ui_timings(home: Path, env: dict[str, str], work: Path, repeat: int = 5) -> dict[str, float]:
    """Median seconds of the asset page's and the partitions page's queries, through a webserver."""
    port = free_port()
    webserver = start_process(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", DEFINITIONS, "-h", "127.0.0.1", "-p", str(port)],
        output=work / f"webserver-{home.name}.log",
        env={**env, "DAGSTER_HOME": str(home)},
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        wait_until_ready(
            "the webserver",
            lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok,
            deadline=time.monotonic() + 120,
        )
        timings = {}
        for name, query in (("asset page", ASSET_PAGE), ("partitions page", PARTITIONS_PAGE)):
            seconds = []
            for _ in range(repeat + 1):  # the first loads the code location's caches
                started = time.perf_counter()
                answer = requests.post(url, json={"query": query, "variables": {"k": KEY}}, timeout=120)
                seconds.append(time.perf_counter() - started)
                assert answer.ok and not answer.json().get("errors"), answer.text[:500]
            timings[name] = statistics.median(seconds[1:])
        return timings
    finally:
        stop_pid(webserver.pid, 30, kill_group=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-instance-"))
    spark = SparkConnectServer(work / "spark", port=free_port())
    postgres = Postgres(work / "pg", settings=DURABLE_SETTINGS)
    try:
        spark.start()
        postgres.start()
        spark.warm_up()
        print(f"seeding {args.days} days of raw history ...", file=sys.stderr, flush=True)
        days = sorted(seed(LakeResource(root=str(work / "lake")), START, args.days, snapshot_records()))
        command = [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            DEFINITIONS,
            "--select",
            "trusted/tmdb",
        ]
        results, events, ui = {}, {}, {}
        for name, server in (("SQLite", None), ("PostgreSQL", postgres)):
            home = work / f"home-{name.lower()}"
            home.mkdir()
            (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(server)))
            env = bench_env(
                LAKE_ROOT=str(work / "lake"), SPARK_REMOTE=spark.remote, TMDB_START_DATE=START.isoformat(), DAGSTER_HOME=str(home)
            )
            events[name] = event_cost_ms(home)
            timed_run([*command, "--partition", days[-1]], env, work)  # warms the server for this instance
            one = []
            for attempt in range(args.repeat):
                seconds, _ = timed_run([*command, "--partition", days[attempt]], env, work)
                one.append((seconds, *launch_and_run(home)))
            seconds, _ = timed_run([*command, "--partition-range", f"{days[0]}...{days[364]}"], env, work)
            year = (seconds, *launch_and_run(home))
            results[name] = ([statistics.median(column) for column in zip(*one, strict=True)], year)
            timed_run([*command, "--partition-range", f"{days[0]}...{days[args.days - 1]}"], env, work)
            ui[name] = ui_timings(home, env, work)

        print("\n1. trusted/tmdb, whole `dagster asset materialize` processes, warm Spark Connect")
        print(
            f"{'instance':<11} {'run':<9} {'process s':>9} {'vs 1 day':>9} {'launch to step s':>17} {'in-run s':>9} {'events':>7}"
        )
        for name, (one, year) in results.items():
            for label, row in ((f"1 day ({args.repeat})", one), ("365 days", year)):
                print(
                    f"{name:<11} {label:<9} {row[0]:>9.1f} {row[0] / one[0]:>8.1f}x {row[1]:>17.2f} {row[2]:>9.1f} {row[3]:>7.0f}"
                )
        print("   goals: 365 days <= 4x one day on PostgreSQL; launch to first step <= 1 s on PostgreSQL")

        print("\n2. One event written by Dagster's event log, ms (300 planned materialisations)")
        print(f"{'instance':<11} {'alone':>7} {'batched':>8} {'365-day run, alone s':>21}")
        for name, (alone, batched) in events.items():
            print(f"{name:<11} {alone:>7.2f} {batched:>8.2f} {results[name][1][3] * alone / 1000:>21.1f}")

        print(f"\n3. The UI's queries with {args.days} materialised days, median of 5, s (goal <= 1 s)")
        print(f"{'instance':<11} {'asset page':>11} {'partitions page':>16}")
        for name, timings in ui.items():
            print(f"{name:<11} {timings['asset page']:>11.3f} {timings['partitions page']:>16.3f}")
    finally:
        spark.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
