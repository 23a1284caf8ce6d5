"""The catalog resource: where else the trusted tables are named after each commit.

The tables themselves are Iceberg tables in catalog `lake` (lake_assets/tables/catalog.py, configured
by pyiceberg's own `PYICEBERG_CATALOG__LAKE__*` variables or `.pyiceberg.yaml`); with
`PYICEBERG_CATALOG__LAKE__TYPE=glue` they are Glue Iceberg tables, read natively by Athena. This
resource adds the Spark catalog of a Spark with no Iceberg runtime (lake_assets/catalog.py).
"""

import logging
import os
import re

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from lake_assets.catalog import register_table

_NAME = re.compile(r"^[a-z0-9_]{1,255}$")  # what Spark, Athena and Glue all accept as is
# Before the tables were Iceberg tables, this variable named a Glue database of Hive tables.
_RETIRED = "LAKE_GLUE_DATABASE"


class CatalogResource(ConfigurableResource):
    """Names the trusted tables and their committed partitions in the run's Spark catalog, when that
    catalog is persistent."""

    spark_database: str | None = Field(
        default="trusted",
        description="Database of the trusted tables in the Spark catalog (env LAKE_SPARK_DATABASE; empty: off). Used only "
        "when the run's Spark session has a persistent catalog (the Connect server of make dev / make spark-up).",
    )

    @field_validator("spark_database")
    @classmethod
    def _a_catalog_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"a catalog database name is 1-255 lower-case letters, digits or _, not {value!r}")
        return value

    def register(
        self, storage, path: str, table, partitions: list[str] | None, *, log: logging.Logger, spark_session=None
    ) -> dict:
        """Name the table at `path` and the partitions just committed (None: an unpartitioned table).
        Call it only after the commit. Returns the metadata to add to the materialisation; raises
        `CatalogError` (one line) on failure."""
        return register_table(
            storage,
            path,
            table,
            partitions,
            spark_session=spark_session if self.spark_database else None,
            spark_database=self.spark_database,
            log=log,
        )


def catalog_resource_from_env() -> CatalogResource:
    env = os.environ.get
    if env(_RETIRED):
        raise ValueError(
            f"{_RETIRED} is retired: the trusted tables are Iceberg tables; set PYICEBERG_CATALOG__LAKE__TYPE=glue "
            "(and PYICEBERG_CATALOG__LAKE__GLUE__REGION) to keep them in the Glue Data Catalog, where Athena reads them"
        )
    return CatalogResource(spark_database=env("LAKE_SPARK_DATABASE", "trusted") or None)
