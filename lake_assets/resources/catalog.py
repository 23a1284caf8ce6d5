"""The catalog resource: where the trusted tables are registered by name after each publish.

The logic lives in lake_assets/catalog.py; this is its configuration, built from the environment
(the README's configuration table).
"""

import logging
import os
import re

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from lake_assets.catalog import GlueCatalog, register_table

_NAME = re.compile(r"^[a-z0-9_]{1,255}$")  # what Athena and Glue both accept, and Spark keeps as is


class CatalogResource(ConfigurableResource):
    """Registers the trusted tables and their published partitions in the AWS Glue Data Catalog (when
    `glue_database` is set) and in the run's Spark catalog (when that catalog is persistent)."""

    glue_database: str | None = Field(
        default=None,
        description="Glue Data Catalog database for the trusted tables (env LAKE_GLUE_DATABASE, e.g. `trusted`). "
        "Unset: no Glue registration. The endpoint and credentials come from boto3's standard configuration.",
    )
    glue_projection: bool = Field(
        default=False,
        description="Athena partition projection on the dt-partitioned tables (env LAKE_GLUE_PROJECTION=1): every day "
        "from the first partition to NOW, so Athena needs no registered partition. Partitions are still registered for other engines.",
    )
    region_name: str | None = Field(
        default=None, description="Glue's AWS region (env AWS_REGION). Unset: the AWS chain (AWS_DEFAULT_REGION, the profile)."
    )
    spark_database: str | None = Field(
        default="trusted",
        description="Database of the trusted tables in the Spark catalog (env LAKE_SPARK_DATABASE; empty: off). Used only "
        "when the run's Spark session has a persistent catalog (the Connect server of make dev / make spark-up).",
    )

    @field_validator("glue_database", "spark_database")
    @classmethod
    def _a_catalog_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"a catalog database name is 1-255 lower-case letters, digits or _, not {value!r}")
        return value

    def register(self, lake, path: str, partitions: list[str] | None, *, log: logging.Logger, spark_session=None) -> dict:
        """Register the table at `path` and the partitions just published (None: an unpartitioned
        table). Call it only after the publish: a catalog never names uncommitted data. Returns the
        metadata to add to the materialisation; raises `CatalogError` (one line) on failure."""
        return register_table(
            lake.storage(path.split("/", 1)[0]),
            path,
            partitions,
            layout=lake.dt_layout,
            glue=GlueCatalog(self.glue_database, self.region_name) if self.glue_database else None,
            projection=self.glue_projection,
            spark_session=spark_session if self.spark_database else None,
            spark_database=self.spark_database,
            log=log,
        )


def catalog_resource_from_env() -> CatalogResource:
    env = os.environ.get
    return CatalogResource(
        glue_database=env("LAKE_GLUE_DATABASE") or None,
        glue_projection=env("LAKE_GLUE_PROJECTION", "").strip().lower() in ("1", "true", "yes", "on"),
        region_name=env("AWS_REGION") or None,
        spark_database=env("LAKE_SPARK_DATABASE", "trusted") or None,
    )
