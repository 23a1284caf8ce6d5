"""The lake resource: where the raw and trusted zones live, and how partitions are laid out."""

import os

from dagster import ConfigurableResource

from lake_assets.partitions import DtLayout
from lake_assets.storage import Storage, open_storage


class LakeResource(ConfigurableResource):
    """Lake roots and layout. Keys below a root always start with the zone (`raw/...`, `trusted/...`),
    so one root can hold both zones, or each zone can have a bucket of its own."""

    root: str = "./lake"
    raw_root: str | None = None
    trusted_root: str | None = None
    dt_layout: DtLayout = DtLayout.HIVE
    # S3 only; credentials always come from the standard AWS chain (environment, profile, role).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = False
    # True on clusters that have S3A (EMR, Glue, Databricks): Spark reads s3a:// itself instead
    # of the data being staged through local disk.
    spark_s3a: bool = False

    def storage(self, zone: str) -> Storage:
        root = {"raw": self.raw_root, "trusted": self.trusted_root}.get(zone) or self.root
        return open_storage(
            root,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            path_style=self.s3_path_style,
            spark_s3a=self.spark_s3a,
        )


def lake_resource_from_env() -> LakeResource:
    env = os.environ.get
    return LakeResource(
        root=env("LAKE_ROOT", "./lake"),
        raw_root=env("LAKE_RAW_ROOT") or None,
        trusted_root=env("LAKE_TRUSTED_ROOT") or None,
        dt_layout=DtLayout(env("LAKE_DT_LAYOUT", "hive")),
        s3_endpoint_url=env("AWS_ENDPOINT_URL") or env("AWS_ENDPOINT_URL_S3") or None,
        s3_region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
        s3_path_style=env("LAKE_S3_PATH_STYLE", "").lower() in ("1", "true", "yes"),
        spark_s3a=env("LAKE_SPARK_S3A", "").lower() in ("1", "true", "yes"),
    )
