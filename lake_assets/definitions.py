"""The code location: the four lake assets, the raw-arrival sensor, and their resources.

Resources are built from the environment (see the README's configuration table); secrets go
through `EnvVar`, so they are read at run time and never stored in the definitions.
"""

from dagster import Definitions

from lake_assets.assets import raw, trusted
from lake_assets.io_managers import RawZoneIOManager, TrustedParquetIOManager
from lake_assets.lake import lake_resource_from_env
from lake_assets.spark import spark_resource_from_env
from lake_assets.tmdb import tmdb_resource_from_env


def build_definitions() -> Definitions:
    lake = lake_resource_from_env()
    spark = spark_resource_from_env()
    return Definitions(
        assets=[raw.filmes_csv, raw.tmdb_json, trusted.filmes, trusted.tmdb],
        resources={
            "lake": lake,
            "spark": spark,
            "tmdb": tmdb_resource_from_env(),
            "raw_io_manager": RawZoneIOManager(lake=lake),
            "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark),
        },
    )


defs = build_definitions()
