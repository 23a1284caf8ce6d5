"""What evaluating the contract costs: trusted/filmes's Spark work on the same generated CSV with and
without its contract, in one Spark session, interleaved, median of N rounds.

- without: read as strings, type (`filmes_from_strings`), split with a contract that has no rules
  (only the parse rejects go to the quarantine; the observation counts good and rejected rows),
  write the table and the quarantine;
- with: the same with `FILMES` (its flags, its drop rules, every rule counted by the observation).

    .venv/bin/python bench/bench_contract.py [--rows 1000000] [--rounds 3]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from pyspark.sql import types as T

from lake_assets.defs.resources import SparkResource
from lake_assets.lib.contracts import FILMES, Contract
from lake_assets.lib.contracts.evaluate import split
from lake_assets.lib.transforms.columns import CORRUPT
from lake_assets.lib.transforms.filmes import Dialect, csv_options, filmes_from_strings
from lake_tools.sample_filmes import HEADER, write_filmes_csv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-contract-"))
    try:
        source = write_filmes_csv(work / "filmes.csv", args.rows, seed=11, bad_rows=args.rows // 10_000)
        spark = SparkResource().spark_session
        schema = T.StructType([T.StructField(c, T.StringType()) for c in HEADER] + [T.StructField(CORRUPT, T.StringType())])

        def typed():
            strings = spark.read.options(**csv_options(Dialect.SEED, "utf-8")).schema(schema).csv(str(source))
            return filmes_from_strings(strings, Dialect.SEED, dict(FILMES.layouts["seed"]))

        def write(contract: Contract, out: Path) -> None:
            rows = split(contract.apply(typed(), "seed"), contract, "seed")
            rows.good.write.mode("overwrite").parquet(str(out / "data"))
            if rows.totals["rejected"]:
                rows.quarantine(spark).write.mode("overwrite").parquet(str(out / "rejected"))

        no_rules = Contract(FILMES.table, FILMES.layouts, rules=())
        runs = {"transform only": partial(write, no_rules), "transform + contract": partial(write, FILMES)}
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for round_ in range(args.rounds + 1):
            for name, body in runs.items():
                started = time.perf_counter()
                body(work / name.replace(" ", "_"))
                if round_:  # the first round warms the JVM for both
                    seconds[name].append(time.perf_counter() - started)
        base = statistics.median(seconds["transform only"])
        size = source.stat().st_size / 1e6
        print(f"\ntrusted/filmes's Spark work, {args.rows:,} rows ({size:.0f} MB CSV), classic local[2], median of {args.rounds}")
        print(f"{'run':<22} {'seconds':>8} {'vs transform only':>18}")
        for name, values in seconds.items():
            median = statistics.median(values)
            print(f"{name:<22} {median:>8.2f} {median / base:>17.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
