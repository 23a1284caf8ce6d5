"""The Spark catalog: the trusted zone's tables by name for a Spark with no Iceberg runtime.

The trusted tables are Iceberg tables (lake_assets/lib/tables/): pyiceberg, Athena and Glue 5 jobs
(through a Glue catalog), and a Spark cluster with the Iceberg runtime read them natively. The Spark
of `make dev` has no Iceberg runtime (a Maven JAR, which cannot be fetched here), so after each
commit its catalog gets a plain Parquet table whose partitions point at the folders of the current
snapshot's files: each publish writes a day into a folder of its own (`dt=2024-03-31/<write id>/`),
so a partition's location holds exactly one committed version. The design: docs/catalog.md.

`python -m lake_assets.cli.catalog sync` names every table and partition of the current snapshots.
"""

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from lake_assets.lib.errors import LakeError, first_line
from lake_assets.lib.storage import Storage
from lake_assets.lib.tables import iceberg

Column = tuple[str, str]  # (name, Hive/Spark SQL type)

PARTITION_COLUMN: Column = ("dt", "string")
SPARK_PARTITIONS_PER_STATEMENT = 100


class CatalogError(LakeError):
    """Naming the tables in a catalog failed after the data was committed: the message says where and
    why, on one line. The tables are intact; materialising again (or `python -m lake_assets.cli.catalog
    sync`) retries."""


# --- types and columns (pure) ---------------------------------------------------------------------

_SIMPLE_TYPES = {
    pa.bool_(): "boolean",
    pa.int8(): "tinyint",
    pa.int16(): "smallint",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.uint8(): "smallint",
    pa.uint16(): "int",
    pa.uint32(): "bigint",
    pa.uint64(): "decimal(20,0)",
    pa.float16(): "float",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.binary(): "binary",
    pa.large_binary(): "binary",
    pa.date32(): "date",
    pa.date64(): "date",
}


def hive_type(arrow_type: pa.DataType) -> str:
    """The Glue/Hive type of a Parquet column as Arrow reads it; the same string is a Spark SQL type."""
    types = pa.types
    if arrow_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[arrow_type]
    if types.is_timestamp(arrow_type):
        return "timestamp"
    if types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if types.is_fixed_size_binary(arrow_type):
        return "binary"
    if types.is_list(arrow_type) or types.is_large_list(arrow_type) or types.is_fixed_size_list(arrow_type):
        return f"array<{hive_type(arrow_type.value_type)}>"
    if types.is_map(arrow_type):
        return f"map<{hive_type(arrow_type.key_type)},{hive_type(arrow_type.item_type)}>"
    if types.is_struct(arrow_type):
        return "struct<" + ",".join(f"{field.name}:{hive_type(field.type)}" for field in arrow_type) + ">"
    raise ValueError(f"no Glue/Hive type for Arrow type {arrow_type}")


def columns_of(schema: pa.Schema) -> tuple[Column, ...]:
    """A written schema as catalog columns; a type no catalog can describe is refused, naming the column."""
    columns = []
    for field in schema:
        try:
            columns.append((field.name, hive_type(field.type)))
        except ValueError as error:
            raise ValueError(f"column {field.name!r}: {error}") from None
    return tuple(columns)


@dataclass(frozen=True)
class TableSpec:
    database: str
    name: str
    location: str
    columns: tuple[Column, ...]  # the data columns; `dt` is the partition key of a partitioned table
    partitioned: bool


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """A string literal for Spark SQL."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _column_list(columns: Sequence[Column], separator: str = ", ") -> str:
    return separator.join(f"{_quoted(name)} {kind}" for name, kind in columns)


# --- the Spark catalog (planning is pure; `register_in_spark` runs it) ---------------------------


@dataclass(frozen=True)
class SparkTable:
    """A table as the Spark catalog holds it."""

    columns: tuple[Column, ...]  # data columns, without the partition column
    location: str
    partitions: tuple[str, ...]


def _spark_name(spec: TableSpec) -> str:
    return f"{_quoted(spec.database)}.{_quoted(spec.name)}"


def _same_location(a: str, b: str) -> bool:
    def normal(location: str) -> str:
        return re.sub(r"^file:(//)?", "", location).rstrip("/")

    return normal(a) == normal(b)


def spark_table_statements(spec: TableSpec, current: SparkTable | None) -> tuple[list[str], bool]:
    """The Spark SQL that makes the catalog's table match `spec` (its columns already merged), and
    whether the table is created anew (its partitions must then be added again)."""
    columns = [*spec.columns, PARTITION_COLUMN] if spec.partitioned else list(spec.columns)
    create = (
        f"CREATE TABLE IF NOT EXISTS {_spark_name(spec)} ({_column_list(columns)}) USING parquet"
        + (f" PARTITIONED BY ({_quoted(PARTITION_COLUMN[0])})" if spec.partitioned else "")
        + f" LOCATION {sql_string(spec.location)}"
    )
    if current is None:
        return [create], True
    if _same_location(current.location, spec.location) and spec.columns[: len(current.columns)] == current.columns:
        added = spec.columns[len(current.columns) :]
        return ([f"ALTER TABLE {_spark_name(spec)} ADD COLUMNS ({_column_list(added)})"] if added else []), False
    # A column changed type, or the lake moved: a Parquet table's column types cannot be altered in
    # place. The definition is dropped (the table is EXTERNAL: its data stays) and created again.
    return [f"DROP TABLE IF EXISTS {_spark_name(spec)}", create], True


def spark_partition_statements(spec: TableSpec, partitions: Sequence[tuple[str, str]], existing: Sequence[str] = ()) -> list[str]:
    """Statements that point each (key, location) partition at its location: `ADD PARTITION`,
    batched, for new keys; `SET LOCATION` for keys the table has (a new version lives in a new folder)."""
    known = set(existing)
    added = [(key, location) for key, location in partitions if key not in known]
    statements = [
        f"ALTER TABLE {_spark_name(spec)} PARTITION ({_quoted(PARTITION_COLUMN[0])}={sql_string(key)}) "
        f"SET LOCATION {sql_string(location)}"
        for key, location in partitions
        if key in known
    ]
    for start in range(0, len(added), SPARK_PARTITIONS_PER_STATEMENT):
        chunk = added[start : start + SPARK_PARTITIONS_PER_STATEMENT]
        parts = " ".join(
            f"PARTITION ({_quoted(PARTITION_COLUMN[0])}={sql_string(key)}) LOCATION {sql_string(location)}"
            for key, location in chunk
        )
        statements.append(f"ALTER TABLE {_spark_name(spec)} ADD IF NOT EXISTS {parts}")
    return statements


def spark_catalog_is_persistent(session) -> bool:
    return session.conf.get("spark.sql.catalogImplementation", "in-memory") == "hive"


def _spark_current(session, spec: TableSpec) -> SparkTable | None:
    name = f"{spec.database}.{spec.name}"
    if not session.catalog.tableExists(name):
        return None
    columns = tuple((c.name, c.dataType) for c in session.catalog.listColumns(name) if not c.isPartition)
    details = {row["col_name"]: row["data_type"] for row in session.sql(f"DESCRIBE TABLE EXTENDED {_spark_name(spec)}").collect()}
    partitions = ()
    if spec.partitioned:
        rows = session.sql(f"SHOW PARTITIONS {_spark_name(spec)}").collect()
        partitions = tuple(row[0].split("=", 1)[1] for row in rows)
    return SparkTable(columns, details.get("Location", ""), partitions)


def register_in_spark(
    session, spec: TableSpec, partitions: Sequence[tuple[str, str]], every_partition: Callable[[], Sequence[tuple[str, str]]]
) -> str:
    """Create or update the table in the session's catalog and point `partitions` ((key, location))
    at their folders; a table created anew gets `every_partition()`. Returns what was done, for the log."""

    def run(statement: str):
        try:
            return session.sql(statement)
        except Exception as error:  # Spark's errors carry a JVM stack: keep the first line
            raise CatalogError(f"Spark catalog: `{statement[:120]}` failed: {first_line(error)}") from None

    try:
        current = _spark_current(session, spec)
    except Exception as error:
        raise CatalogError(f"Spark catalog: reading {spec.database}.{spec.name} failed: {first_line(error)}") from None
    if current is None:  # a metastore round trip saved on every later run
        run(f"CREATE DATABASE IF NOT EXISTS {_quoted(spec.database)}")
    statements, created = spark_table_statements(spec, current)
    if created and spec.partitioned:
        partitions = list(every_partition())
    existing = () if created or current is None else current.partitions
    for statement in statements + spark_partition_statements(spec, list(partitions), existing):
        run(statement)
    state = "created" if current is None else ("re-created" if created else ("updated" if statements else "unchanged"))
    return f"{spec.database}.{spec.name} {state}" + (f", {len(partitions)} partition(s) registered" if spec.partitioned else "")


# --- one table after a commit ---------------------------------------------------------------------


def version_folders(storage: Storage, files: Mapping[str | None, Sequence[iceberg.DataFile]]) -> dict[str | None, str]:
    """The folder of each partition's current files (a publish writes one folder per partition); a
    partition whose files span folders (written by another tool) cannot be named by one location."""
    folders = {}
    for partition, data in files.items():
        found = {f.key.rsplit("/", 1)[0] for f in data}
        if len(found) != 1:
            raise CatalogError(
                f"Spark catalog: {partition or 'the table'}'s current files lie in {len(found)} folders; "
                "a plain Parquet table names one location per partition"
            )
        folders[partition] = found.pop()
    return folders


def register_table(
    storage: Storage,
    path: str,
    table,
    partitions: Sequence[str] | None,
    *,
    spark_session,
    spark_database: str | None,
    log: logging.Logger,
) -> dict[str, str]:
    """Name the table at `path` (`trusted/tmdb`) and the partitions just committed (`partitions`; None
    for an unpartitioned table) in the Spark catalog. Returns metadata for the run."""
    if spark_session is None or not spark_database or table is None:
        return {}
    name = path.rsplit("/", 1)[-1]
    if not spark_catalog_is_persistent(spark_session):
        log.info(
            f"Spark catalog: this session's catalog is in memory, so {spark_database}.{name} is not registered "
            "(the Connect server of make dev / make spark-up keeps a persistent one)"
        )
        return {}
    if storage.spark_path(path) is None:
        log.info(f"Spark catalog: Spark cannot open {storage.uri(path)} itself (LAKE_SPARK_S3A is off): not registered")
        return {}

    def spark_location(folder: str) -> str:
        # Spark opens `path` (checked above), so it opens every folder below it too.
        location = storage.spark_path(folder)
        if location is None:
            raise CatalogError(f"Spark catalog: Spark cannot open {storage.uri(folder)}")
        return location

    arrow = table.schema().as_arrow()
    columns = columns_of(pa.schema([f for f in arrow if not (partitions is not None and f.name == PARTITION_COLUMN[0])]))
    if partitions is None:
        folder = version_folders(storage, iceberg.current_files(table, storage))[None]
        if folder == path:  # migrated files sit beside the table's metadata/, which Spark would list as data
            log.info(f"Spark catalog: {spark_database}.{name} is named after its next publish (its files predate Iceberg)")
            return {}
        location = spark_location(folder)
    else:
        location = spark_location(path)
    spec = TableSpec(spark_database, name, location, columns, partitions is not None)

    def located(partitions: Sequence[str] | None) -> list[tuple[str, str]]:
        folders = version_folders(storage, iceberg.current_files(table, storage, partitions))
        # Only for a partitioned table, whose files all have a day: the filter only narrows the type.
        return [(key, spark_location(folder)) for key, folder in sorted(folders.items()) if key is not None]

    done = register_in_spark(spark_session, spec, located(partitions) if spec.partitioned else [], lambda: located(None))
    log.info(f"Spark catalog: {done}")
    return {"catalog/spark": done}
