"""What registering a publish in the Glue Data Catalog adds to it: for a range of N daily partitions of
tmdb-sized Parquet files on S3 (a local SeaweedFS) and Glue (a local moto server), both started here,
the publish itself (the baseline a run pays anyway) against the catalog registration after it
(footers read from S3 + Glue calls), for a first registration and a re-registration, side by side.

    .venv/bin/python bench/bench_catalog.py [--days 1 30 90] [--repeat 3]

Both servers are local, so the figures measure this code and the request count, not AWS latency:
on AWS, multiply the requests by the round trip (Glue ~20-50 ms, S3 GET ~10-30 ms).
"""

import argparse
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_assets.catalog import GlueCatalog, register_table
from lake_assets.partitions import dt_path
from lake_assets.storage.publish import publish
from lake_assets.storage.s3 import S3Storage
from lake_tools.moto_glue import MotoGlue
from lake_tools.seaweedfs import SeaweedS3

BUCKET = "bench-catalog"
ROWS_PER_DAY = 150  # a day of trusted/tmdb


def tmdb_day(rng: np.random.Generator) -> pa.Table:
    ids = rng.integers(1, 10**6, ROWS_PER_DAY)
    words = np.array("amor guerra cidade família segredo viagem mar memória cinema".split())
    return pa.table(
        {
            "tmdb_id": pa.array(ids, pa.int64()),
            "titulo": pa.array(words[rng.integers(0, len(words), ROWS_PER_DAY)]),
            "data_de_lancamento": pa.array([dt.date(2000, 1, 1)] * ROWS_PER_DAY, pa.date32()),
            "popularidade": pa.array(rng.gamma(2.0, 20.0, ROWS_PER_DAY)),
            "generos": pa.array([["Drama", "Romance"]] * ROWS_PER_DAY, pa.list_(pa.string())),
        }
    )


class Requests:
    """Counts the API calls a boto3 client makes, by service and operation."""

    def __init__(self, *clients):
        self.counts = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model, **_):
        self.counts[f"{model.service_model.service_name}:{model.name}"] += 1

    def take(self) -> Counter:
        taken, self.counts = self.counts, Counter()
        return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30, 90])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("bench").setLevel(logging.WARNING)
    log = logging.getLogger("bench")
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as work, SeaweedS3() as s3, MotoGlue() as moto:
        day_file = Path(work) / "part-0.parquet"
        pq.write_table(tmdb_day(rng), day_file)
        s3.create_bucket(BUCKET)
        os.environ.update({**s3.env(), **moto.env()})
        storage = S3Storage(f"s3://{BUCKET}/lake", client=s3.boto3_client())
        rows = []
        for days in args.days:
            keys = [(dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(days)]
            timings = {"publish": [], "register (first)": [], "register (again)": []}
            requests = {}
            for attempt in range(args.repeat):
                path = f"trusted/tmdb_{days}_{attempt}"
                glue = GlueCatalog(f"bench_{uuid.uuid4().hex[:8]}", region_name="us-east-1")
                counter = Requests(storage.client, glue.client)
                started = time.perf_counter()
                for key in keys:
                    publish(storage, f"{path}/{dt_path(key)}", {f"part-{uuid.uuid4().hex}.parquet": day_file})
                timings["publish"].append(time.perf_counter() - started)
                requests["publish"] = counter.take()
                for label in ("register (first)", "register (again)"):
                    started = time.perf_counter()
                    register_table(
                        storage,
                        path,
                        keys,
                        layout="hive",
                        glue=glue,
                        projection=False,
                        spark_session=None,
                        spark_database=None,
                        log=log,
                    )
                    timings[label].append(time.perf_counter() - started)
                    requests[label] = counter.take()
            for label, values in timings.items():
                calls = requests[label]
                s3_calls = sum(n for op, n in calls.items() if op.startswith("s3:"))
                glue_calls = ", ".join(f"{op[5:]} {n}" for op, n in sorted(calls.items()) if op.startswith("glue:"))
                rows.append((days, label, statistics.median(values), s3_calls, glue_calls or "-"))

    print(f"\n{'days':>4}  {'step':<17} {'median s':>8}  {'S3 requests':>11}  Glue requests")
    for days, label, seconds, s3_calls, glue_calls in rows:
        print(f"{days:>4}  {label:<17} {seconds:>8.3f}  {s3_calls:>11}  {glue_calls}")


if __name__ == "__main__":
    main()
