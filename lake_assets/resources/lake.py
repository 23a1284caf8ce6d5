"""The lake resource: where the raw and trusted zones live, how partitions are laid out, and how to
reach S3.

The S3 settings are dagster-aws's own (`ResourceWithS3Configuration`: `endpoint_url`, `region_name`,
`profile_name`, `max_attempts`, credentials...), so they read as in any Dagster project and the
launchpad describes each one; the fields below add what the lake needs besides.
"""

import os
import threading
from typing import Literal

from dagster import EnvVar
from dagster_aws.s3.resources import ResourceWithS3Configuration
from pydantic import Field, PrivateAttr, field_validator

from lake_assets.env import flag
from lake_assets.partitions import DtLayout
from lake_assets.storage import Storage, is_s3_root, open_storage

ZONES = ("raw", "trusted")


class LakeResource(ResourceWithS3Configuration):
    """Lake roots and layout. Keys below a root always start with the zone (`raw/...`, `trusted/...`),
    so one root can hold both zones, or each zone can have a bucket of its own."""

    root: str = Field(
        default="./lake",
        description="Lake root: a local folder, or s3://bucket/prefix. Holds both zones unless raw_root/trusted_root say otherwise.",
    )
    raw_root: str | None = Field(
        default=None, description="Root of the raw zone when it differs from `root` (e.g. a raw-zone bucket)."
    )
    trusted_root: str | None = Field(
        default=None, description="Root of the trusted zone when it differs from `root` (e.g. a trusted-zone bucket)."
    )
    dt_layout: Literal["hive", "seed"] = Field(
        default="hive",
        description="Partition folders: `hive` = dt=2024-03-31 (one `dt` column for Spark, Athena, DuckDB); "
        "`seed` = the original design's dt=2024/03/31 (nested folders, no `dt` column).",
    )
    s3_path_style: bool = Field(
        default=False, description="Path-style S3 addressing, for S3-compatible servers behind one hostname (SeaweedFS, MinIO)."
    )
    spark_s3a: bool = Field(
        default=False,
        description="Spark opens s3a:// paths itself (clusters with the S3A connector: EMR, Glue, Databricks). "
        "Off: data is staged through local disk, which works everywhere.",
    )
    retry_mode: Literal["standard", "adaptive", "legacy"] = Field(
        default="standard", description="botocore's retry mode for S3 requests (bounded by max_attempts)."
    )

    _client = PrivateAttr(default=None)
    _catalog = PrivateAttr(default=None)
    _client_lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("root", "raw_root", "trusted_root")
    @classmethod
    def _a_folder_or_a_bucket(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" in value and not is_s3_root(value):
            raise ValueError(f"a lake root is a local folder or s3://bucket/prefix, not {value!r}")
        if is_s3_root(value) and not value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(f"an S3 lake root names its bucket: s3://bucket/prefix, not {value!r}")
        if not value.strip():
            raise ValueError("a lake root cannot be empty")
        return value

    def root_of(self, zone: str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r}; zones are {ZONES}")
        return {"raw": self.raw_root, "trusted": self.trusted_root}[zone] or self.root

    def storage(self, zone: str) -> Storage:
        root = self.root_of(zone)
        if is_s3_root(root):
            return open_storage(root, client=self.s3_client(), spark_s3a=self.spark_s3a)
        return open_storage(root)

    def s3_client(self):
        """One boto3 client per resource instance, made on first use and shared by every storage
        and thread (boto3 clients are thread-safe; making one costs ~50 ms)."""
        from lake_assets.storage.s3 import make_s3_client  # boto3 is imported only when S3 is used

        with self._client_lock:
            if self._client is None:
                self._client = make_s3_client(
                    endpoint_url=self.endpoint_url,
                    region_name=self.region_name,
                    profile_name=self.profile_name,
                    path_style=self.s3_path_style,
                    max_attempts=self.max_attempts,
                    retry_mode=self.retry_mode,
                    use_ssl=self.use_ssl,
                    verify=self.verify,
                    aws_access_key_id=self.aws_access_key_id,
                    aws_secret_access_key=self.aws_secret_access_key,
                    aws_session_token=self.aws_session_token,
                )
            return self._client

    def iceberg_catalog(self):
        """The Iceberg catalog of the trusted tables (lake_assets/tables/catalog.py), opened once per
        resource instance."""
        from lake_assets.tables.catalog import open_catalog  # pyiceberg is imported only when tables are used

        with self._client_lock:
            if self._catalog is None:
                self._catalog = open_catalog(self)
            return self._catalog

    @property
    def layout(self) -> DtLayout:
        return DtLayout(self.dt_layout)


def lake_resource_from_env() -> LakeResource:
    """The lake as the environment describes it (the README's configuration table). AWS credentials
    are `EnvVar`s, resolved at run time and never stored; each is passed only when its variable is
    set, otherwise boto3's chain (profile, SSO, instance or task role) supplies them."""
    env = os.environ.get
    credentials = {
        field: EnvVar(variable)
        for field, variable in (
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_session_token", "AWS_SESSION_TOKEN"),
        )
        if env(variable)
    }
    return LakeResource(
        root=env("LAKE_ROOT") or "./lake",
        raw_root=env("LAKE_RAW_ROOT") or None,
        trusted_root=env("LAKE_TRUSTED_ROOT") or None,
        dt_layout=env("LAKE_DT_LAYOUT") or "hive",
        endpoint_url=env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None,
        region_name=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
        profile_name=env("AWS_PROFILE") or None,
        max_attempts=int(env("AWS_MAX_ATTEMPTS") or 5),
        retry_mode=env("AWS_RETRY_MODE") or "standard",
        s3_path_style=flag("LAKE_S3_PATH_STYLE"),
        spark_s3a=flag("LAKE_SPARK_S3A"),
        **credentials,
    )
