"""What the asset tests share: the resources of a test lake, and an independent read-back of it."""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from lake_assets.io_managers import RawZoneIOManager, TrustedParquetIOManager
from lake_assets.resources import LakeResource, TMDBResource


def lake_resources(lake: LakeResource, spark_resource) -> dict:
    return {
        "lake": lake,
        "spark": spark_resource,
        "tmdb": TMDBResource(),  # no credentials: the bundled offline snapshot
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark_resource),
    }


class Lake:
    """Independent read-back: objects are listed and fetched through the storage's plain API and
    parsed with pyarrow, so nothing here depends on the code under test's readers."""

    def __init__(self, lake: LakeResource):
        self.storage = lake.storage("trusted")

    def keys(self, prefix):
        return sorted(o.key for o in self.storage.list(prefix))

    def table(self, prefix, *, rejected=False) -> pa.Table:
        keys = [k for k in self.keys(prefix) if k.endswith(".parquet") and ("/_rejected/" in k) == rejected]
        return pa.concat_tables([pq.read_table(io.BytesIO(self.storage.get_bytes(k))) for k in keys])

    def bytes_of(self, prefix) -> dict[str, bytes]:
        """Every object under a prefix, by key: to compare a folder byte for byte."""
        return {k: self.storage.get_bytes(k) for k in self.keys(prefix)}
