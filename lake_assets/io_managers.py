"""IO managers: the only code that knows where an asset's data lives.

The raw-zone IO manager lands files and JSON records and hands the trusted assets what they read
(Spark-readable paths, a header, record counts). The trusted IO manager publishes a contracted
DataFrame: it writes the table and its rejected rows once, takes the contract's counts from that
same write, publishes each table or `dt=` partition that keeps its contract (atomically, through
the publish protocol), leaves the previous version of any that does not, and appends the results
to the quality log. Every asset runs unchanged on the local lake and on S3.
"""

import datetime as dt
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
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

from lake_assets.contracts import Contract, RuleResult, Severity
from lake_assets.contracts.evaluate import (
    Observed,
    Partition,
    judge,
    quality_log,
    schema_result,
    split,
    violations_by_partition,
)
from lake_assets.contracts.rules import FLAG_PREFIX, ComparedToPrevious
from lake_assets.partitions import dt_path, partition_key_column
from lake_assets.resources import CatalogResource, LakeResource, SparkResource
from lake_assets.staging import LocalScratch, SparkStage, StagedFile, parquet_footer, spark_readable
from lake_assets.storage import ObjectInfo, Storage, is_hidden
from lake_assets.storage.publish import Published, publish, upload_all
from lake_assets.tables import iceberg
from lake_assets.tables.catalog import describe as describe_catalog
from lake_assets.tables.catalog import table_identifier

JSONL_RECORDS_PER_FILE = 100  # the raw zone's convention: at most 100 records a file
HEAD_BYTES = 64 * 1024  # enough for any header line
LAKE_PATH = "lake_path"  # definition metadata: where an asset lives, below its zone's root
QUALITY_LOG = "trusted/_quality"  # one Parquet file per table per run: readable with DuckDB
_IO_THREADS = 8  # partitions listed, downloaded or published at once in a range run (S3 latency bound)


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


# --- what the raw zone lands and hands over ------------------------------------------------------


@dataclass(frozen=True)
class LandedFile:
    """A file to land in the raw zone byte for byte."""

    path: Path


@dataclass(frozen=True)
class JsonRecords:
    """JSON documents to land unchanged as JSON Lines, in files of at most 100 records."""

    records: Sequence[dict]


@dataclass(frozen=True)
class RawFile:
    """One raw file as a trusted asset reads it: a path Spark can open, its first bytes (the header,
    read without a Spark job), and a byte stream for the checks that read it without Spark."""

    uri: str
    spark_path: str
    head: bytes
    storage: Storage
    key: str

    def open(self) -> BinaryIO:
        return self.storage.open_read(self.key)


@dataclass(frozen=True)
class RawFolders:
    """The raw partitions a trusted run reads: Spark-readable files and the records (non-blank JSON
    lines, counted here without Spark) of each partition key, and the folders' dt layout. Days with
    no raw files are `missing`: the asset fails on them itself, after recording what it must."""

    files: Mapping[str, list[str]]
    records: Mapping[str, int]
    layout: str
    missing: Sequence[str] = ()
    where: str = ""

    def missing_message(self, asset: str) -> str:
        shown = ", ".join(self.missing[:5]) + ("…" if len(self.missing) > 5 else "")
        return f"no raw files for {len(self.missing)} partition(s) of {asset} ({shown}) under {self.where}: materialise them, or land files there"


def landed_files(storage: Storage, prefix: str) -> list[ObjectInfo]:
    """Every data file of a raw folder: the raw zone is a landing zone, and a file dropped next to
    ones this project wrote is data too. (`_`/`.` names are bookkeeping: manifests, temp files.)"""
    return [obj for obj in storage.list(prefix.rstrip("/") + "/") if not is_hidden(obj.key[len(prefix) :])]


def _landed_keys(storage: Storage, prefix: str) -> list[str]:
    return [obj.key for obj in landed_files(storage, prefix)]


class RawZoneIOManager(ConfigurableIOManager):
    """Lands raw data unchanged: a file byte for byte, or JSON records as JSON Lines per partition."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: LandedFile | JsonRecords) -> None:
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        if isinstance(obj, LandedFile):
            storage.put_file(obj.path, path)
            context.add_output_metadata(
                {"path": MetadataValue.path(storage.uri(path)), "bytes": obj.path.stat().st_size, "sha256": _sha256(obj.path)}
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

    def landed_days(self, asset: AssetsDefinition, keys: Sequence[str]) -> dict[str, dict]:
        """The days among `keys` that have raw files, each with the metadata of its materialisation
        (path, files, bytes, records): a day that arrived as files is registered as it is."""
        path = lake_path(asset)
        storage = self.lake.storage(_zone(path))

        def one_day(key: str) -> dict | None:
            prefix = f"{path}/{dt_path(key, self.lake.dt_layout)}"
            landed = landed_files(storage, prefix)
            if not landed:
                return None
            records = sum(json_lines_records(storage, obj.key) for obj in landed)
            return {
                "path": MetadataValue.path(storage.uri(prefix)),
                "files": len(landed),
                "bytes": sum(obj.size for obj in landed),
                "dagster/row_count": records,
            }

        with ThreadPoolExecutor(_IO_THREADS) as pool:
            found = dict(zip(keys, pool.map(one_day, keys), strict=True))
        return {key: metadata for key, metadata in found.items() if metadata is not None}

    def load_input(self, context: InputContext) -> RawFile | RawFolders:
        """The file of an unpartitioned asset, else the files of the partitions this step reads."""
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        if not context.has_asset_partitions:
            found = [obj for obj in storage.list(path) if obj.key == path]
            if not found:
                raise Failure(f"nothing at {storage.uri(path)}: materialise {context.asset_key.to_user_string()} first")
            head = storage.get_range(path, 0, min(found[0].size, HEAD_BYTES)) if found[0].size else b""
            return RawFile(storage.uri(path), spark_readable(storage, [path], "raw-in")[0], head, storage, path)
        keys = list(context.asset_partition_keys)

        def one_day(key: str) -> tuple[list[str], list[str], int]:
            landed = _landed_keys(storage, f"{path}/{dt_path(key, self.lake.dt_layout)}")
            readable = spark_readable(storage, landed, f"raw-in-{key}")
            return landed, readable, sum(json_lines_records(storage, k, r) for k, r in zip(landed, readable, strict=True))

        # Days are independent folders: on S3 their listings and downloads overlap (a year is 365 of each).
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            days = dict(zip(keys, pool.map(one_day, keys), strict=True))
        missing = [key for key, (landed, _, _) in days.items() if not landed]
        files = {key: readable for key, (_, readable, _) in days.items() if key not in missing}
        records = {key: count for key, (_, _, count) in days.items() if key not in missing}
        return RawFolders(files, records, self.lake.dt_layout, missing, storage.uri(path))


def json_lines_records(storage: Storage, key: str, local_copy: str = "") -> int:
    """Non-blank lines of a JSON Lines file: the records Spark's JSON reader sees (blank lines are
    skipped). Read from the local copy when there is one, else from the storage."""
    local = Path(local_copy)
    with local.open("rb") if local_copy and local.is_absolute() and local.exists() else storage.open_read(key) as data:
        return sum(1 for line in data if line.strip())


def land_json_lines(storage: Storage, prefix: str, records: Sequence[dict]) -> Published:
    """Publish `records` as the whole content of a raw folder, in JSON Lines files of at most 100."""
    folder = LocalScratch.new_dir("raw-out")
    try:
        return publish(storage, prefix, _write_jsonl_chunks(records, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_jsonl_chunks(records: Sequence[dict], folder: Path) -> dict[str, Path]:
    # A write id in every name: the publish protocol never overwrites a committed file.
    write_id = uuid.uuid4().hex[:12]
    files = {}
    for index in range(0, len(records), JSONL_RECORDS_PER_FILE):
        name = f"part-{index // JSONL_RECORDS_PER_FILE:05d}-{write_id}.jsonl"
        path = folder / name
        with path.open("w", encoding="utf-8") as out:
            for record in records[index : index + JSONL_RECORDS_PER_FILE]:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        files[name] = path
    return files


# --- the trusted zone ----------------------------------------------------------------------------


@dataclass
class PartitionOutcome:
    """One table or partition of a run: its contract results, and whether it was published."""

    partition: Partition
    published: bool
    uri: str
    rows: int
    rejected: int
    files: int
    bytes: int
    results: list[RuleResult]
    extra: dict
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    had_previous_version: bool = False  # for one not published: whether readers still see an earlier one

    @property
    def broken(self) -> list[RuleResult]:
        """The fail rules it broke (why it was not published)."""
        return [r for r in self.results if r.blocks_publish]

    @property
    def warned(self) -> list[RuleResult]:
        return [r for r in self.results if r.severity is Severity.WARN and r.violations and r.applicable]

    def rules_line(self) -> str:
        """The rule count, said the same way in the materialisation and in the check."""
        applicable = sum(1 for r in self.results if r.applicable)
        return f"{len(self.results)} rules ({applicable} apply): {len(self.broken)} broken, {len(self.warned)} warned"

    def not_published_line(self) -> str:
        kept = "the previous version stays readable" if self.had_previous_version else "it has no earlier version"
        return f"not published ({kept})"

    def metadata(self) -> dict:
        return {
            "dagster/row_count": self.rows,
            "path": MetadataValue.path(self.uri),
            "rejected_rows": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "rejected_path": MetadataValue.path(f"{self.uri}/_rejected"),
            "files": self.files,
            "bytes": self.bytes,
            "contract": f"{self.rules_line()}; {rejected_line(self.rejected, self.rejected_by_reason)}",
            **self.extra,
        }


def rejected_line(rejected: int, by_reason: Mapping[str, int]) -> str:
    """`2 rows rejected: 1 malformed JSON line, 1 tmdb_id_present`, or `no row rejected`."""
    if not rejected:
        return "no row rejected"
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{rejected} row{'s' * (rejected != 1)} rejected" + (f": {reasons}" if reasons else "")


@dataclass
class PublishReport:
    outcomes: list[PartitionOutcome]
    columns: list[tuple[str, str]]
    quality_log_uri: str
    column_docs: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_published(self) -> list[PartitionOutcome]:
        return [o for o in self.outcomes if not o.published]

    def column_schema(self) -> TableSchema:
        return TableSchema(
            columns=[TableColumn(name=name, type=kind, description=self.column_docs.get(name)) for name, kind in self.columns]
        )

    def failure_message(self, table: str) -> str:
        """One line per partition that was not published: the rules, counts and samples."""
        lines = []
        for outcome in self.not_published:
            where = f"{table} {outcome.partition}" if outcome.partition else table
            lines.append(f"{where} {outcome.not_published_line()}: " + "; ".join(r.summary() for r in outcome.broken))
        return "\n".join(lines)


class TrustedParquetIOManager(ConfigurableIOManager):
    """Publishes contracted Spark DataFrames to the trusted zone's Iceberg tables (`publish`): one
    catalog commit per run, of every partition that keeps its contract, and loads the current
    snapshot for downstream assets (`load_input`)."""

    lake: LakeResource
    spark: SparkResource
    catalog: CatalogResource | None = Field(
        default=None, description="Where else the tables are named after each commit (the Spark catalog); None: nowhere else."
    )

    def handle_output(self, context: OutputContext, obj) -> None:
        raise TypeError(
            f"{context.asset_key.to_user_string()}: trusted assets publish through TrustedParquetIOManager.publish "
            "(per-partition contract results) and return a MaterializeResult, not a value"
        )

    def load_input(self, context: InputContext) -> DataFrame:
        path = lake_path(context)
        storage = self.lake.storage(_zone(path))
        table = iceberg.load(self.lake.iceberg_catalog(), path)
        wanted = list(context.asset_partition_keys) if context.has_asset_partitions else None
        files = iceberg.current_files(table, storage, wanted) if table is not None else {}
        keys = [f.key for data in files.values() for f in data]
        if not keys:
            where = f"partitions {wanted}" if wanted else "any data"
            raise Failure(f"{table_identifier(path)} has no committed version with {where}: materialise it first")
        rows = self.spark.spark_session.read.parquet(*spark_readable(storage, keys, "trusted-in"))
        if wanted is None:
            return rows
        # Each row's day from its file's folder: files published before Iceberg lack the column.
        return rows.withColumn("dt", partition_key_column(F.col("_metadata.file_path"), self.lake.dt_layout))

    def publish(
        self,
        context: AssetExecutionContext,
        flagged: DataFrame,
        contract: Contract,
        layout: str,
        *,
        source_records: Callable[[], Mapping[Partition, int]] | None = None,
        describe: Callable[[Partition, pa.Table], dict] | None = None,
        metadata: Mapping | None = None,
    ) -> PublishReport:
        """Write `flagged` (a contract's `apply` output) once, judge the contract per partition from
        that write, commit what keeps it in one Iceberg commit, and log every result.
        `source_records` (called once the writes are done, so its count can run meanwhile) feeds the
        reconcile rule; `describe` adds metadata for a published partition from its rows; `metadata`
        goes with every partition."""
        path = lake_path(context.assets_def)
        storage = self.lake.storage(_zone(path))
        catalog = self.lake.iceberg_catalog()
        part = contract.partition_column
        keys: list[Partition] = list(context.partition_keys) if part else [None]
        flagged_rules = contract.flagged_rules(layout)
        rows = split(flagged, contract, layout)
        columns = [(f.name, f.dataType.simpleString()) for f in rows.good.schema.fields if f.name != part]
        table = iceberg.load(catalog, path)
        days = [key for key in keys if key]
        current = iceberg.current_files(table, storage, days or None) if table is not None else {}
        stage = SparkStage(storage)
        try:
            # Spark's partitionBy moves a column out of the files into folder names; a copy goes there
            # instead, so `dt` stays in each file, where Iceberg reads a file's partition value.
            good = rows.good.withColumn(_FOLDER_COLUMN, F.col(part)) if part else rows.good
            data = _by_partition(stage.write(good, "data", partition_by=_FOLDER_COLUMN if part else None), keys, context)
            totals = rows.totals
            spark = self.spark.spark_session
            # Rejected rows, when there are any: from the table write's observation, or from a pass of
            # their own when there are too many to keep there (`Split.quarantine`).
            quarantined = (
                _by_partition(stage.write(rows.quarantine(spark), "rejected", partition_by=part), keys, context)
                if totals["rejected"]
                else {}
            )
            violated = [r for r in flagged_rules if totals.get(FLAG_PREFIX + r.name, 0)]
            observed = Observed(
                rows={key: _row_count(storage, data.get(key, {}).values()) for key in keys},
                rejected={key: _row_count(storage, quarantined.get(key, {}).values()) for key in keys},
                violations=violations_by_partition(stage.read(spark, "data"), contract, violated) if violated else {},
                rejected_by_reason=rows.reasons(contract, lambda: stage.read(spark, "rejected")) if totals["rejected"] else {},
                source_records=source_records() if source_records else {},
            )
            if any(isinstance(r, ComparedToPrevious) for r in contract.rules):
                observed.previous_rows = self._previous_rows(table, storage, days, observed.rows)
            schema = schema_result(contract, layout, columns)
            outcomes = [
                _outcome(
                    key, storage.uri(self._folder(path, key)), judge(contract, layout, key, observed, schema), observed, current
                )
                for key in keys
            ]
            published = [o for o in outcomes if o.published]
            if published:
                snapshot = self._commit(
                    context,
                    published,
                    storage=storage,
                    catalog=catalog,
                    path=path,
                    contract=contract,
                    layout=layout,
                    files={"data": data, "rejected": quarantined},
                    describe=describe,
                )
                table = iceberg.load(catalog, path)
                for outcome in published:
                    outcome.extra.update(snapshot)
            for outcome in outcomes:
                outcome.extra = {**(metadata or {}), **outcome.extra}
        finally:
            stage.close()
        log_uri = self._log(storage, contract, context.run_id, outcomes)
        if self.catalog is not None and published:  # after the commit: a catalog never names uncommitted data
            registered = self.catalog.register(
                storage,
                path,
                table,
                [o.partition for o in published] if part else None,
                log=context.log,
                spark_session=self.spark.spark_session,
            )
            for outcome in published:
                outcome.extra.update(registered)
        return PublishReport(outcomes, columns, log_uri, contract.column_docs(layout))

    def _folder(self, path: str, key: Partition) -> str:
        """A table's folder, or its partition's (`dt=...`) below it."""
        return f"{path}/{dt_path(key, self.lake.dt_layout)}" if key else path

    def _commit(self, context, published, *, storage, catalog, path, contract, layout, files, describe) -> dict:
        """Copy the published partitions' files (`files`: staged "data" and "rejected" rows by
        partition) to their final keys, each in a folder of this write, then commit them all at once.
        Returns the snapshot's metadata; on a lost race the copies are removed and the run fails with
        one line (the current version is untouched)."""
        data, quarantined = files["data"], files["rejected"]
        write_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        placed: dict[str, StagedFile] = {}
        table_keys: list[str] = []
        for outcome in published:
            key = outcome.partition
            folder = f"{self._folder(path, key)}/{write_id}"
            files = data.get(key, {})
            for name, source in files.items():
                placed[f"{folder}/{name}"] = source
                table_keys.append(f"{folder}/{name}")
            for name, source in quarantined.get(key, {}).items():
                placed[f"{folder}/_rejected/{name}"] = source
            outcome.uri = storage.uri(folder)
            outcome.files = len(files)
            outcome.bytes = sum(_size(source) for source in files.values())
            if describe is not None:
                outcome.extra = describe(key, _read_arrow(storage, files.values()))
        upload_all(storage, placed)
        first = next(iter(data[published[0].partition].values()))
        schema = _documented(_written_schema(storage, first), contract.column_docs(layout))
        try:
            snapshot = iceberg.replace(
                catalog,
                storage,
                path,
                schema,
                table_keys,
                [o.partition for o in published],
                contract.partition_column,
                run_id=context.run_id,
            )
        except iceberg.CommitConflict as error:
            storage.delete(sorted(placed))  # never committed: no reader can name them
            raise Failure(str(error)) from None
        return {
            "dagster/table_name": table_identifier(path),
            "dagster/uri": storage.uri(path),
            "snapshot_id": str(snapshot),
            "catalog": describe_catalog(self.lake),
        }

    def _previous_rows(self, table, storage: Storage, days: Sequence[str], this_run: Mapping[Partition, int]) -> dict:
        """Rows of each day's previous day: from this run if it wrote that day, else as the current
        snapshot's manifests count them (no file is read)."""
        before = {key: (dt.date.fromisoformat(key) - dt.timedelta(days=1)).isoformat() for key in days}
        wanted = sorted({day for day in before.values() if day not in this_run})
        stored = iceberg.rows_by_partition(iceberg.current_files(table, storage, wanted)) if table is not None and wanted else {}
        return {key: this_run[day] if day in this_run else stored.get(day) for key, day in before.items()}

    def _log(self, storage: Storage, contract: Contract, run_id: str, outcomes: list[PartitionOutcome]) -> str:
        now = dt.datetime.now(dt.UTC)
        log = quality_log(contract.table, run_id, now, {o.partition: (o.results, o.published) for o in outcomes})
        sink = pa.BufferOutputStream()
        pq.write_table(log, sink)
        key = f"{QUALITY_LOG}/{contract.table.split('/')[-1]}-{now:%Y%m%dT%H%M%S}-{run_id[:8]}.parquet"
        storage.put_bytes(sink.getvalue().to_pybytes(), key)
        return storage.uri(key)


def _outcome(key: Partition, uri: str, results: list[RuleResult], observed: Observed, current: Mapping) -> PartitionOutcome:
    """A partition's contract results as an outcome: published unless a `fail` rule blocks it."""
    return PartitionOutcome(
        partition=key,
        published=not any(r.blocks_publish for r in results),
        uri=uri,
        rows=observed.rows.get(key, 0),
        rejected=observed.rejected.get(key, 0),
        files=0,
        bytes=0,
        results=results,
        extra={},
        rejected_by_reason=observed.rejected_by_reason.get(key, {}),
        had_previous_version=key in current,
    )


# The staging copy of the partition column that Spark turns into folder names.
_FOLDER_COLUMN = "dt_folder"  # not `_`-prefixed: Spark and the stage skip such folders


def _written_schema(storage: Storage, source: StagedFile) -> pa.Schema:
    return parquet_footer(storage, source).schema.to_arrow_schema()


def _documented(schema: pa.Schema, docs: Mapping[str, str]) -> pa.Schema:
    """The written schema with each column's contract description as its Iceberg field doc."""
    return pa.schema(
        [f.with_metadata({b"doc": docs[f.name].encode()}) if docs.get(f.name) else f.remove_metadata() for f in schema]
    )


def _size(source: StagedFile) -> int:
    return source.stat().st_size if isinstance(source, Path) else source.size


def _by_partition(files: dict[str, StagedFile], keys: list[Partition], context) -> dict[Partition, dict[str, StagedFile]]:
    """Spark's files grouped by partition key (`<column>=<key>/part-….parquet`): {key: {file name: file}}."""
    if keys == [None]:
        return {None: files}
    by_key: dict[Partition, dict] = {}
    for rel, source in files.items():
        folder, _, name = rel.rpartition("/")
        key = folder.partition("=")[2]
        if key not in keys:
            raise Failure(
                f"{context.asset_key.to_user_string()} produced rows for {folder}, outside this run's partitions {keys[0]}…{keys[-1]}"
            )
        by_key.setdefault(key, {})[name] = source
    return by_key


def _row_count(storage: Storage, files: Iterable[StagedFile]) -> int:
    # Parquet footers hold the row counts: no Spark job over the data.
    return sum(parquet_footer(storage, f).num_rows for f in files)


def _read_arrow(storage: Storage, files: Iterable[StagedFile]) -> pa.Table:
    tables = [
        pq.read_table(f) if isinstance(f, Path) else pq.read_table(pa.BufferReader(storage.get_bytes(f.key))) for f in files
    ]
    return pa.concat_tables(tables) if tables else pa.table({})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
