"""What the asset tests share: the resources of a test lake, and an independent read-back of it."""

import io
import re

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import AlwaysTrue, EqualTo

from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.io_managers.trusted import TrustedParquetIOManager
from lake_assets.defs.resources import LakeResource, TMDBResource
from lake_assets.lib.tables.catalog import CATALOG_NAME, catalog_properties


def lake_resources(lake: LakeResource, spark_resource) -> dict:
    return {
        "lake": lake,
        "spark": spark_resource,
        "tmdb": TMDBResource(),  # no credentials: the bundled offline snapshot
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark_resource),
    }


class Lake:
    """Independent read-back: raw objects are listed and fetched through the storage's plain API;
    a trusted table's current files are planned by plain pyiceberg (`load_catalog`) and parsed with
    pyarrow, so nothing here depends on the code under test's readers."""

    def __init__(self, lake: LakeResource):
        self.lake = lake
        self.storage = lake.storage("trusted")

    def keys(self, prefix):
        return sorted(o.key for o in self.storage.list(prefix))

    def catalog(self):
        return load_catalog(CATALOG_NAME, **catalog_properties(self.lake))

    def current_keys(self, prefix, snapshot_id=None) -> list[str]:
        """The data files of `trusted/<table>/[dt=<day>/]` in the current (or a given) snapshot."""
        match = re.match(r"trusted/([^/]+)/?(?:dt=([0-9-]+)/?)?$", prefix)
        assert match, f"not a trusted table or partition: {prefix}"
        name, day = match.groups()
        catalog = self.catalog()
        if not catalog.table_exists(f"trusted.{name}"):
            return []
        table = catalog.load_table(f"trusted.{name}")
        scan = table.scan(row_filter=EqualTo("dt", day) if day else AlwaysTrue(), snapshot_id=snapshot_id)
        return sorted(self.storage.key_of(task.file.file_path) for task in scan.plan_files())

    def table(self, prefix, *, rejected=False, snapshot_id=None) -> pa.Table:
        """A raw folder's Parquet, or the rows of a trusted table or partition as its current snapshot
        names them (without `dt`, which a partition's folder says); `rejected`: that version's
        rejected rows."""
        if prefix.startswith("trusted/"):
            data = self.current_keys(prefix, snapshot_id)
            if rejected:
                folders = sorted({k.rsplit("/", 1)[0] for k in data})
                keys = [k for folder in folders for k in self.keys(f"{folder}/_rejected/") if k.endswith(".parquet")]
            else:
                keys = data
        else:
            keys = [k for k in self.keys(prefix) if k.endswith(".parquet") and ("/_rejected/" in k) == rejected]
        if not keys:
            return pa.table({})  # e.g. no rejected rows: no quarantine file is written
        tables = [pq.read_table(io.BytesIO(self.storage.get_bytes(k))) for k in keys]
        tables = [t.drop_columns(["dt"]) if "dt" in t.column_names and not rejected else t for t in tables]
        return pa.concat_tables(tables, promote_options="default")

    def bytes_of(self, prefix) -> dict[str, bytes]:
        """Every object under a prefix, by key: to compare a folder byte for byte."""
        return {k: self.storage.get_bytes(k) for k in self.keys(prefix)}
