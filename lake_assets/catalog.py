"""The table catalog: the trusted zone's tables by name, for engines that query tables, not folders.

After each publish, the trusted IO manager registers the table and the partitions it has just committed
(`CatalogResource.register`, lake_assets/resources/catalog.py) in the AWS Glue Data Catalog (Athena,
EMR, Redshift Spectrum) when a Glue database is configured, and in the run's Spark catalog when that
catalog is persistent (the Hive/Derby catalog of the `make dev` Connect server). Tables and partitions
are described from the lake itself: the files a manifest commits, and the schema written in their
Parquet footers. Registering again, or `sync` after a failure, therefore converges on what the lake
holds. The design, and what each catalog does on a schema change: docs/catalog.md.

    python -m lake_assets.catalog ddl     # make athena-ddl: CREATE EXTERNAL TABLE statements for Athena
    python -m lake_assets.catalog sync    # register every committed table and partition of the lake
"""

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import Failure

# daily_partitions is read when used (building it imports the resources, which import this module); the
# alias keeps the module apart from the `partitions` parameters below.
from lake_assets import partitions as partitioning
from lake_assets.partitions import DtLayout, dt_path, partition_key_from_path
from lake_assets.storage import Storage, is_hidden, is_s3_root
from lake_assets.storage.publish import MANIFEST, StoredFile, committed_files

Column = tuple[str, str]  # (name, Glue/Hive type)

PARTITION_COLUMN: Column = ("dt", "string")
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PROJECTION_PREFIX = "projection."
GLUE_BATCH = 100  # the most partitions BatchCreatePartition / BatchUpdatePartition take per call
SPARK_PARTITIONS_PER_STATEMENT = 100
_READ_THREADS = 8  # a manifest and a footer per partition: small reads, latency bound on S3
_FOOTER_GUESS = 64 * 1024  # a trusted table's footer is a few KB (one row group, a few columns)


class CatalogError(Failure):
    """Registering in a catalog failed after the data was published: the message says where and why, on
    one line. The lake is intact; materialising again (or `python -m lake_assets.catalog sync`) retries."""

    def __init__(self, description: str, code: str | None = None):
        super().__init__(description=description)
        self.code = code  # Glue's error code, when Glue answered


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


def merge_columns(current: Sequence[Column], written: Sequence[Column]) -> tuple[Column, ...]:
    """A table's columns after a publish: the columns it had, in their order, with the types just
    written; then the newly written ones. A column the new version lacks stays, because older
    partitions still hold it (it reads as null in the new one)."""
    written_types = dict(written)
    known = {name for name, _ in current}
    return tuple((name, written_types.get(name, kind)) for name, kind in current) + tuple(c for c in written if c[0] not in known)


# --- what the lake holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """The committed version of a table, or of one of its partitions."""

    prefix: str  # its folder below the zone root
    partition: str | None  # the partition key; None for an unpartitioned table
    files: tuple[StoredFile, ...]  # the committed data files (never `_rejected/`)
    columns: tuple[Column, ...] | None  # as written in the Parquet footer; None when the version is empty


def parquet_schema(storage: Storage, file: StoredFile) -> pa.Schema:
    """A Parquet file's schema from its footer: one read of the file's end, which holds the whole
    footer of these tables (a second read only for a footer longer than that), not the whole file."""
    end = storage.get_range(file.key, max(0, file.size - _FOOTER_GUESS), min(file.size, _FOOTER_GUESS))
    if len(end) < 8 or end[-4:] != b"PAR1":
        raise CatalogError(f"{storage.uri(file.key)} is not a Parquet file (no PAR1 footer)")
    length = int.from_bytes(end[-8:-4], "little")
    if length + 8 > len(end):
        end = storage.get_range(file.key, file.size - 8 - length, length + 8)
    return pq.read_schema(pa.BufferReader(b"PAR1" + end[-8 - length :]))


def read_version(storage: Storage, prefix: str, partition: str | None = None) -> Version | None:
    """What the manifest of `prefix` commits, with the written columns; None when nothing is committed."""
    files = committed_files(storage, prefix)
    if files is None:
        return None
    data = tuple(f for f in files if not is_hidden(f.key[len(prefix) + 1 :]))
    if not data:
        return Version(prefix, partition, data, None)
    try:
        columns = columns_of(parquet_schema(storage, data[0]))
    except ValueError as error:
        raise CatalogError(f"{storage.uri(data[0].key)}: {error}") from None
    return Version(prefix, partition, data, columns)


def read_versions(storage: Storage, path: str, partitions: Sequence[str] | None, layout: DtLayout | str) -> list[Version]:
    """The committed versions of a table (`partitions` None) or of these partitions of it."""
    where = [(path, None)] if partitions is None else [(f"{path}/{dt_path(key, layout)}", key) for key in partitions]
    with ThreadPoolExecutor(_READ_THREADS) as pool:
        found = list(pool.map(lambda item: read_version(storage, *item), where))
    missing = [prefix for (prefix, _), version in zip(where, found, strict=True) if version is None]
    if missing:
        raise CatalogError(f"nothing is committed at {storage.uri(missing[0])} (no {MANIFEST}): materialise it first")
    return found


def committed_partitions(storage: Storage, path: str, layout: DtLayout | str) -> list[str]:
    """The partition keys of a table that have a committed version, oldest first."""
    keys = set()
    for obj in storage.list(f"{path}/"):
        relative = obj.key[len(path) + 1 :]
        if relative.endswith(f"/{MANIFEST}"):
            key = partition_key_from_path(relative, layout)
            if key is not None and relative == f"{dt_path(key, layout)}/{MANIFEST}":
                keys.add(key)
    return sorted(keys)


def table_columns(versions: Iterable[Version], current: Sequence[Column] = ()) -> tuple[Column, ...]:
    """The columns a table gets from `current` and these versions, merged oldest to newest."""
    columns = tuple(current)
    for version in sorted(versions, key=lambda v: v.partition or ""):
        if version.columns is not None:
            columns = merge_columns(columns, version.columns)
    return columns


def catalog_location(storage: Storage, key: str) -> str:
    """A folder's location as Glue and Athena name it: `s3://bucket/prefix/key/`, or `file:///...`
    for a local lake (which Athena cannot read; see docs/catalog.md)."""
    uri = storage.uri(key)
    # Not Path.as_uri(): it would write `dt=` as `dt%3D`, and Hive-style readers take paths literally.
    return (uri if is_s3_root(uri) else f"file://{Path(uri).resolve()}").rstrip("/") + "/"


# --- a table as catalogs describe it (pure) -------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    database: str
    name: str
    location: str
    columns: tuple[Column, ...]  # the data columns; `dt` is the partition key of a partitioned table
    partitioned: bool
    projection_start: str | None = None  # Athena partition projection from this date to NOW


def projection_properties(first_partition: str) -> dict[str, str]:
    """Athena partition projection for `dt`: every day from the first partition to today, with no
    partition registered. Without `storage.location.template`, Athena looks for a day under the
    table's location in the Hive layout (`dt=2024-03-31/`), which is the lake's own."""
    return {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{first_partition},NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
    }


def table_properties(spec: TableSpec) -> dict[str, str]:
    properties = {"classification": "parquet"}
    if spec.partitioned and spec.projection_start:
        properties.update(projection_properties(spec.projection_start))
    return properties


def _storage_descriptor(columns: Sequence[Column], location: str) -> dict:
    return {
        "Columns": [{"Name": name, "Type": kind} for name, kind in columns],
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
    }


def glue_table_input(spec: TableSpec, other_parameters: Mapping[str, str] | None = None) -> dict:
    """Glue's TableInput for `spec`. Parameters other catalogs' users set are kept (`other_parameters`),
    except `projection.*`, which follow the projection setting."""
    parameters = {k: v for k, v in (other_parameters or {}).items() if not k.startswith(PROJECTION_PREFIX)}
    parameters.update({"EXTERNAL": "TRUE", **table_properties(spec)})
    return {
        "Name": spec.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": [{"Name": PARTITION_COLUMN[0], "Type": PARTITION_COLUMN[1]}] if spec.partitioned else [],
        "StorageDescriptor": _storage_descriptor(spec.columns, spec.location),
    }


def glue_partition_input(partition: str, columns: Sequence[Column], location: str) -> dict:
    return {"Values": [partition], "StorageDescriptor": _storage_descriptor(columns, location)}


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """A string literal for Athena (Hive) and Spark SQL."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _column_list(columns: Sequence[Column], separator: str = ", ") -> str:
    return separator.join(f"{_quoted(name)} {kind}" for name, kind in columns)


def athena_ddl(spec: TableSpec) -> str:
    """`CREATE EXTERNAL TABLE` for Athena (Hive DDL)."""
    lines = [
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {_quoted(spec.database)}.{_quoted(spec.name)} (",
        "  " + _column_list(spec.columns, ",\n  "),
        ")",
    ]
    if spec.partitioned:
        lines.append(f"PARTITIONED BY ({_quoted(PARTITION_COLUMN[0])} {PARTITION_COLUMN[1]})")
    lines += ["STORED AS PARQUET", f"LOCATION {sql_string(spec.location)}", "TBLPROPERTIES ("]
    properties = [f"  {sql_string(k)}={sql_string(v)}" for k, v in table_properties(spec).items()]
    lines += [",\n".join(properties), ");"]
    return "\n".join(lines)


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


def spark_partition_statements(spec: TableSpec, partitions: Sequence[tuple[str, str]]) -> list[str]:
    """`ALTER TABLE ... ADD IF NOT EXISTS PARTITION` for (key, location) pairs, batched. A partition's
    location is a function of its key, so one that exists already is right as it is."""
    statements = []
    for start in range(0, len(partitions), SPARK_PARTITIONS_PER_STATEMENT):
        chunk = partitions[start : start + SPARK_PARTITIONS_PER_STATEMENT]
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


def register_in_spark(session, spec: TableSpec, partitions: Sequence[tuple[str, str]], locate: Callable[[str], str]) -> str:
    """Create or update the table in the session's catalog and add `partitions` ((key, location)).
    `spec.columns` are the written columns; `locate` gives the location of a partition key. Returns
    what was done, for the log."""

    def run(statement: str):
        try:
            return session.sql(statement)
        except Exception as error:  # Spark's errors carry a JVM stack: keep the first line
            raise CatalogError(f"Spark catalog: `{statement[:120]}` failed: {_first_line(error)}") from None

    run(f"CREATE DATABASE IF NOT EXISTS {_quoted(spec.database)}")
    try:
        current = _spark_current(session, spec)
    except Exception as error:
        raise CatalogError(f"Spark catalog: reading {spec.database}.{spec.name} failed: {_first_line(error)}") from None
    spec = dataclasses.replace(spec, columns=merge_columns(current.columns if current else (), spec.columns))
    statements, created = spark_table_statements(spec, current)
    if created and current is not None and _same_location(current.location, spec.location):
        carried = {key: locate(key) for key in current.partitions}
        partitions = list({**carried, **dict(partitions)}.items())
    for statement in statements + spark_partition_statements(spec, list(partitions)):
        run(statement)
    state = "created" if current is None else ("re-created" if created else ("updated" if statements else "unchanged"))
    return f"{spec.database}.{spec.name} {state}" + (f", {len(partitions)} partition(s) registered" if spec.partitioned else "")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# --- the Glue Data Catalog ------------------------------------------------------------------------


class GlueCatalog:
    """One Glue database through boto3's standard configuration: the region from the AWS chain (or
    `region_name`), the endpoint from AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL, the credentials from
    the environment, a profile or a role. This object never holds or prints a credential."""

    def __init__(self, database: str, region_name: str | None = None, client=None):
        self.database = database
        self._region_name = region_name
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            try:
                session = boto3.session.Session(region_name=self._region_name)
                self._client = session.client("glue", config=Config(connect_timeout=5, read_timeout=60))
            except BotoCoreError as error:
                raise CatalogError(f"Glue catalog: {_boto_reason(error)}") from None
        return self._client

    def _call(self, operation: str, table: str | None, *, tolerate: str | None = None, **arguments) -> dict | None:
        """The answer of one Glue call; None when Glue answers with the error code `tolerate`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**arguments)
        except (ClientError, BotoCoreError) as error:
            code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
            if code is not None and code == tolerate:
                return None
            what = f"{self.database}.{table}" if table else self.database
            raise CatalogError(
                f"Glue {operation} of {what} at {self.client.meta.endpoint_url} failed: {_boto_reason(error)}", code
            ) from None

    def ensure_database(self) -> None:
        if self._call("get_database", None, tolerate="EntityNotFoundException", Name=self.database) is None:
            # AlreadyExists: another run created it meanwhile.
            self._call("create_database", None, tolerate="AlreadyExistsException", DatabaseInput={"Name": self.database})

    def get_table(self, name: str) -> dict | None:
        found = self._call("get_table", name, tolerate="EntityNotFoundException", DatabaseName=self.database, Name=name)
        return found["Table"] if found else None

    def put_table(self, spec: TableSpec, current: dict | None) -> str:
        """Create the table, or update it where it differs from `spec`; returns what was done."""
        if current is None:
            arguments = {"DatabaseName": self.database, "TableInput": glue_table_input(spec)}
            if self._call("create_table", spec.name, tolerate="AlreadyExistsException", **arguments) is not None:
                return "created"
            current = self.get_table(spec.name)  # another run created it meanwhile
        wanted = glue_table_input(spec, current.get("Parameters"))
        if _comparable(wanted) == _comparable(current):
            return "unchanged"
        self._call("update_table", spec.name, DatabaseName=self.database, TableInput=wanted)
        return "updated"

    def put_partitions(self, table: str, inputs: Sequence[dict]) -> tuple[int, int]:
        """Create the partitions, updating those that exist (never a duplicate): (created, updated)."""
        created = updated = 0
        for start in range(0, len(inputs), GLUE_BATCH):
            chunk = inputs[start : start + GLUE_BATCH]
            answer = self._call(
                "batch_create_partition", table, DatabaseName=self.database, TableName=table, PartitionInputList=list(chunk)
            )
            existing = []
            for error in answer.get("Errors", []):
                detail = error.get("ErrorDetail", {})
                if detail.get("ErrorCode") != "AlreadyExistsException":
                    raise CatalogError(
                        f"Glue batch_create_partition of {self.database}.{table} {error.get('PartitionValues')} failed: "
                        f"{detail.get('ErrorCode')}: {detail.get('ErrorMessage')}"
                    )
                existing.append(tuple(error["PartitionValues"]))
            created += len(chunk) - len(existing)
            if existing:
                by_values = {tuple(p["Values"]): p for p in chunk}
                entries = [{"PartitionValueList": list(values), "PartitionInput": by_values[values]} for values in existing]
                answer = self._call("batch_update_partition", table, DatabaseName=self.database, TableName=table, Entries=entries)
                if answer.get("Errors"):
                    error = answer["Errors"][0]
                    detail = error.get("ErrorDetail", {})
                    raise CatalogError(
                        f"Glue batch_update_partition of {self.database}.{table} {error.get('PartitionValueList')} failed: "
                        f"{detail.get('ErrorCode')}: {detail.get('ErrorMessage')}"
                    )
                updated += len(existing)
        return created, updated


def _comparable(table: dict) -> tuple:
    descriptor = table.get("StorageDescriptor", {})
    return (
        table.get("TableType"),
        dict(table.get("Parameters", {})),
        [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", [])],
        [(c["Name"], c["Type"]) for c in descriptor.get("Columns", [])],
        descriptor.get("Location"),
        descriptor.get("InputFormat"),
        descriptor.get("OutputFormat"),
        descriptor.get("SerdeInfo", {}).get("SerializationLibrary"),
    )


def _boto_reason(error: Exception) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return " ".join(f"{detail.get('Code')}: {detail.get('Message', '')}".split())
    if isinstance(error, NoRegionError):
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile)"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (environment, profile or role)"
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return "endpoint unreachable; check AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL and the network"
    return f"{type(error).__name__}: {_first_line(error)}"


def register_in_glue(glue: GlueCatalog, spec: TableSpec, versions: Sequence[Version], locate: Callable[[str], str]) -> str:
    """Create or update the table (`spec.columns` are the written columns) and register the partitions
    of `versions`, each with the columns it was written with. Returns what was done, for the log."""
    glue.ensure_database()
    current = glue.get_table(spec.name)
    current_columns = [(c["Name"], c["Type"]) for c in (current or {}).get("StorageDescriptor", {}).get("Columns", [])]
    spec = dataclasses.replace(spec, columns=merge_columns(current_columns, spec.columns))
    state = glue.put_table(spec, current)
    done = f"{glue.database}.{spec.name} {state}"
    if spec.partitioned:
        inputs = [glue_partition_input(v.partition, v.columns or spec.columns, locate(v.partition)) for v in versions]
        created, updated = glue.put_partitions(spec.name, inputs)
        done += f"; partitions: {created} created, {updated} updated"
    return done


# --- one table after a publish --------------------------------------------------------------------


def register_table(
    storage: Storage,
    path: str,
    partitions: Sequence[str] | None,
    *,
    layout: DtLayout | str,
    glue: GlueCatalog | None,
    projection: bool,
    spark_session,
    spark_database: str | None,
    log: logging.Logger,
) -> dict[str, str]:
    """Register the table at `path` (`trusted/tmdb`) and the partitions just published (`partitions`;
    None for an unpartitioned table) in Glue and in the Spark catalog. Returns metadata for the run."""
    if glue is None and (spark_session is None or not spark_database):
        return {}
    name = path.rsplit("/", 1)[-1]
    versions = read_versions(storage, path, partitions, layout)
    written = table_columns(versions)
    if not written:
        log.info(f"catalog: {path} has no data file yet; it is registered once a publish writes rows")
        return {}
    partitioned = partitions is not None
    metadata = {}
    if glue is not None:
        if projection and partitioned and DtLayout(layout) is not DtLayout.HIVE:
            raise CatalogError(
                "Glue partition projection reads the Hive layout dt=YYYY-MM-DD: set LAKE_DT_LAYOUT=hive or turn projection off"
            )
        location = catalog_location(storage, path)
        if not location.startswith("s3://"):
            log.warning(
                f"Glue: the lake is a local folder, so {glue.database}.{name} is registered with file:// locations, "
                "which Athena cannot read (an s3:// LAKE_ROOT can be queried by Athena)"
            )
        first = partitioning.daily_partitions.get_first_partition_key() if projection else None
        spec = TableSpec(glue.database, name, location, written, partitioned, first)
        done = register_in_glue(glue, spec, versions, lambda key: catalog_location(storage, f"{path}/{dt_path(key, layout)}"))
        log.info(f"Glue: {done}")
        metadata["catalog/glue"] = done
    if spark_session is not None and spark_database:
        done = _register_spark_table(storage, path, name, versions, written, layout, spark_session, spark_database, log)
        if done:
            metadata["catalog/spark"] = done
    return metadata


def _register_spark_table(storage, path, name, versions, written, layout, session, database, log) -> str | None:
    if not spark_catalog_is_persistent(session):
        log.info(
            f"Spark catalog: this session's catalog is in memory, so {database}.{name} is not registered "
            "(the Connect server of make dev / make spark-up keeps a persistent one)"
        )
        return None
    location = storage.spark_path(path)
    if location is None:
        log.info(
            f"Spark catalog: Spark cannot open {storage.uri(path)} itself (LAKE_SPARK_S3A is off): {database}.{name} not registered"
        )
        return None
    partitioned = versions[0].partition is not None

    def locate(key: str) -> str:
        return storage.spark_path(f"{path}/{dt_path(key, layout)}")

    spec = TableSpec(database, name, location, written, partitioned)
    partitions = [(v.partition, locate(v.partition)) for v in versions] if partitioned else []
    done = register_in_spark(session, spec, partitions, locate)
    log.info(f"Spark catalog: {done}")
    return done


# --- the command line -----------------------------------------------------------------------------


def trusted_tables() -> list[tuple[str, bool]]:
    """(lake path, partitioned) of every trusted asset, from the definitions."""
    from lake_assets.definitions import ASSETS  # the definitions import this module through the IO manager
    from lake_assets.io_managers import lake_path

    return [(lake_path(a), a.partitions_def is not None) for a in ASSETS if lake_path(a).startswith("trusted/")]


def ddl(lake, database: str, projection: bool = True) -> str:
    """The Athena DDL of the trusted tables of `lake`, from the schemas written there."""
    storage = lake.storage("trusted")
    if not is_s3_root(storage.root_uri):
        raise CatalogError(
            f"Athena reads tables from S3 only; the trusted zone is the local folder {storage.root_uri} (set LAKE_ROOT=s3://...)"
        )
    if projection and lake.layout is not DtLayout.HIVE:
        raise CatalogError(
            "partition projection reads the Hive layout dt=YYYY-MM-DD: set LAKE_DT_LAYOUT=hive, or use --no-projection"
        )
    statements = [f"CREATE DATABASE IF NOT EXISTS {_quoted(database)};"]
    for path, partitioned in trusted_tables():
        keys = committed_partitions(storage, path, lake.layout) if partitioned else None
        if partitioned and not keys:
            raise CatalogError(f"{storage.uri(path)} has no committed partition: materialise one first")
        columns = table_columns(read_versions(storage, path, keys, lake.layout))
        if not columns:
            raise CatalogError(f"{storage.uri(path)} has no data file: materialise it first")
        first = partitioning.daily_partitions.get_first_partition_key() if projection and partitioned else None
        spec = TableSpec(database, path.rsplit("/", 1)[-1], catalog_location(storage, path), columns, partitioned, first)
        statements.append(athena_ddl(spec))
    header = f"-- Athena DDL for the trusted zone at {storage.root_uri} (python -m lake_assets.catalog ddl)"
    return header + "\n" + "\n\n".join(statements) + "\n"


def sync(catalog, lake, spark_session, log: logging.Logger) -> dict[str, dict[str, str]]:
    """Register every committed table and partition of the lake: after a failed registration, when
    turning a catalog on for an existing lake, or for a fresh Connect server."""
    storage = lake.storage("trusted")
    done = {}
    for path, partitioned in trusted_tables():
        keys = committed_partitions(storage, path, lake.layout) if partitioned else None
        if (partitioned and not keys) or (not partitioned and committed_files(storage, path) is None):
            log.info(f"catalog: nothing committed at {storage.uri(path)} yet")
            continue
        done[path] = catalog.register(lake, path, keys, log=log, spark_session=spark_session)
    return done


def main(argv: list[str] | None = None) -> int:
    from lake_assets.resources import catalog_resource_from_env, lake_resource_from_env

    parser = argparse.ArgumentParser(prog="python -m lake_assets.catalog", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ddl_parser = commands.add_parser("ddl", help="print Athena's CREATE EXTERNAL TABLE statements for LAKE_ROOT's trusted tables")
    ddl_parser.add_argument("--database", default=os.environ.get("LAKE_GLUE_DATABASE") or "trusted")
    ddl_parser.add_argument("--no-projection", action="store_true", help="no partition projection (register partitions yourself)")
    sync_parser = commands.add_parser("sync", help="register every committed table and partition in the configured catalogs")
    sync_parser.add_argument("--no-glue", action="store_true", help="only the Spark catalog")
    args = parser.parse_args(argv)

    log = logging.getLogger("lake_assets.catalog")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler(sys.stderr))
    log.propagate = False
    try:
        # Outside a run, Dagster has not resolved the EnvVar credentials: this does.
        lake = lake_resource_from_env().process_config_and_initialize()
        if args.command == "ddl":
            sys.stdout.write(ddl(lake, args.database, projection=not args.no_projection))
            return 0
        catalog = catalog_resource_from_env()
        if args.no_glue:
            catalog = catalog.model_copy(update={"glue_database": None})
        session = None
        if catalog.spark_database and os.environ.get("SPARK_REMOTE"):
            from lake_assets.resources import spark_resource_from_env

            session = spark_resource_from_env().spark_session  # a Connect server that is down: one line, in seconds
        elif catalog.spark_database:
            log.info("catalog: no SPARK_REMOTE, so no Spark catalog to register in (a classic session's catalog is in memory)")
        try:
            sync(catalog, lake, session, log)
        finally:
            if session is not None:
                session.stop()  # an unstopped Connect session keeps Python from exiting
        return 0
    except (Failure, ValueError) as error:  # CatalogError, SparkUnavailable, a refused setting
        print(f"lake_assets.catalog: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error: Exception) -> str:
    import pydantic

    if isinstance(error, Failure):
        return error.description
    if isinstance(error, pydantic.ValidationError):
        first = error.errors()[0]
        return f"{error.title}.{'.'.join(map(str, first['loc']))}: {first['msg'].removeprefix('Value error, ')}"
    return _first_line(error)


if __name__ == "__main__":
    sys.exit(main())
