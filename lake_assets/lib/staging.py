"""Scratch space for Spark: where it writes before a publish, and where S3 data is downloaded when
Spark cannot read the bucket itself.

When Spark can open the lake's own paths (the local disk; `s3a://` on clusters with S3A), it writes
to `_staging/<id>/` inside the lake and publishing is a server-side copy (a hard link on disk): no
byte passes through this process, and executors on other hosts can write. Otherwise (S3 without S3A,
as on this machine) it writes to a local folder and the files are uploaded.
"""

import atexit
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from lake_assets.lib.errors import LakeError
from lake_assets.lib.storage import Storage, is_hidden
from lake_assets.lib.storage.publish import StoredFile

StagedFile = Path | StoredFile


def parquet_footer(storage: Storage, source: StagedFile) -> pq.FileMetaData:
    """A Parquet file's footer (row counts, schema) without reading its data: for a stored file, two
    small range reads, the footer's length and then the footer."""
    if isinstance(source, Path):
        return pq.read_metadata(source)
    tail = storage.get_range(source.key, source.size - 8, 8)
    if len(tail) != 8 or tail[4:] != b"PAR1":
        raise ValueError(f"{storage.uri(source.key)}: not a Parquet file of {source.size} bytes (no PAR1 footer)")
    length = int.from_bytes(tail[:4], "little")
    footer = storage.get_range(source.key, source.size - 8 - length, length)
    return pq.read_metadata(pa.BufferReader(b"PAR1" + footer + tail))


class LocalScratch:
    """Local scratch folders for one process, removed at exit."""

    _root: Path | None = None

    @classmethod
    def new_dir(cls, label: str) -> Path:
        if cls._root is None:
            cls._root = Path(tempfile.mkdtemp(prefix="lake_assets-staging-"))
            atexit.register(shutil.rmtree, cls._root, True)
        path = cls._root / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    @classmethod
    @contextmanager
    def temporary(cls, label: str) -> Iterator[Path]:
        """A scratch folder removed as soon as the block ends."""
        path = cls.new_dir(label)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def spark_readable(storage: Storage, keys: Iterable[str], label: str) -> list[str]:
    """Paths Spark can open for these keys: native ones, or local copies of exactly these objects."""
    keys = list(keys)
    native = [path for path in (storage.spark_path(key) for key in keys) if path]
    if len(native) == len(keys):
        return native
    folder = LocalScratch.new_dir(label)
    paths = []
    for key in keys:
        local = folder / key
        storage.download(key, local)
        paths.append(str(local))
    return paths


def local_file(spark_path: str) -> Path | None:
    """The local file or folder behind a Spark path: a `file://` URI (as LocalStorage gives them,
    unescaped) or a bare absolute path (a local copy); None for a remote one (`s3a://`, `hdfs://`)."""
    if spark_path.startswith("file://"):
        return Path(spark_path[len("file://") :])
    path = Path(spark_path)
    return path if path.is_absolute() else None


class SparkStage:
    """One run's staging folder for the Parquet that Spark writes."""

    # A run killed mid-write leaves its scratch folder behind; no live write is anywhere near this old.
    ABANDONED_AFTER_S = 24 * 3600

    def __init__(self, storage: Storage):
        self.storage = storage
        self.key = f"_staging/{uuid.uuid4().hex}"
        cutoff = time.time() - self.ABANDONED_AFTER_S
        storage.delete([o.key for o in storage.list("_staging/") if o.modified < cutoff])
        native = storage.spark_path(self.key)
        self.local = None if native else LocalScratch.new_dir("trusted-out")
        self.target = native or str(self.local)

    def write(self, df: DataFrame, name: str, partition_by: str | None = None) -> dict[str, StagedFile]:
        """Write `df` as Parquet under `name`: {path relative to it: file}."""
        writer = df.write.mode("overwrite")
        (writer.partitionBy(partition_by) if partition_by else writer).parquet(f"{self.target}/{name}")
        found: dict[str, StagedFile]
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

    def local_folder(self, name: str) -> tuple[Path, str] | None:
        """A new folder under the stage for files written by this process, and its path for Spark;
        None when the stage is not on a file system here (`s3a://`). In the lake's own `_staging/`
        when Spark writes there, so executors on other hosts read it as they read the lake."""
        folder = local_file(self.target)
        if folder is None:
            return None
        (folder / name).mkdir(parents=True)
        return folder / name, f"{self.target}/{name}"

    def read(self, spark: SparkSession, name: str) -> DataFrame:
        """What `write` wrote under `name`, partition columns included (as written: `dt=...` folders)."""
        path = f"{self.target}/{name}"
        return spark.read.option("basePath", path).parquet(path)

    def close(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)
        else:
            self.storage.delete_tree(self.key)


class StagingError(LakeError):
    """Staged files that do not fit the run (a partition it does not write)."""


def written_schema(storage: Storage, source: StagedFile) -> pa.Schema:
    return parquet_footer(storage, source).schema.to_arrow_schema()


def documented(schema: pa.Schema, docs: Mapping[str, str]) -> pa.Schema:
    """The written schema with each column's contract description as its Iceberg field doc."""
    return pa.schema(
        [f.with_metadata({b"doc": docs[f.name].encode()}) if docs.get(f.name) else f.remove_metadata() for f in schema]
    )


def staged_size(source: StagedFile) -> int:
    return source.stat().st_size if isinstance(source, Path) else source.size


def by_partition(files: dict[str, StagedFile], keys: list, asset: str) -> dict:
    """Spark's files grouped by partition key (`<column>=<key>/part-….parquet`): {key: {file name: file}};
    `keys == [None]` for an unpartitioned table. A file outside `keys` is a `StagingError`."""
    if keys == [None]:
        return {None: files}
    by_key: dict = {}
    for rel, source in files.items():
        folder, _, name = rel.rpartition("/")
        key = folder.partition("=")[2]
        if key not in keys:
            raise StagingError(f"{asset} produced rows for {folder}, outside this run's partitions {keys[0]}…{keys[-1]}")
        by_key.setdefault(key, {})[name] = source
    return by_key


def row_count(storage: Storage, files: Iterable[StagedFile]) -> int:
    # Parquet footers hold the row counts: no Spark job over the data.
    return sum(parquet_footer(storage, f).num_rows for f in files)


def read_arrow(
    storage: Storage, files: Iterable[StagedFile], columns: Sequence[str] | None = None, rows: int | None = None
) -> pa.Table:
    """Staged Parquet as one table: only `columns` when given, and the first `rows` when given."""
    tables = []
    for f in files:
        source = f if isinstance(f, Path) else pa.BufferReader(storage.get_bytes(f.key))
        tables.append(pq.read_table(source, columns=list(columns) if columns is not None else None))
        if rows is not None and sum(t.num_rows for t in tables) >= rows:
            break
    table = pa.concat_tables(tables) if tables else pa.table({})
    return table.slice(0, rows) if rows is not None else table
