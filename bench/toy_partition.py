"""The least a daily-partition run can do, as a Dagster asset: read one day's raw JSON Lines through the
Spark Connect server (with the same explicit schema as the project), write Parquet, count the rows.
bench/bench_tmdb_runs.py times it beside trusted/tmdb on Dagster's default executor (a process per
step); bench/bench_iceberg.py sets TOY_EXECUTOR=in_process, the executor lake_assets.defs.definitions uses.

    SPARK_REMOTE=sc://... LAKE_ROOT=... dagster asset materialize -f bench/toy_partition.py --select toy --partition D
"""

import os

from dagster import AssetExecutionContext, DailyPartitionsDefinition, Definitions, asset, in_process_executor
from pyspark.sql import SparkSession

from lake_assets.lib.transforms.tmdb import DETAILS_SCHEMA

days = DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="UTC")


@asset(partitions_def=days)
def toy(context: AssetExecutionContext) -> None:
    spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    root = os.environ["LAKE_ROOT"]
    out = f"{root}/toy/dt={context.partition_key}"
    spark.read.schema(DETAILS_SCHEMA).json(f"{root}/raw/tmdb/dt={context.partition_key}").write.mode("overwrite").parquet(out)
    context.add_output_metadata({"rows": spark.read.parquet(out).count()})


defs = Definitions(assets=[toy], executor=in_process_executor if os.environ.get("TOY_EXECUTOR") == "in_process" else None)
