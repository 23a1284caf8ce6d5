"""What evaluating the contract costs: trusted/filmes's Spark work on the same generated CSV with and
without its contract, in one Spark session, interleaved, median of N rounds.

- without: read as strings, type (`filmes_from_strings`), write the good rows and the parse rejects,
  as trusted/filmes did before it had a contract;
- with: the same rows through `FILMES.apply` and `split` (the flags, the drop rules, and the one
  observation that counts every rule during the write), writing the table and the quarantine.

    .venv/bin/python bench/bench_contract.py [--rows 1000000] [--rounds 3]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.contracts import FILMES
from lake_assets.contracts.evaluate import split
from lake_assets.resources import SparkResource
from lake_assets.transforms.columns import CORRUPT, RAW, REJECT_REASON
from lake_assets.transforms.filmes import Dialect, csv_options, filmes_from_strings
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

        def without(out: Path) -> None:
            rows = typed()
            rows.filter(F.col(REJECT_REASON).isNull()).drop(RAW, REJECT_REASON).write.mode("overwrite").parquet(str(out / "data"))
            rejected = rows.filter(F.col(REJECT_REASON).isNotNull()).select(f"{RAW}.*", REJECT_REASON)
            rejected.write.mode("overwrite").parquet(str(out / "rejected"))

        def with_contract(out: Path) -> None:
            rows = split(FILMES.apply(typed(), "seed"), FILMES, "seed")
            rows.good.write.mode("overwrite").parquet(str(out / "data"))
            if rows.totals["rejected"]:
                rows.rejected.write.mode("overwrite").parquet(str(out / "rejected"))

        runs = {"transform only": without, "transform + contract": with_contract}
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
