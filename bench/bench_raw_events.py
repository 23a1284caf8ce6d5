"""The raw-arrival sensor reading S3 events (SQS) vs listing the bucket, side by side, at 1,000 and
100,000 raw objects (1,000 days): what a tick with nothing new costs, how many ticks a changed file
in a day 90 days old takes to be requested and how many runs it gets, and how many runs 30 days
re-landed with identical bytes get.

The objects live on SeaweedFS (as in the other S3 benchmarks). SeaweedFS sends no S3 notifications,
so the benchmark puts on moto's SQS the message S3 would send for each object it writes (the tests
run moto's own S3 notifications). Ticks run at simulated times 30 s apart, so the hourly rescan is
reached without waiting an hour.

    .venv/bin/python bench/bench_raw_events.py [--sizes 1000,100000]
"""

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ["TMDB_START_DATE"] = "2024-01-01"  # the days below start there, and so must the partitions

from common import START, RequestCounter, SensorTicks, print_table
from dagster import instance_for_test

from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.sensors import MODIFIED_RESOLUTION_S, TICK_INTERVAL_S
from lake_assets.lib.raw_listing import RESCAN_INTERVAL_S
from lake_tools.moto_glue import DEV_CREDENTIALS, MotoGlue
from lake_tools.seaweedfs import REGION, SeaweedS3

DAYS = 1000
AGE = 90  # the changed day is this many days before the newest


def _key(day: int, part: int) -> str:
    return f"lake/raw/tmdb/dt={(START + dt.timedelta(days=day)).isoformat()}/part-{part:05d}.jsonl"


def _notify(sqs, url: str, bucket: str, keys: list[str]) -> None:
    """What S3 sends for each put: one message, one record, the key URL-encoded."""
    from urllib.parse import quote_plus

    def body(key: str) -> str:
        record = {
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
        }
        return json.dumps({"Records": [record]})

    for start in range(0, len(keys), 10):
        entries = [{"Id": str(n), "MessageBody": body(k)} for n, k in enumerate(keys[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def _life(lake: LakeResource, s3, sqs, url: str | None, bucket: str, per_day: int) -> dict[str, str]:
    """One sensor's life on the filled bucket, in listing mode (url None) or event mode."""
    figures = {}
    queue = lake.raw_events()
    counter = RequestCounter(lake.s3_client(), *([queue.client] if queue else []))
    with instance_for_test() as instance:
        tick = SensorTicks(instance, lake, counter, queue)

        elapsed, result, _ = tick()
        figures["first"] = f"{elapsed:.1f} s, {len(result.asset_events)} days"
        idle = [tick() for _ in range(5)]
        figures["idle"] = f"{statistics.median(t[0] for t in idle) * 1000:.0f} ms, {sum(idle[-1][2].values())} req"

        changed = _key(DAYS - 1 - AGE, 0)
        s3.put_object(Bucket=bucket, Key=changed, Body=b'{"id": 2, "changed": true}\n')
        if url:
            _notify(sqs, url, bucket, [changed])
        time.sleep(MODIFIED_RESOLUTION_S)
        runs, ticks, cost = [], 0, ""
        while not runs and ticks < 2 * RESCAN_INTERVAL_S // TICK_INTERVAL_S:
            elapsed, result, requests = tick()
            ticks += 1
            runs = [r.partition_key or r.tags for r in result.run_requests]
            cost = f"{elapsed * 1000:.0f} ms, {sum(requests.values())} req"
        figures["latency"] = f"{ticks} tick(s), ~{ticks * TICK_INTERVAL_S / 60:.1f} min"
        figures["change_cost"] = cost
        figures["change_runs"] = f"{len(runs)} ({', '.join(map(str, runs))})"

        relanded = [_key(day, part) for day in range(30) for part in range(per_day)]
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b'{"id": 1}\n'), relanded))
        if url:
            _notify(sqs, url, bucket, relanded)
        time.sleep(MODIFIED_RESOLUTION_S)
        requested, slowest = 0, (0.0, {})
        for _ in range(RESCAN_INTERVAL_S // TICK_INTERVAL_S + 1):  # through the next rescan
            elapsed, result, requests = tick()
            requested += len(result.run_requests)
            slowest = max(slowest, (elapsed, requests), key=lambda t: t[0])
        figures["relanded_runs"] = f"{requested} runs, {len(relanded):,} objects"
        figures["rescan"] = f"{slowest[0]:.2f} s, {sum(slowest[1].values())} req"
    return figures


def bench(objects: int, work: Path, moto: MotoGlue) -> dict[str, dict[str, str]]:
    per_day = max(1, objects // DAYS)
    keys = [_key(day, part) for day in range(DAYS) for part in range(per_day)]
    figures = {}
    with SeaweedS3(work / f"seaweedfs-{objects}") as server:
        s3 = server.boto3_client(max_pool_connections=32)
        sqs = _sqs(moto)
        for mode in ("listing", "events"):
            bucket = f"bench-{mode}-{objects}"
            server.create_bucket(bucket)
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda key, b=bucket: s3.put_object(Bucket=b, Key=key, Body=b'{"id": 1}\n'), keys))
            url = sqs.create_queue(QueueName=bucket)["QueueUrl"] if mode == "events" else None
            time.sleep(MODIFIED_RESOLUTION_S)
            lake = LakeResource(
                root=f"s3://{bucket}/lake",
                endpoint_url=server.endpoint_url,
                region_name=REGION,
                s3_path_style=True,
                raw_events_queue=url,
                **server_keys(server),
            )
            figures[mode] = _life(lake, s3, sqs, url, bucket, per_day)
            server.delete_bucket(bucket)
    return figures


def _moto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": DEV_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DEV_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def _sqs(moto: MotoGlue):
    import boto3

    return boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name=REGION, **_moto_keys())


def server_keys(server: SeaweedS3) -> dict[str, str]:
    env = server.env()
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="raw objects in the bucket, comma-separated")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-raw-events-") as folder, MotoGlue() as moto:
        for objects in sizes:
            results[objects] = bench(objects, Path(folder), moto)
    rows = [
        ("first tick (the full listing; registers every day)", "first"),
        ("tick, nothing new (median of 5)", "idle"),
        (f"a file changed in a day {AGE} days old: ticks until requested", "latency"),
        ("  the tick that requests it", "change_cost"),
        ("  runs requested", "change_runs"),
        ("30 days re-landed, identical bytes: runs through the next rescan", "relanded_runs"),
        ("the slowest tick of that hour (the hourly full listing)", "rescan"),
    ]
    header = ("", *(f"{mode} {objects:,}" for objects in sizes for mode in ("listing", "events")))
    print_table(header, [(label, *(results[o][m][key] for o in sizes for m in ("listing", "events"))) for label, key in rows])
    print("  listing (the baseline): incremental listing + dt= folders + watched folders, full rescan hourly;")
    print("  events: SQS receives, the touched days listed, full rescan hourly. req = S3 + SQS requests.")


if __name__ == "__main__":
    main()
