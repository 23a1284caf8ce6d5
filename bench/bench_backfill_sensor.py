"""Backfill shape, Spark session kind and sensor listing cost, side by side in one run:

1. trusted/tmdb over 90 seeded days: one single-run backfill (`--partition-range`, what
   `BackfillPolicy.single_run()` gives) vs 90 runs of one partition (a sample of them timed, the
   rest extrapolated), each a whole `dagster asset materialize` process against a warm Spark Connect
   server;
2. one daily partition's run: a classic Spark session in the run process vs the warm Connect server;
3. raw_arrivals_sensor on 20,000 objects in a SeaweedFS bucket, before (no per-tick listing of the
   dt= folders, emulated) and after, side by side: its first tick (full listing), a tick with nothing
   new (time and S3 requests), how many ticks until 3 older date folders landed at once are requested,
   and until a file added to an existing old folder is; plus `dagster_aws.s3.sensor.get_objects` on
   the same prefix (which lists the whole prefix on every call).

    .venv/bin/python bench/bench_backfill_sensor.py [--days 90] [--sample-runs 5] [--objects 20000] [--only sensor]
"""

import argparse
import contextlib
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The seeded history starts in 2024: the daily partitions must too, here and in every `dagster` process
# this benchmark starts (set before lake_assets is imported, as the tests' conftest does).
os.environ["TMDB_START_DATE"] = "2024-01-01"

from common import START, RequestCounter, SensorTicks, materialize_tmdb, print_table, rows_per_day
from dagster import instance_for_test  # noqa: E402
from dagster_aws.s3.sensor import get_objects

from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.sensors import MODIFIED_RESOLUTION_S, TICK_INTERVAL_S
from lake_assets.lib.raw_listing import RESCAN_INTERVAL_S
from lake_assets.lib.storage.s3 import S3Storage
from lake_tools.devserver import SparkConnectServer
from lake_tools.processes import free_port
from lake_tools.seaweedfs import REGION, SeaweedS3
from lake_tools.seed_history import seed, snapshot_records


def materialize(lake_root: Path, workdir: Path, remote: str | None, *selection: str) -> float:
    """One `dagster asset materialize` process for trusted/tmdb; its wall time."""
    return materialize_tmdb(lake_root, workdir, remote, *selection)[0]


def bench_spark(days: int, sample_runs: int, work: Path) -> list[tuple[str, str, str]]:
    lake_root = work / "lake"
    landed = seed(LakeResource(root=str(lake_root)), START, days, snapshot_records())
    keys = sorted(landed)
    spark = SparkConnectServer(work / "spark", port=free_port())
    spark.start()
    try:
        warm = spark.warm_up()
        single = materialize(lake_root, work, spark.remote, "--partition-range", f"{keys[0]}...{keys[-1]}")
        assert rows_per_day(LakeResource(root=str(lake_root))) == landed, "the range run wrote other row counts than were seeded"
        per_run = [materialize(lake_root, work, spark.remote, "--partition", key) for key in keys[:sample_runs]]
        connect = [materialize(lake_root, work, spark.remote, "--partition", keys[0]) for _ in range(2)]
    finally:
        spark.stop()
    classic = [materialize(lake_root, work, None, "--partition", keys[0]) for _ in range(2)]
    mean = statistics.mean(per_run)
    return [
        (
            f"trusted/tmdb, {days} days, one range run (single-run policy)",
            f"{single:.1f} s",
            f"{sum(landed.values())} rows, Spark Connect",
        ),
        (
            f"trusted/tmdb, {days} days, {days} one-partition runs",
            f"{mean * days:.0f} s",
            f"extrapolated: {sample_runs} runs timed, mean {mean:.1f} s each",
        ),
        ("one daily partition, classic Spark session", f"{statistics.mean(classic):.1f} s", "mean of 2 runs, whole process"),
        (
            "one daily partition, warm Spark Connect",
            f"{statistics.mean(connect):.1f} s",
            f"mean of 2 runs; server warm-up took {warm:.0f} s once",
        ),
    ]


@contextlib.contextmanager
def without_folder_listing():
    """The sensor as it was before the per-tick folder listing: no folder is ever new to it."""
    original = S3Storage.list_folders
    S3Storage.list_folders = lambda self, prefix: []
    try:
        yield
    finally:
        S3Storage.list_folders = original


def _sensor_run(lake: LakeResource, client, bucket: str, days: int, counter: RequestCounter) -> dict[str, str]:
    """One sensor's life on the filled bucket: the first tick, idle ticks, a history drop of 3 older
    days, a file added to an existing old folder. Ticks run at simulated times 30 s apart (the
    storage is real), so the rescan an hour later is reached without waiting an hour."""
    figures = {}
    with instance_for_test() as instance:
        tick = SensorTicks(instance, lake, counter)

        elapsed, result, requests = tick()
        figures["first"] = f"{elapsed:.2f} s, {sum(requests.values())} req"
        figures["first_note"] = f"registers {len(result.asset_events)} partitions"
        idle = [tick() for _ in range(5)]
        figures["idle"] = (
            f"{statistics.median(t[0] for t in idle) * 1000:.0f} ms, {sum(idle[-1][2].values())} req "
            f"({', '.join(f'{n} {k}' for k, n in sorted(idle[-1][2].items()))})"
        )

        older = [(START + dt.timedelta(days=d)).isoformat() for d in (days // 2, days // 2 + 1, days // 3)]
        for day in older:
            client.put_object(Bucket=bucket, Key=f"lake/raw/tmdb/dt={day}/part-00000.jsonl", Body=b'{"id": 3}\n')
        time.sleep(MODIFIED_RESOLUTION_S)
        figures["drop"] = _ticks_until(tick, set(older), limit=3 * RESCAN_INTERVAL_S // TICK_INTERVAL_S)

        late_day = (START + dt.timedelta(days=days // 4)).isoformat()
        client.put_object(Bucket=bucket, Key=f"lake/raw/tmdb/dt={late_day}/late.jsonl", Body=b'{"id": 4}\n')
        time.sleep(MODIFIED_RESOLUTION_S)
        figures["late"] = _ticks_until(tick, {late_day}, limit=3 * RESCAN_INTERVAL_S // TICK_INTERVAL_S)
    return figures


def _ticks_until(tick, partitions: set[str], limit: int) -> str:
    """Ticks until every partition was registered (and its trusted run requested), as ticks and as
    minutes of 30-second ticks."""
    left = set(partitions)
    for n in range(1, limit + 1):
        _, result, _ = tick()
        left -= {e.partition for e in result.asset_events}
        if not left:
            return f"{n} tick{'s' if n > 1 else ''} (~{n * TICK_INTERVAL_S / 60:.1f} min)"
    return f"not within {limit} ticks"


def bench_sensor(objects: int, work: Path) -> list[tuple[str, str, str, str]]:
    per_day = 100
    days = objects // per_day
    dropped = {days // 2, days // 2 + 1, days // 3}  # the history drop lands after the first tick
    keys = [
        f"lake/raw/tmdb/dt={(START + dt.timedelta(days=d)).isoformat()}/part-{n:05d}.jsonl"
        for d in range(days)
        for n in range(per_day)
        if d not in dropped
    ]
    figures = {}
    with SeaweedS3(work / "seaweedfs") as server:
        os.environ.update(server.env())
        client = server.boto3_client(max_pool_connections=32)
        for variant in ("before", "after"):
            bucket = f"bench-raw-{variant}"
            server.create_bucket(bucket)
            started = time.monotonic()
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda key, b=bucket: client.put_object(Bucket=b, Key=key, Body=b'{"id": 1}\n'), keys))
            fill = time.monotonic() - started
            time.sleep(MODIFIED_RESOLUTION_S)
            lake = LakeResource(
                root=f"s3://{bucket}/lake", endpoint_url=server.endpoint_url, region_name=REGION, s3_path_style=True
            )
            counter = RequestCounter(lake.s3_client())
            with without_folder_listing() if variant == "before" else contextlib.nullcontext():
                figures[variant] = _sensor_run(lake, client, bucket, days, counter)
            if variant == "after":
                timings, found = [], []
                for _ in range(3):
                    started = time.monotonic()
                    found = get_objects(bucket, prefix="lake/raw/tmdb/", since_key=keys[-1], client=client)
                    timings.append(time.monotonic() - started)
            server.delete_bucket(bucket)
    before, after = figures["before"], figures["after"]
    return [
        (
            f"first tick, {len(keys):,} objects (full listing)",
            before["first"],
            after["first"],
            f"{after['first_note']}; a bucket fill took {fill:.0f} s",
        ),
        ("tick, nothing new (median of 5)", before["idle"], after["idle"], "after: + 1 delimiter listing of the dt= folders"),
        ("3 older date folders land: ticks until requested", before["drop"], after["drop"], "before: the hourly rescan"),
        ("a file added to an existing old folder", before["late"], after["late"], "both: the hourly rescan"),
        (
            "dagster_aws get_objects, same prefix (since_key)",
            f"{statistics.median(timings):.2f} s",
            "",
            f"median of 3; lists all {len(keys) + 4:,} keys to return {len(found)}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sample-runs", type=int, default=5)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--only", choices=["spark", "sensor"], help="run one of the two benchmarks")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-sensor-"))
    try:
        spark_rows = bench_spark(args.days, args.sample_runs, work) if args.only != "sensor" else []
        sensor_rows = bench_sensor(args.objects, work) if args.only != "spark" else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if spark_rows:
        print()
        print_table(("measurement", "time", "notes"), spark_rows)
        print(f"\nmachine: {os.cpu_count()} cores; each run is a whole `dagster asset materialize` process (start-up included)")
    if sensor_rows:
        print()
        print_table(
            ("raw_arrivals_sensor on SeaweedFS", "before: no folder listing", "after: folders listed each tick", "notes"),
            sensor_rows,
        )
        print(f"\nticks at simulated times {TICK_INTERVAL_S} s apart (the rescan is hourly); req = S3 requests in the tick")


if __name__ == "__main__":
    main()
