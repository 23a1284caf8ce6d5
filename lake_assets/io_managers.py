"""IO managers: the only code that knows where an asset's data lives.

Assets return data (a landed file, JSON records, Spark DataFrames) and receive readable locations or
DataFrames; these IO managers map asset keys to lake keys through the asset's `lake_path`
definition metadata and the `dt=` rule, and write through the storage boundary with the publish
protocol, so every asset runs unchanged on the local lake and on S3.
"""

import atexit
import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetsDefinition,
    ConfigurableIOManager,
    Failure,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.partitions import dt_path, partition_key_from_path
from lake_assets.resources import CatalogResource, LakeResource, SparkResource
from lake_assets.storage import Storage, is_hidden
from lake_assets.storage.publish import Published, StoredFile, committed_keys, publish

JSONL_RECORDS_PER_FILE = 100  # the raw zone's convention: at most 100 records a file
HEAD_BYTES = 64 * 1024  # enough for any header line


@dataclass(frozen=True)
class LandedFile:
    """A file to land in the raw zone byte for byte."""

    path: Path


@dataclass(frozen=True)
class JsonRecords:
    """JSON documents to land unchanged as JSON Lines, in files of at most 100 records."""

    records: Sequence[dict]


@dataclass(frozen=True)
class SparkTable:
    """A trusted table: the rows, optionally the rows rejected on the way (kept in `_rejected/`), and
    DataFrames the asset cached to compute both in one pass, released once both are written."""

    data: DataFrame
    rejected: DataFrame | None = None
    cached: tuple = ()


LAKE_PATH = "lake_path"  # definition metadata: where an asset lives, below its zone's root


def lake_path(of: AssetsDefinition | OutputContext | InputContext) -> str:
    """An asset's folder or file below the lake root (`raw/tmdb`, `trusted/filmes`), from its
    `lake_path` definition metadata; the first segment is its zone."""
    if isinstance(of, AssetsDefinition):
        metadata = of.metadata_by_key[of.key]
    elif isinstance(of, InputContext):
        metadata = of.upstream_output.definition_metadata
    else:
        metadata = of.definition_metadata
    return metadata[LAKE_PATH]


def _zone(path: str) -> str:
    return path.split("/", 1)[0]


@dataclass(frozen=True)
class RawFile:
    """One raw file as a trusted asset reads it: a path Spark can open, and its first bytes (the
    header, read without starting a Spark job)."""

    uri: str
    spark_path: str
    head: bytes


class _Staging:
    """Local scratch space for one process: Spark writes here before publishing, and S3 data is
    downloaded here when Spark cannot read the bucket itself. Removed at process exit."""

    _root: Path | None = None

    @classmethod
    def new_dir(cls, label: str) -> Path:
        if cls._root is None:
            cls._root = Path(tempfile.mkdtemp(prefix="lake_assets-staging-"))
            atexit.register(shutil.rmtree, cls._root, True)
        path = cls._root / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path


def _readable(storage: Storage, keys: Iterable[str], label: str) -> list[str]:
    """Paths Spark can open for these keys: native ones, or local copies of exactly these objects."""
    keys = list(keys)
    native = [storage.spark_path(key) for key in keys]
    if all(native):
        return native
    folder = _Staging.new_dir(label)
    paths = []
    for key in keys:
        local = folder / key
        storage.download(key, local)
        paths.append(str(local))
    return paths


def _landed_keys(storage: Storage, prefix: str) -> list[str]:
    """Every data file of a raw folder: the raw zone is a landing zone, and a file dropped next to
    ones this project wrote is data too. (`_`/`.` names are bookkeeping: manifests, temp files.)"""
    return [obj.key for obj in storage.list(prefix.rstrip("/") + "/") if not is_hidden(obj.key[len(prefix) :])]


def _committed_or_landed_keys(storage: Storage, prefix: str) -> list[str]:
    """The table data files of a trusted folder: its committed version when published by this
    project (never a half-published one), otherwise every data file (written by another tool).
    A version also holds its `_rejected/` rows: those are never table data."""
    committed = committed_keys(storage, prefix)
    if committed is None:
        return _landed_keys(storage, prefix)
    return [key for key in committed if not is_hidden(key[len(prefix) :])]


class RawZoneIOManager(ConfigurableIOManager):
    """Lands raw data unchanged: a file byte for byte, or JSON records as JSON Lines per partition."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: LandedFile | JsonRecords) -> None:
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        if isinstance(obj, LandedFile):
            storage.put_file(obj.path, path)
            context.add_output_metadata(
                {
                    "path": MetadataValue.path(storage.uri(path)),
                    "bytes": obj.path.stat().st_size,
                    "sha256": _sha256(obj.path),
                }
            )
        elif isinstance(obj, JsonRecords):
            (key,) = context.asset_partition_keys  # one collection lands one day
            prefix = f"{path}/{dt_path(key, self.lake.dt_layout)}"
            published = land_json_lines(storage, prefix, obj.records)
            context.add_output_metadata(
                {
                    "path": MetadataValue.path(storage.uri(prefix)),
                    "files": len(published.keys),
                    "bytes": published.bytes,
                    "dagster/row_count": len(obj.records),
                }
            )
        else:
            raise TypeError(f"raw zone output must be LandedFile or JsonRecords, got {type(obj).__name__}")

    def load_input(self, context: InputContext) -> RawFile | dict[str, list[str]]:
        """The file of an unpartitioned asset, else {partition key: [Spark-readable data files]} for
        the partitions this step reads."""
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        if not context.has_asset_partitions:
            found = [obj for obj in storage.list(path) if obj.key == path]
            if not found:
                raise Failure(f"nothing at {storage.uri(path)}: materialise {context.asset_key.to_user_string()} first")
            head = storage.get_range(path, 0, min(found[0].size, HEAD_BYTES))
            return RawFile(storage.uri(path), _readable(storage, [path], "raw-in")[0], head)
        found = {}
        for key in context.asset_partition_keys:
            prefix = f"{path}/{dt_path(key, self.lake.dt_layout)}"
            found[key] = _readable(storage, _landed_keys(storage, prefix), f"raw-in-{key}")
        missing = [key for key, paths in found.items() if not paths]
        if missing:
            raise Failure(
                f"no raw files for {len(missing)} partition(s) of {context.asset_key.to_user_string()} "
                f"({', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}) under {storage.uri(path)}: "
                "materialise them, or land files there"
            )
        return found


class TrustedParquetIOManager(ConfigurableIOManager):
    """Writes Spark DataFrames as Parquet, publishing each table or `dt=` partition atomically.

    A partitioned asset's DataFrame carries a `dt` column holding the partition key of each row;
    exactly the partitions of the run are replaced (a range in one run: a backfill), each with the
    rows of its key, and an empty partition is published as empty rather than left stale.
    """

    lake: LakeResource
    spark: SparkResource
    catalog: CatalogResource | None = Field(
        default=None, description="Where the published tables and partitions are registered by name (Glue, Spark); None: nowhere."
    )

    def handle_output(self, context: OutputContext, obj) -> None:
        table = obj if isinstance(obj, SparkTable) else SparkTable(obj)
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        stage = _SparkStage(storage)
        try:
            if context.has_asset_partitions:
                metadata = self._publish_partitions(context, storage, path, table, stage)
            else:
                metadata = self._publish_table(storage, path, table, stage)
        finally:
            for df in table.cached:
                df.unpersist()
            stage.close()
        context.add_output_metadata(metadata)
        if self.catalog is not None:  # after the publish: a catalog never names uncommitted data
            keys = list(context.asset_partition_keys) if context.has_asset_partitions else None
            context.add_output_metadata(
                self.catalog.register(self.lake, path, keys, log=context.log, spark_session=self.spark.spark_session)
            )

    def _publish_table(self, storage: Storage, path: str, table: SparkTable, stage: "_SparkStage") -> dict:
        files = stage.write(table.data, "data")
        rejected = stage.write(table.rejected, "rejected") if table.rejected is not None else {}
        published = publish(storage, path, {**files, **{f"_rejected/{n}": f for n, f in rejected.items()}})
        metadata = _table_metadata(storage, path, table.data, list(files.values()), published.bytes)
        return {**metadata, **_rejected_metadata(storage, f"{path}/_rejected", table, rejected.values())}

    def _publish_partitions(
        self, context: OutputContext, storage: Storage, path: str, table: SparkTable, stage: "_SparkStage"
    ) -> dict:
        keys = list(context.asset_partition_keys)
        # One Spark job writes every partition of the run (a backfill range included).
        data = _by_partition(stage.write(table.data, "data", partition_by="dt"), keys, context)
        rejected = (
            _by_partition(stage.write(table.rejected, "rejected", partition_by="dt"), keys, context)
            if table.rejected is not None
            else {}
        )
        rows_by_key, total_bytes = {}, 0
        for key in keys:
            # A key with no rows is published empty: a stale previous version must not survive.
            files = {**data.get(key, {}), **{f"_rejected/{n}": f for n, f in rejected.get(key, {}).items()}}
            total_bytes += publish(storage, f"{path}/{dt_path(key, self.lake.dt_layout)}", files).bytes
            rows_by_key[key] = _row_count(storage, data.get(key, {}).values())
        data_files = [f for files in data.values() for f in files.values()]
        rejected_files = [f for files in rejected.values() for f in files.values()]
        metadata = _table_metadata(storage, path, table.data, data_files, total_bytes)
        if len(keys) == 1:
            metadata["path"] = MetadataValue.path(storage.uri(f"{path}/{dt_path(keys[0], self.lake.dt_layout)}"))
        else:
            metadata["partitions"] = len(keys)
            metadata["rows_by_partition"] = MetadataValue.json(rows_by_key)
        partition_folder = dt_path(keys[0], self.lake.dt_layout) if len(keys) == 1 else "dt=*"
        return {**metadata, **_rejected_metadata(storage, f"{path}/{partition_folder}/_rejected", table, rejected_files)}

    def load_input(self, context: InputContext):
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        spark = self.spark.spark_session
        if not context.has_asset_partitions:
            keys = _committed_or_landed_keys(storage, path)
            return spark.read.parquet(*_readable(storage, keys, "trusted-in"))
        frames = []
        for key in context.asset_partition_keys:
            keys = _committed_or_landed_keys(storage, f"{path}/{dt_path(key, self.lake.dt_layout)}")
            if keys:
                frames.append(spark.read.parquet(*_readable(storage, keys, f"trusted-in-{key}")).withColumn("dt", F.lit(key)))
        if not frames:
            raise Failure(f"no data in {storage.uri(path)} for partitions {context.asset_partition_keys}")
        return reduce(lambda a, b: a.unionByName(b), frames)


def land_json_lines(storage: Storage, prefix: str, records: Sequence[dict]) -> Published:
    """Publish `records` as the whole content of a raw folder, in JSON Lines files of at most 100."""
    folder = _Staging.new_dir("raw-out")
    try:
        return publish(storage, prefix, _write_jsonl_chunks(records, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_jsonl_chunks(records: Sequence[dict], folder: Path) -> dict[str, Path]:
    # A write id in every name: the publish protocol never overwrites a committed file.
    write_id = uuid.uuid4().hex[:12]
    files = {}
    for index in range(0, max(len(records), 1), JSONL_RECORDS_PER_FILE):
        chunk = records[index : index + JSONL_RECORDS_PER_FILE]
        if not chunk:
            break
        name = f"part-{index // JSONL_RECORDS_PER_FILE:05d}-{write_id}.jsonl"
        path = folder / name
        with path.open("w", encoding="utf-8") as out:
            for record in chunk:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        files[name] = path
    return files


class _SparkStage:
    """Where Spark writes a DataFrame before it is published.

    When Spark can open the lake's own paths (the local disk; `s3a://` on clusters with S3A), it
    writes to `_staging/<id>/` inside the lake and publishing is a server-side copy (a hard link on
    disk): no byte passes through this process, and executors on other hosts can write. Otherwise
    (S3 without S3A, as on this machine) it writes to local disk and the files are uploaded.
    """

    # A run killed mid-write leaves its scratch folder behind; no live write is anywhere near this old.
    ABANDONED_AFTER_S = 24 * 3600

    def __init__(self, storage: Storage):
        self.storage = storage
        self.key = f"_staging/{uuid.uuid4().hex}"
        cutoff = time.time() - self.ABANDONED_AFTER_S
        storage.delete([o.key for o in storage.list("_staging/") if o.modified < cutoff])
        native = storage.spark_path(self.key)
        self.local = None if native else _Staging.new_dir("trusted-out")
        self.target = native or str(self.local)

    def write(self, df, name: str, partition_by: str | None = None) -> dict[str, Path | StoredFile]:
        """Write `df` as Parquet under `name`: {path relative to it: file}."""
        writer = df.write.mode("overwrite")
        (writer.partitionBy(partition_by) if partition_by else writer).parquet(f"{self.target}/{name}")
        if self.local is not None:
            folder = self.local / name
            found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.parquet")}
        else:
            prefix = f"{self.key}/{name}/"
            found = {
                o.key[len(prefix) :]: StoredFile(o.key, o.size) for o in self.storage.list(prefix) if o.key.endswith(".parquet")
            }
        # Spark's bookkeeping (_SUCCESS, _temporary/, .crc) is never data.
        return {rel: f for rel, f in sorted(found.items()) if not is_hidden(rel)}

    def close(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)
        else:
            self.storage.delete_tree(self.key)


def _by_partition(
    files: dict[str, Path | StoredFile], keys: list[str], context: OutputContext
) -> dict[str, dict[str, Path | StoredFile]]:
    """Spark's `dt=<key>/part-….parquet` files grouped by partition key: {key: {file name: file}}."""
    by_key: dict[str, dict] = {}
    for rel, source in files.items():
        key = partition_key_from_path(rel)
        if key not in keys:
            raise Failure(
                f"{context.asset_key.to_user_string()} produced rows for {rel.split('/')[0]}, outside this run's partitions {keys[0]}…{keys[-1]}"
            )
        by_key.setdefault(key, {})[rel.rsplit("/", 1)[1]] = source
    return by_key


def _rejected_metadata(storage: Storage, rejected_key: str, table: SparkTable, files: Iterable[Path | StoredFile]) -> dict:
    if table.rejected is None:
        return {}
    return {"rejected_rows": _row_count(storage, files), "rejected_path": MetadataValue.path(storage.uri(rejected_key))}


def _row_count(storage: Storage, files: Iterable[Path | StoredFile]) -> int:
    # Parquet footers hold the row counts: no second Spark job over the data.
    return sum(_parquet_rows(storage, f) for f in files)


def _parquet_rows(storage: Storage, source: Path | StoredFile) -> int:
    if isinstance(source, Path):
        return pq.read_metadata(source).num_rows
    # Two small range reads instead of the whole file: the footer's length, then the footer.
    # read_metadata parses only the footer, framed by the magic bytes it checks.
    tail = storage.get_range(source.key, source.size - 8, 8)
    length = int.from_bytes(tail[:4], "little")
    footer = storage.get_range(source.key, source.size - 8 - length, length)
    return pq.read_metadata(pa.BufferReader(b"PAR1" + footer + tail)).num_rows


def _table_metadata(storage: Storage, path: str, df, files: list[Path | StoredFile], total_bytes: int) -> dict:
    return {
        "path": MetadataValue.path(storage.uri(path)),
        "bytes": total_bytes,
        "files": len(files),
        "dagster/row_count": _row_count(storage, files),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=f.name, type=f.dataType.simpleString()) for f in df.schema.fields]
        ),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
