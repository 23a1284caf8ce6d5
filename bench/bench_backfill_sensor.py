"""Backfill shape, Spark session kind and sensor listing cost, side by side in one run:

1. trusted/tmdb over 90 seeded days: one single-run backfill (`--partition-range`, what
   `BackfillPolicy.single_run()` gives) vs 90 runs of one partition (a sample of them timed, the
   rest extrapolated), each a whole `dagster asset materialize` process against a warm Spark Connect
   server;
2. one daily partition's run: a classic Spark session in the run process vs the warm Connect server;
3. raw_arrivals_sensor on 20,000 objects in a SeaweedFS bucket: its first tick (full listing), a tick
   with nothing new, a tick with 2 new objects, vs `dagster_aws.s3.sensor.get_objects` on the same
   prefix (which lists the whole prefix on every call).

    .venv/bin/python bench/bench_backfill_sensor.py [--days 90] [--sample-runs 5] [--objects 20000]
"""

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
from dagster import build_sensor_context, instance_for_test
from dagster_aws.s3.sensor import get_objects

from lake_assets.resources.lake import LakeResource
from lake_assets.sensors import MODIFIED_RESOLUTION_S, raw_arrivals_sensor
from lake_tools.devserver import SparkConnectServer
from lake_tools.processes import free_port
from lake_tools.seaweedfs import REGION, SeaweedS3
from lake_tools.seed_history import seed, snapshot_records

ROOT = Path(__file__).resolve().parents[1]

START = dt.date(2024, 1, 1)


def materialize(lake_root: Path, workdir: Path, remote: str | None, *selection: str) -> float:
    """One `dagster asset materialize` process for trusted/tmdb; its wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LAKE_", "SPARK_REMOTE", "TMDB_"))}
    env["LAKE_ROOT"] = str(lake_root)
    if remote:
        env["SPARK_REMOTE"] = remote
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "lake_assets.definitions",
        "--select",
        "trusted/tmdb",
        *selection,
    ]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def trusted_rows(lake_root: Path) -> dict[str, int]:
    pattern = lake_root / "trusted" / "tmdb" / "*" / "*.parquet"
    return {
        str(d): n
        for d, n in duckdb.sql(
            f"select dt, count(*) from read_parquet('{pattern}', hive_partitioning=true) group by dt"
        ).fetchall()
    }


def bench_spark(days: int, sample_runs: int, work: Path) -> list[tuple[str, str, str]]:
    lake_root = work / "lake"
    landed = seed(LakeResource(root=str(lake_root)), START, days, snapshot_records())
    keys = sorted(landed)
    spark = SparkConnectServer(work / "spark", port=free_port())
    spark.start()
    try:
        warm = spark.warm_up()
        single = materialize(lake_root, work, spark.remote, "--partition-range", f"{keys[0]}...{keys[-1]}")
        assert trusted_rows(lake_root) == landed, "the range run wrote other row counts than were seeded"
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


def bench_sensor(objects: int, work: Path) -> list[tuple[str, str, str]]:
    per_day = 100
    days = objects // per_day
    with SeaweedS3(work / "seaweedfs") as server:
        bucket = "bench-raw"
        server.create_bucket(bucket)
        os.environ.update(server.env())
        client = server.boto3_client(max_pool_connections=32)
        keys = [
            f"lake/raw/tmdb/dt={(START + dt.timedelta(days=d)).isoformat()}/part-{n:05d}.jsonl"
            for d in range(days)
            for n in range(per_day)
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b'{"id": 1}\n'), keys))
        fill = time.monotonic() - started
        time.sleep(MODIFIED_RESOLUTION_S)
        lake = LakeResource(root=f"s3://{bucket}/lake", endpoint_url=server.endpoint_url, region_name=REGION, s3_path_style=True)

        with instance_for_test() as instance:
            cursor = None

            def tick() -> tuple[float, object]:
                nonlocal cursor
                context = build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake})
                started = time.monotonic()
                result = raw_arrivals_sensor(context)
                elapsed = time.monotonic() - started
                for event in result.asset_events:
                    instance.report_runless_asset_event(event)
                cursor = result.cursor
                return elapsed, result

            first, result = tick()
            registered = len(result.asset_events)
            idle = statistics.median(tick()[0] for _ in range(5))
            new_day = (START + dt.timedelta(days=days)).isoformat()
            for name in ("a", "b"):
                client.put_object(Bucket=bucket, Key=f"lake/raw/tmdb/dt={new_day}/{name}.jsonl", Body=b'{"id": 2}\n')
            time.sleep(MODIFIED_RESOLUTION_S)
            new, result = tick()
            assert [e.partition for e in result.asset_events] == [new_day]

        since = keys[-1]
        timings, found = [], None
        for _ in range(3):
            started = time.monotonic()
            found = get_objects(bucket, prefix="lake/raw/tmdb/", since_key=since, client=client)
            timings.append(time.monotonic() - started)
        server.delete_bucket(bucket)
    return [
        (
            f"sensor tick, first (full listing of {objects:,} objects)",
            f"{first:.2f} s",
            f"registers {registered} partitions, one range run; fill took {fill:.0f} s",
        ),
        ("sensor tick, nothing new", f"{idle * 1000:.0f} ms", "median of 5: 1 incremental + 3 small listings"),
        ("sensor tick, 2 new objects", f"{new * 1000:.0f} ms", "lists only the 2 new keys beyond its high-water mark"),
        (
            "dagster_aws get_objects, same prefix (since_key)",
            f"{statistics.median(timings):.2f} s",
            f"median of 3; lists all {objects + 2:,} keys to return {len(found)}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sample-runs", type=int, default=5)
    parser.add_argument("--objects", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-sensor-"))
    try:
        rows = bench_spark(args.days, args.sample_runs, work) + bench_sensor(args.objects, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    header = ("measurement", "time", "notes")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"\nmachine: {os.cpu_count()} cores; each run is a whole `dagster asset materialize` process (start-up included)")


if __name__ == "__main__":
    main()
