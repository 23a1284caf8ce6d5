"""The lake resource: where the raw and trusted zones live, how partitions are laid out, and how to
reach S3.

The S3 settings are dagster-aws's own (`ResourceWithS3Configuration`: `endpoint_url`, `region_name`,
`profile_name`, `max_attempts`, credentials...), so they read as in any Dagster project and the
launchpad describes each one; the fields below add what the lake needs besides.
"""

import threading
from typing import Literal

from dagster_aws.s3.resources import ResourceWithS3Configuration
from pydantic import Field, PrivateAttr, field_validator

from lake_assets.defs.settings import Settings
from lake_assets.lib.partitions import DtLayout
from lake_assets.lib.storage import Storage, is_s3_root, open_storage

ZONES = ("raw", "trusted")


class LakeResource(ResourceWithS3Configuration):
    """Lake roots and layout. Keys below a root always start with the zone (`raw/...`, `trusted/...`),
    so one root can hold both zones, or each zone can have a bucket of its own."""

    root: str = Field(
        default="./lake",
        description="Lake root, a local folder or s3://bucket/prefix, holding both zones unless raw_root/trusted_root say otherwise.",
    )
    raw_root: str | None = Field(
        default=None, description="Root of the raw zone when it differs from `root` (a raw-zone bucket)."
    )
    trusted_root: str | None = Field(
        default=None, description="Root of the trusted zone when it differs from `root` (a trusted-zone bucket)."
    )
    dt_layout: Literal["hive", "seed"] = Field(
        default="hive",
        description="Partition folders: `hive` = dt=2024-03-31 (a `dt` column), `seed` = the original dt=2024/03/31.",
    )
    s3_path_style: bool = Field(
        default=False, description="Path-style S3 addressing, for S3-compatible servers behind one hostname (SeaweedFS, MinIO)."
    )
    spark_s3a: bool = Field(
        default=False,
        description="Spark opens s3a:// paths itself (clusters with S3A), instead of staging through local disk.",
    )
    retry_mode: Literal["standard", "adaptive", "legacy"] = Field(
        default="standard", description="botocore's retry mode for S3 requests (bounded by max_attempts)."
    )
    raw_events_queue: str | None = Field(
        default=None,
        description="SQS queue URL receiving the raw bucket's S3 notifications: the raw-arrival sensor reads events instead of listing.",
    )
    catalog_dir: str | None = Field(
        default=None, description="Where the default SQLite catalog of an s3:// lake lives (unset: LAKE_CATALOG_DIR)."
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
        from lake_assets.lib.storage.s3 import make_s3_client  # boto3 is imported only when S3 is used

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

    def raw_events(self):
        """The queue of the raw bucket's S3 notifications, or None when the sensor lists the bucket."""
        if not self.raw_events_queue:
            return None
        from lake_assets.lib.raw_events import open_queue

        return open_queue(
            self.raw_events_queue,
            region_name=self.region_name,
            max_attempts=self.max_attempts,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )

    def iceberg_catalog(self):
        """The Iceberg catalog of the trusted tables (lake_assets/lib/tables/catalog.py), opened once per
        resource instance."""
        from lake_assets.lib.tables.catalog import open_catalog  # pyiceberg is imported only when tables are used

        with self._client_lock:
            if self._catalog is None:
                self._catalog = open_catalog(self)
            return self._catalog

    @property
    def sqlite_catalog_dir(self) -> str:
        """Where the default SQLite catalog of an s3:// lake lives: this field, else LAKE_CATALOG_DIR."""
        return self.catalog_dir or Settings.from_env().lake.catalog_dir

    @property
    def layout(self) -> DtLayout:
        return DtLayout(self.dt_layout)


def lake_resource_from_env(settings: Settings | None = None) -> LakeResource:
    """The lake as the environment describes it (the README's configuration table). AWS credentials
    are `EnvVar`s, resolved at run time and never stored; each is passed only when its variable is
    set, otherwise boto3's chain (profile, SSO, instance or task role) supplies them."""
    settings = settings or Settings.from_env()
    credentials = settings.secrets(
        {
            "aws_access_key_id": "AWS_ACCESS_KEY_ID",
            "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "aws_session_token": "AWS_SESSION_TOKEN",
        }
    )
    return LakeResource(**settings.lake.model_dump(), **credentials)
