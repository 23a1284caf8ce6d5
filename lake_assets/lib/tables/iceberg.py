"""The trusted tables as Apache Iceberg tables (format v2): their one committed version, for every reader.

Spark writes a run's Parquet files straight to their final keys, in a folder of their own per
partition (`trusted/tmdb/dt=2024-03-31/<write id>/part-….parquet`). Nothing reads them until
`replace` commits them: one catalog commit that deletes the replaced partitions (the whole table,
when unpartitioned) and adds the new files without rewriting them (`add_files`). A reader plans its
files from the current snapshot (`current_files`), or from an earlier one (time travel), so it never
sees a half-published run, a dead writer's files or two versions of one day.

Concurrency is the catalog's optimistic commit (a SQL transaction on SQLite or PostgreSQL, Glue's
`VersionId`): a writer that loses reloads the table and commits again on top of the winner, so two
runs of one day both succeed, the later commit winning.
"""

import datetime as dt
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform

from lake_assets.lib.storage import Storage
from lake_assets.lib.tables.catalog import NAMESPACE, table_identifier

# A writer that lost the commit race commits again on the winner's metadata; this many losses in a
# row means a storm of writers on one table, and the run fails with one line.
COMMIT_ATTEMPTS = 5
TABLE_PROPERTIES = {
    "format-version": "2",
    # Old metadata files go with each commit; the snapshots they list are kept by retention instead.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # A daily commit adds a manifest; merging keeps their number, and so each commit's planning, bounded.
    "commit.manifest-merge.enabled": "true",
}
RUN_ID_PROPERTY = "lake.run-id"
PARTITIONS_PROPERTY = "lake.partitions"

Partition = str | None


@dataclass(frozen=True)
class DataFile:
    """A data file of a snapshot, as the table's manifests describe it (no request to the file)."""

    key: str  # below the trusted root
    size: int
    rows: int
    partition: Partition


class CommitConflict(Exception):
    """Other writers committed first COMMIT_ATTEMPTS times in a row; nothing of this run was committed."""


def ensure_table(catalog: Catalog, storage: Storage, path: str, schema: pa.Schema, partition_column: str | None) -> Table:
    """The table at `path`, created on first use (fields carry their `doc` metadata as docs). A new
    run's columns are added to it by `replace`, in the commit itself."""
    identifier = table_identifier(path)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    catalog.create_namespace_if_not_exists(NAMESPACE)
    iceberg_schema = Catalog._convert_schema_if_needed(schema)
    spec = PartitionSpec()
    if partition_column:
        source = iceberg_schema.find_field(partition_column)
        spec = PartitionSpec(PartitionField(source.field_id, 1000, IdentityTransform(), partition_column))
    return catalog.create_table_if_not_exists(
        identifier, iceberg_schema, location=storage.uri(path), partition_spec=spec, properties=TABLE_PROPERTIES
    )


def replace(
    catalog: Catalog,
    storage: Storage,
    path: str,
    schema: pa.Schema,
    keys: Sequence[str],
    partitions: Sequence[Partition],
    partition_column: str | None,
    run_id: str = "",
) -> int:
    """Make `keys` the whole content of `partitions` (`[None]`: of the whole table) in one commit,
    adding `schema`'s new columns in the same commit; returns the new snapshot id. Raises
    `CommitConflict` (one line) after COMMIT_ATTEMPTS lost races; the files stay uncommitted for
    maintenance to remove."""
    identifier = table_identifier(path)
    paths = [storage.uri(key) for key in keys]
    replaced: BooleanExpression = In(term=partition_column, literals=list(partitions)) if partition_column else AlwaysTrue()
    properties = {RUN_ID_PROPERTY: run_id, PARTITIONS_PROPERTY: ",".join(p for p in partitions if p)}
    table = ensure_table(catalog, storage, path, schema, partition_column)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        if attempt > 1:  # the winner's metadata, to commit on top of
            table = catalog.load_table(identifier)
        try:
            with table.transaction() as tx:
                with tx.update_schema() as update:
                    update.union_by_name(schema)
                # Also on a table with no data yet: the delete is what makes pyiceberg refuse to
                # rebase this append onto another writer's files for the same days.
                with warnings.catch_warnings():  # "did not match any records": a first publish of a day
                    warnings.simplefilter("ignore")
                    tx.delete(replaced, snapshot_properties=properties)
                if paths:  # none: a rollback that only empties partitions
                    # Every write has its own folder, so a path is never already in the table: the
                    # duplicate check (which opens every manifest) would only cost time.
                    tx.add_files(paths, snapshot_properties=properties, check_duplicate_files=False)
            return current_snapshot_id(table)
        except (CommitFailedException, ValidationException) as error:
            last = error
            time.sleep(0.05 * attempt)  # the winner's commit is done; spread the retries a little
    raise CommitConflict(
        f"commit to {identifier}: other writers committed first {COMMIT_ATTEMPTS} times in a row "
        f"({type(last).__name__}: {str(last).splitlines()[0]}); nothing of this run was committed"
    )


def current_files(
    table: Table, storage: Storage, partitions: Sequence[str] | None = None, snapshot_id: int | None = None
) -> dict[Partition, list[DataFile]]:
    """The data files of the current snapshot (or of `snapshot_id`), by partition, planned from the
    manifests: `partitions` are pruned there, with no listing and no file opened."""
    partition_column = _partition_column(table)
    row_filter = In(term=partition_column, literals=list(partitions)) if partitions and partition_column else AlwaysTrue()
    files: dict[Partition, list[DataFile]] = {}
    for task in table.scan(row_filter=row_filter, snapshot_id=snapshot_id).plan_files():
        data = task.file
        partition = data.partition[0] if partition_column else None
        files.setdefault(partition, []).append(
            DataFile(storage.key_of(data.file_path), data.file_size_in_bytes, data.record_count, partition)
        )
    return files


def rows_by_partition(files: Mapping[Partition, Sequence[DataFile]]) -> dict[Partition, int]:
    return {partition: sum(f.rows for f in data) for partition, data in files.items()}


def snapshot_as_of(table: Table, when: dt.datetime) -> int:
    """The id of the snapshot that was current at `when`; a clear error before the first one."""
    snapshot = table.snapshot_as_of_timestamp(int(when.timestamp() * 1000))
    if snapshot is None:
        raise ValueError(f"{'.'.join(table.name())} had no snapshot at {when.isoformat()}")
    return snapshot.snapshot_id


def current_snapshot_id(table: Table) -> int:
    """The id of the table's current snapshot; a clear error for a table with none (no commit yet)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        raise ValueError(f"{'.'.join(table.name())} has no current snapshot")
    return snapshot.snapshot_id


def _partition_column(table: Table) -> str | None:
    spec = table.spec()
    return spec.fields[0].name if spec.fields else None


def load(catalog: Catalog, path: str) -> Table | None:
    """The table at `path`, or None before its first publish."""
    try:
        return catalog.load_table(table_identifier(path))
    except NoSuchTableError:
        return None
