"""The trusted zone: the raw data typed and standardised as Parquet, built with PySpark, each table
keeping its declared contract (`lake_assets/lib/contracts/`).

An asset reads what the raw IO manager hands it with Spark, passes the DataFrame to the pure
transforms and to its contract, and has the Parquet IO manager publish it; the contract's results
become the asset's contract check, one result per table or partition.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Literal

from dagster import AssetExecutionContext, AssetIn, AssetKey, BackfillPolicy, Config, Failure, MetadataValue, ResourceParam, asset
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.defs.assets import OWNERS, raw
from lake_assets.defs.automation import deadline_check_spec, deadline_evaluations
from lake_assets.defs.checks import check_specs, contract_events, schema_failure
from lake_assets.defs.failures import failing_on_lake_errors
from lake_assets.defs.io_managers.outcomes import table_lineage, table_schema
from lake_assets.defs.io_managers.paths import LAKE_PATH
from lake_assets.defs.io_managers.trusted import TrustedParquetIOManager
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources import SparkResource
from lake_assets.defs.versions import RAW_DATA_VERSION, code_version
from lake_assets.lib.contracts import FILMES, TMDB
from lake_assets.lib.contracts.evaluate import Partition
from lake_assets.lib.csv_files import Encoding, check_encoding, count_records, header_line, split_at_records
from lake_assets.lib.lineage import column_lineage, declared_columns
from lake_assets.lib.raw_zone import RawFile, RawFolders
from lake_assets.lib.registry import TRUSTED_FILMES, TRUSTED_TMDB
from lake_assets.lib.staging import SparkStage, local_file
from lake_assets.lib.summaries import movies_by_company, movies_by_language
from lake_assets.lib.tables.catalog import table_identifier
from lake_assets.lib.transforms.columns import CORRUPT, normalise_column_name, partition_key_column
from lake_assets.lib.transforms.filmes import Dialect, csv_options, detect_dialect, filmes_from_strings, header_columns
from lake_assets.lib.transforms.tmdb import DETAILS_SCHEMA, standardise_details

FILMES_KEY = AssetKey(TRUSTED_FILMES.key)
# A quoted CSV above this size is cut into parts of about PART_BYTES; Spark packs small parts into
# one task per core, so the part size only has to be well below a core's share.
SPLIT_ABOVE_BYTES = 32 << 20
PART_BYTES = 16 << 20
MAX_PARTS = 64
TMDB_KEY = AssetKey(TRUSTED_TMDB.key)


class FilmesConfig(Config):
    dialect: Literal["auto", "seed", "pipe", "semicolon"] = Field(
        default="auto",
        description="The CSV dialect: `auto` (by the header's separator), or `seed`, `pipe` or `semicolon` forced.",
    )
    encoding: Encoding = Field(
        default="utf-8", description="The file's text encoding: utf-8, latin-1 or cp1252 (as raw/filmes_csv's)."
    )


@asset(
    key=FILMES_KEY,
    ins={"raw_filmes": AssetIn(key=raw.filmes_csv.key)},
    group_name="trusted",
    kinds={"spark", "parquet"},
    owners=OWNERS,
    io_manager_key="parquet_io_manager",
    metadata={
        LAKE_PATH: TRUSTED_FILMES.path,
        # Searchable before any run (docs/catalog.md): the union of the three layouts' columns, each
        # saying which layouts have it; a run's own schema is its file's layout.
        "dagster/table_name": table_identifier(TRUSTED_FILMES.path),
        "dagster/column_schema": table_schema(declared_columns(FILMES)),
        "dagster/column_lineage": table_lineage(raw.filmes_csv.key, column_lineage(TRUSTED_FILMES.path)),
    },
    check_specs=check_specs(FILMES, FILMES_KEY),
    pool="trusted_filmes",
    code_version=code_version(TRUSTED_FILMES),
)
def filmes(
    context: AssetExecutionContext,
    config: FilmesConfig,
    spark: SparkResource,
    parquet_io_manager: ResourceParam[TrustedParquetIOManager],
    raw_filmes: RawFile,
):
    """The historical movies, typed (dates, integers, doubles, arrays) with normalised column names, as
    unpartitioned Parquet, keeping the `filmes` contract. Rows that break it are kept in `_rejected/`."""
    with failing_on_lake_errors():
        where = raw_filmes.uri
        header = header_line(raw_filmes.head, config.encoding, where)
        try:
            dialect = detect_dialect(header) if config.dialect == "auto" else Dialect(config.dialect)
        except ValueError as unknown:
            raise Failure(f"{where}: {unknown}") from None
        columns = header_columns(header, dialect)
        layout = FILMES.layout_of([normalise_column_name(c) for c in columns])
        if layout is None:
            message = (
                f"{where}: the header, read as the {dialect} dialect (separator {dialect.separator!r}), has {len(columns)} column(s) "
                f"{columns[:6]}{'…' if len(columns) > 6 else ''}, which match none of the accepted layouts ({', '.join(FILMES.layouts)})"
            )
            yield schema_failure(FILMES_KEY, message)
            raise Failure(message)
        check_encoding(raw_filmes.open, config.encoding, where)
        # pyarrow counts the source's records (for the reconcile rule) in a thread while Spark parses
        # and writes: an independent reading of the same file.
        stage = SparkStage(raw_filmes.storage)
        with ThreadPoolExecutor(1) as counter, closing(stage):
            counted = counter.submit(count_records, raw_filmes.open, dialect, config.encoding, columns[0])
            paths = _parallel_parts(raw_filmes.spark_path, dialect, stage)
            strings = _read_csv_as_strings(spark.spark_session, paths, columns, dialect, config.encoding)
            flagged = FILMES.apply(filmes_from_strings(strings, dialect, dict(FILMES.layouts[layout])), layout)
            report = parquet_io_manager.publish(
                context,
                flagged,
                FILMES,
                layout,
                source_records=lambda: {None: counted.result()},
                metadata={"dialect": str(dialect), "encoding": config.encoding, "layout": layout},
            )
        yield from contract_events(context, report, TRUSTED_FILMES.path)


def _parallel_parts(spark_path: str, dialect: Dialect, stage: SparkStage) -> list[str]:
    """A quoted CSV with line breaks in fields is one Spark task (multiLine cannot split a file). A
    big one on a file system here is cut at record boundaries into parts Spark reads in parallel,
    exactly (see `split_at_records`), staged beside the lake; a pipe file is splittable as it is; a
    file Spark reads from S3 itself stays whole."""
    local = local_file(spark_path)
    if dialect is Dialect.PIPE or local is None or not local.is_file() or local.stat().st_size < SPLIT_ABOVE_BYTES:
        return [spark_path]
    staged = stage.local_folder("filmes-parts")
    if staged is None:
        return [spark_path]
    folder, spark_folder = staged
    parts = min(MAX_PARTS, -(-local.stat().st_size // PART_BYTES))
    return [f"{spark_folder}/{part.name}" for part in split_at_records(local, folder, parts)]


def _read_csv_as_strings(spark: SparkSession, paths: list[str], columns: list[str], dialect: Dialect, encoding: str) -> DataFrame:
    # Every column is read as a string and typed afterwards, so a bad value is reported, not silently
    # nulled; a row Spark cannot split lands in CORRUPT.
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns] + [T.StructField(CORRUPT, T.StringType())])
    return spark.read.options(**csv_options(dialect, encoding)).schema(schema).csv(paths)


@asset(
    key=TMDB_KEY,
    ins={"raw_tmdb": AssetIn(key=raw.tmdb_json.key)},
    group_name="trusted",
    kinds={"spark", "parquet"},
    owners=OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="parquet_io_manager",
    metadata={
        LAKE_PATH: TRUSTED_TMDB.path,
        # Searchable before any run (docs/catalog.md); one layout, so the same schema a run reports.
        "dagster/table_name": table_identifier(TRUSTED_TMDB.path),
        "dagster/column_schema": table_schema(declared_columns(TMDB)),
        "dagster/column_lineage": table_lineage(raw.tmdb_json.key, column_lineage(TRUSTED_TMDB.path)),
    },
    check_specs=[*check_specs(TMDB, TMDB_KEY, daily_partitions), deadline_check_spec(daily_partitions)],
    pool="trusted_tmdb",
    code_version=code_version(TRUSTED_TMDB),
)
def tmdb(
    context: AssetExecutionContext,
    spark: SparkResource,
    parquet_io_manager: ResourceParam[TrustedParquetIOManager],
    raw_tmdb: RawFolders,
):
    """TMDB movie details, one typed row per movie per collection date, Parquet partitioned by
    `dt=YYYY-MM-DD`, keeping the `tmdb` contract day by day. A backfill of any date range is one
    Spark job; a day that breaks a `fail` rule keeps its previous version while the others publish."""
    if raw_tmdb.missing:
        yield from deadline_evaluations(context.instance, [])  # the day due stays the check's status
        raise Failure(raw_tmdb.missing_message(context.asset_key.to_user_string()), allow_retries=False)
    details = _read_details(spark.spark_session, raw_tmdb)
    flagged = TMDB.apply(standardise_details(details), "tmdb_details")
    # Keyed by Partition: a Mapping's key type is invariant, so a map of dates is copied into one.
    report = parquet_io_manager.publish(
        context,
        flagged,
        TMDB,
        "tmdb_details",
        source_records=lambda: {day: records for day, records in raw_tmdb.records.items()},
        # Each day records the raw data version it read: a range run's provenance tags are the range's.
        describe=lambda day, rows: {**_summaries(day, rows), RAW_DATA_VERSION: raw_tmdb.versions.get(day or "", "")},
    )
    yield from contract_events(context, report, TRUSTED_TMDB.path, also=lambda days: deadline_evaluations(context.instance, days))


def _read_details(spark: SparkSession, raw: RawFolders) -> DataFrame:
    """Every raw JSON Lines file of the run in one read, each row with its file's partition key as
    `dt`: the plan does not grow with the number of days (a one-year backfill is one scan)."""
    files = [path for paths in raw.files.values() for path in paths]
    details = (
        spark.read.schema(DETAILS_SCHEMA).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).json(files)
    )
    # One task per day: each day's rows are written as one file, and the contract's
    # one_row_per_movie_per_day window (by day and id) reuses this shuffle instead of adding one.
    return details.withColumn("dt", partition_key_column(F.col("_metadata.file_path"), raw.layout)).repartition("dt")


def _summaries(day: Partition, rows) -> dict:
    assert day is not None, "trusted/tmdb is daily: every published partition is a date"
    label = f"collected {day}"
    return {
        "movies_by_company": MetadataValue.md(movies_by_company(rows, label)),
        "movies_by_language": MetadataValue.md(movies_by_language(rows, label)),
    }
