"""The catalog resource: where else the trusted tables are named after each commit.

The tables themselves are Iceberg tables in catalog `lake` (lake_assets/lib/tables/catalog.py, configured
by pyiceberg's own `PYICEBERG_CATALOG__LAKE__*` variables or `.pyiceberg.yaml`); with
`PYICEBERG_CATALOG__LAKE__TYPE=glue` they are Glue Iceberg tables, read natively by Athena. This
resource adds the Spark catalog of a Spark with no Iceberg runtime (lake_assets/lib/tables/spark_catalog.py).
"""

import logging
import re

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from lake_assets.defs.failures import failing_on_lake_errors
from lake_assets.defs.settings import Settings
from lake_assets.lib.tables.spark_catalog import register_table

_NAME = re.compile(r"^[a-z0-9_]{1,255}$")  # what Spark, Athena and Glue all accept as is


class CatalogResource(ConfigurableResource):
    """Names the trusted tables and their committed partitions in the run's Spark catalog, when that
    catalog is persistent."""

    spark_database: str | None = Field(
        default="trusted",
        description="Database of the trusted tables in a persistent Spark catalog, as make dev's (empty: off).",
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
        a `Failure` (one line) on failure."""
        with failing_on_lake_errors():
            return register_table(
                storage,
                path,
                table,
                partitions,
                spark_session=spark_session if self.spark_database else None,
                spark_database=self.spark_database,
                log=log,
            )


def catalog_resource_from_env(settings: Settings | None = None) -> CatalogResource:
    return CatalogResource(spark_database=(settings or Settings.from_env()).spark.database)
