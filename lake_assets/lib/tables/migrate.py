"""Turn a trusted zone published with `_manifest.json` files into the Iceberg tables, in place.

Before the trusted tables were Iceberg tables, each dataset folder (`trusted/filmes/`, each
`trusted/tmdb/dt=…/`) was published with the manifest protocol (lake_assets/lib/storage/publish.py): its
`_manifest.json` names the committed files. This module registers exactly those files in the
table's catalog, one Iceberg commit per table, without rewriting or moving a byte: readers then see
the same rows through the table, and every later publish replaces days the Iceberg way.

Files published before Iceberg hold no `dt` column (Spark's partitionBy moved it into the folder
name), so pyiceberg's `add_files`, which infers a file's partition from its column statistics,
would register them with a null day. Each file is described by pyiceberg's own
`parquet_file_to_data_file` (the same schema check and statistics as `add_files`), and its partition
is then set from its folder; an Iceberg reader fills an identity-partition column that a file lacks
from that value, so `dt` reads back as a column.

Idempotent: a table marked as migrated (a table property, set in the migration's own commit) is
left alone, and so is every day that an Iceberg commit already holds (the pipeline published it
again after the switch: the manifest's version is the older one). Folders committed through Iceberg
only (`<write id>/` subfolders, no manifest) have nothing to migrate. The pipeline may run meanwhile:
a commit that lands first on a day being migrated wins it, and the migration plans again.

The manifests stay where they are. The migration then adds metadata and changes no object of the
lake, so undoing it is dropping the tables from the catalog (without purging), and no reader looks
at them (`_`-names are bookkeeping, `storage.is_hidden`); the raw zone still publishes with them.

    python -m lake_assets.cli.migrate    # make migrate
"""

import datetime as dt
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, In
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.metadata import TableMetadata

from lake_assets.lib.errors import first_line
from lake_assets.lib.partitions import dt_folders
from lake_assets.lib.staging import parquet_footer
from lake_assets.lib.storage import Storage, is_hidden
from lake_assets.lib.storage.publish import StoredFile, committed_files
from lake_assets.lib.tables import iceberg
from lake_assets.lib.tables.catalog import NAMESPACE, table_identifier

# Set in the migration's commit: a table that has it was migrated, whatever its snapshots say since
# (retention may expire the migration's snapshot; a day deleted later must not come back).
MIGRATED_PROPERTY = "lake.migrated-from-manifests"
MIGRATION_RUN_ID = "migration-from-manifests"
# Footers are read one request or two at a time: on S3 that is latency, so several at once.
_FOOTER_THREADS = 8

_log = logging.getLogger(__name__)


class MigrationError(Exception):
    """A table could not be migrated and nothing of it was committed (one line, naming the table).
    `done` holds the tables migrated (or found migrated) before it."""

    def __init__(self, message: str, done: Sequence["TableMigration"] = ()):
        super().__init__(message)
        self.done = list(done)


@dataclass(frozen=True)
class TableMigration:
    """What the migration did to one table."""

    path: str  # trusted/tmdb
    identifier: str  # trusted.tmdb
    partitions: list[str]  # days committed by this migration ([] for an unpartitioned table)
    files: int
    rows: int
    snapshot_id: int | None  # the migration's commit; None when nothing was committed
    already_in_iceberg: list[str] = field(default_factory=list)  # manifest days an Iceberg commit already holds
    note: str = ""  # why nothing was committed

    def summary(self) -> str:
        if self.snapshot_id is None:
            return f"{self.identifier}: nothing migrated ({self.note})"
        days = f"{len(self.partitions)} partition(s), " if self.partitions else ""
        kept = f"; {len(self.already_in_iceberg)} day(s) already in Iceberg left alone" if self.already_in_iceberg else ""
        return f"{self.identifier}: {days}{self.files} file(s), {self.rows} row(s) committed in snapshot {self.snapshot_id}{kept}"


@dataclass(frozen=True)
class MigrationReport:
    tables: list[TableMigration]

    @property
    def changed(self) -> bool:
        return any(t.snapshot_id is not None for t in self.tables)

    def lines(self) -> list[str]:
        return [t.summary() for t in self.tables]


def tables_to_migrate() -> dict[str, str | None]:
    """Lake path -> partition column of every trusted table, as the contracts declare them."""
    from lake_assets.lib.contracts import FILMES, TMDB  # pyspark's column API, imported only when migrating

    return {contract.table: contract.partition_column for contract in (FILMES, TMDB)}


def migrate(lake, log: logging.Logger | None = None, tables: Mapping[str, str | None] | None = None) -> MigrationReport:
    """Register every trusted table's manifest-committed files in its Iceberg table (one commit per
    table, no data file rewritten). `lake` is an initialised LakeResource; `tables` (lake path ->
    partition column) defaults to the contracts' tables. Raises `MigrationError` (one line) for the
    first table that cannot be migrated; the tables before it stay committed, and a rerun skips them."""
    log = log or _log
    storage = lake.storage(NAMESPACE)
    done: list[TableMigration] = []
    for path, partition_column in (tables if tables is not None else tables_to_migrate()).items():
        try:
            result = _migrate_table(lake, storage, path, partition_column)
        except Exception as error:
            reason = first_line(error) if isinstance(error, MigrationError) else f"{type(error).__name__}: {first_line(error)}"
            raise MigrationError(
                f"migrating {path} to {table_identifier(path)}: {reason}; nothing of this table was committed", done
            ) from error
        log.info(f"migration: {result.summary()}")
        done.append(result)
    return MigrationReport(done)


def _migrate_table(lake, storage: Storage, path: str, partition_column: str | None) -> TableMigration:
    identifier = table_identifier(path)
    published = _published(storage, path, partition_column, lake.layout)
    if not any(published.values()):  # before the catalog is opened: a lake with nothing to migrate gets none
        return _nothing(path, "no folder of it has a manifest naming data files")
    catalog = lake.iceberg_catalog()
    schema: pa.Schema | None = None
    last: Exception | None = None
    for attempt in range(1, iceberg.COMMIT_ATTEMPTS + 1):
        table = iceberg.load(catalog, path)
        if table is not None and MIGRATED_PROPERTY in table.properties:
            return _nothing(path, f"migrated on {table.properties[MIGRATED_PROPERTY]}")
        current = table.current_snapshot() if table is not None else None
        if partition_column is None and current is not None:
            # A publish through Iceberg replaces the whole table: the manifest's version is older.
            return _nothing(path, "the table already has an Iceberg commit, which replaced the manifest's version")
        # Days an Iceberg commit holds were published after the switch: their manifest version is older.
        # A partitioned table's keys are all days: the `is not None` filters only narrow the type.
        held = (
            set(iceberg.current_files(table, storage, [day for day in published if day is not None]))
            if partition_column and table
            else set()
        )
        already = sorted(day for day in held & set(published) if day is not None)
        wanted = {day: files for day, files in published.items() if day not in held and files}
        if not wanted:
            return _nothing(path, "every manifest-published day is already in Iceberg", already)
        if schema is None:
            schema = _schema(storage, path, [f for files in published.values() for f in files], partition_column)
        if table is None:
            table = iceberg.ensure_table(catalog, storage, path, schema, partition_column)
        try:
            snapshot, data_files = _commit(table, storage, schema, wanted, partition_column)
        except (CommitFailedException, ValidationException) as error:  # another writer won: plan again on top of it
            last = error
            time.sleep(0.05 * attempt)
            continue
        days = sorted(d for d in wanted if d is not None)
        rows = sum(f.record_count for f in data_files)
        return TableMigration(path, identifier, days, len(data_files), rows, snapshot, already)
    raise MigrationError(f"other writers committed first {iceberg.COMMIT_ATTEMPTS} times in a row ({first_line(last)})")


def _published(storage: Storage, path: str, partition_column: str | None, layout) -> dict[str | None, list[StoredFile]]:
    """Partition (None: the whole table) -> the data files its manifest commits; folders without a
    manifest (committed through Iceberg only, or never published) are not listed. Rejected rows
    (`_rejected/`) and other `_`-names are bookkeeping, never table data."""
    folders = {None: path} if partition_column is None else dt_folders(storage, f"{path}/", layout)
    published = {}
    for partition, folder in sorted(folders.items(), key=lambda item: item[0] or ""):
        folder = folder.rstrip("/")
        files = committed_files(storage, folder)
        if files is not None:
            published[partition] = [f for f in files if not is_hidden(f.key[len(folder) + 1 :])]
    return published


def _schema(storage: Storage, path: str, files: Sequence[StoredFile], partition_column: str | None) -> pa.Schema:
    """The files' columns (a column some files lack reads as null in them), plus the partition column
    as a string when the files do not hold it."""
    with ThreadPoolExecutor(_FOOTER_THREADS) as pool:
        schemas = list(pool.map(lambda f: _checked_footer(storage, f).schema.to_arrow_schema(), files))
    try:
        schema = pa.unify_schemas(schemas)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise MigrationError(f"the files of {path} disagree on a column's type: {first_line(error)}") from None
    # Spark's row metadata describes one file, not the table; a field's own metadata (a doc) stays.
    schema = schema.remove_metadata()
    if partition_column and partition_column not in schema.names:
        schema = schema.append(pa.field(partition_column, pa.string()))
    return schema


def _commit(
    table: Table,
    storage: Storage,
    schema: pa.Schema,
    wanted: Mapping[str | None, Sequence[StoredFile]],
    partition_column: str | None,
) -> tuple[int, list[DataFile]]:
    """One transaction, one snapshot: the files' columns joined to the table's, the name mapping that
    lets readers find columns in files written without Iceberg field ids, the append of every file,
    and the migrated mark. Returns the snapshot id and the data files."""
    days = [d for d in wanted if d is not None]
    properties = {iceberg.RUN_ID_PROPERTY: MIGRATION_RUN_ID, iceberg.PARTITIONS_PROPERTY: ",".join(days)}
    with table.transaction() as tx:
        with tx.update_schema() as update:
            update.union_by_name(schema)
        if tx.table_metadata.name_mapping() is None:  # as add_files does
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
        # A delete of the migrated days, which hold nothing yet (the caller left out the days Iceberg
        # holds): it removes nothing and makes no snapshot, but when pyiceberg retries this commit on
        # top of another writer's, it raises ValidationException if that writer added files to these
        # days (serializable isolation), instead of appending their manifest version beside the newer one.
        with warnings.catch_warnings():  # "did not match any records": what it is for
            warnings.simplefilter("ignore")
            tx.delete(
                In(term=partition_column, literals=days) if partition_column else AlwaysTrue(), snapshot_properties=properties
            )
        data_files = _data_files(table, tx.table_metadata, storage, wanted, partition_column)
        with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for data_file in data_files:
                append.append_data_file(data_file)
        tx.set_properties({MIGRATED_PROPERTY: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    return iceberg.current_snapshot_id(table), data_files


def _data_files(
    table: Table,
    metadata: TableMetadata,
    storage: Storage,
    wanted: Mapping[str | None, Sequence[StoredFile]],
    partition_column: str | None,
) -> list[DataFile]:
    """Each file as `add_files` describes it (schema check, column statistics, size), with its
    partition set from its folder instead of inferred from a column the file does not hold."""
    position = 0 if partition_column else None  # the spec has one field, the identity of `dt`

    def describe(partition: str | None, file: StoredFile) -> DataFile:
        data_file = parquet_file_to_data_file(table.io, metadata, storage.uri(file.key))
        if data_file.file_size_in_bytes != file.size:
            raise MigrationError(
                f"{storage.uri(file.key)} has {data_file.file_size_in_bytes} bytes, its manifest says {file.size}: "
                "it changed after its publish"
            )
        if position is not None:
            inferred = data_file.partition[position]
            if inferred is not None and inferred != partition:
                raise MigrationError(
                    f"{storage.uri(file.key)} holds {partition_column}={inferred} but lies in the folder of {partition}"
                )
            data_file.partition[position] = partition
        return data_file

    jobs: list[tuple[str | None, StoredFile]] = [(p, f) for p, files in wanted.items() for f in files]
    with ThreadPoolExecutor(_FOOTER_THREADS) as pool:
        return list(pool.map(lambda job: describe(*job), jobs))


def _nothing(path: str, note: str, already: Sequence[str] = ()) -> TableMigration:
    return TableMigration(path, table_identifier(path), [], 0, 0, None, list(already), note)


def _checked_footer(storage: Storage, file: StoredFile) -> pq.FileMetaData:
    try:
        return parquet_footer(storage, file)
    except ValueError as error:
        raise MigrationError(f"{error}, as its manifest says") from None
