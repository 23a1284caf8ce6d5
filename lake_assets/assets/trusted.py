"""The trusted zone: the raw data typed and standardised as Parquet, built with PySpark, each table
keeping its declared contract (`lake_assets/contracts/`).

An asset reads what the raw IO manager hands it with Spark, passes the DataFrame to the pure
transforms and to its contract, and has the Parquet IO manager publish it; the contract's results
become the asset's checks, one per rule per partition.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from dagster import AssetExecutionContext, AssetIn, AssetKey, BackfillPolicy, Config, Failure, MetadataValue, ResourceParam, asset
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.assets import OWNERS, raw
from lake_assets.checks import check_specs, contract_events, schema_failure
from lake_assets.contracts import FILMES, TMDB
from lake_assets.csv_files import Encoding, check_encoding, count_records, header_line
from lake_assets.io_managers import LAKE_PATH, RawFile, RawFolders, TrustedParquetIOManager
from lake_assets.partitions import daily_partitions
from lake_assets.resources import SparkResource
from lake_assets.summaries import movies_by_company, movies_by_language
from lake_assets.transforms.columns import CORRUPT, normalise_column_name
from lake_assets.transforms.filmes import Dialect, csv_options, detect_dialect, filmes_from_strings, header_columns
from lake_assets.transforms.tmdb import DETAILS_SCHEMA, standardise_details

FILMES_KEY = AssetKey(["trusted", "filmes"])
TMDB_KEY = AssetKey(["trusted", "tmdb"])


class FilmesConfig(Config):
    dialect: Literal["auto", "seed", "pipe", "semicolon"] = Field(
        default="auto",
        description="`auto` tells the CSV dialects apart by the header's separator; `seed` (comma, quoted), `pipe` "
        "(the programme's extract) or `semicolon` (spreadsheet export, decimal comma) forces one.",
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
    metadata={LAKE_PATH: "trusted/filmes"},
    check_specs=check_specs(FILMES, FILMES_KEY),
    pool="trusted_filmes",
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
    # pyarrow counts the source's records (for the reconcile rule) on the other core while Spark,
    # whose quoted-CSV read is a single task, parses and writes.
    with ThreadPoolExecutor(1) as counter:
        counted = counter.submit(count_records, raw_filmes.open, dialect, config.encoding, columns[0])
        strings = _read_csv_as_strings(spark.spark_session, raw_filmes.spark_path, columns, dialect, config.encoding)
        flagged = FILMES.apply(filmes_from_strings(strings, dialect, dict(FILMES.layouts[layout])), layout)
        report = parquet_io_manager.publish(
            context,
            flagged,
            FILMES,
            layout,
            source_records=lambda: {None: counted.result()},
            metadata={"dialect": str(dialect), "encoding": config.encoding, "layout": layout},
        )
    yield from contract_events(context, report, "trusted/filmes")


def _read_csv_as_strings(spark: SparkSession, path: str, columns: list[str], dialect: Dialect, encoding: str) -> DataFrame:
    # Every column is read as a string and typed afterwards, so a bad value is reported, not silently
    # nulled; a row Spark cannot split lands in CORRUPT.
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns] + [T.StructField(CORRUPT, T.StringType())])
    return spark.read.options(**csv_options(dialect, encoding)).schema(schema).csv(path)


@asset(
    key=TMDB_KEY,
    ins={"raw_tmdb": AssetIn(key=raw.tmdb_json.key)},
    group_name="trusted",
    kinds={"spark", "parquet"},
    owners=OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="parquet_io_manager",
    metadata={LAKE_PATH: "trusted/tmdb"},
    check_specs=check_specs(TMDB, TMDB_KEY, daily_partitions),
    pool="trusted_tmdb",
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
    details = _read_details(spark.spark_session, raw_tmdb.files)
    flagged = TMDB.apply(standardise_details(details), "tmdb_details")
    report = parquet_io_manager.publish(
        context, flagged, TMDB, "tmdb_details", source_records=lambda: raw_tmdb.records, describe=_summaries
    )
    yield from contract_events(context, report, "trusted/tmdb")


def _read_details(spark: SparkSession, files_by_dt: dict[str, list[str]]) -> DataFrame:
    """The raw JSON Lines of each partition, with its partition key as `dt`."""
    reader = spark.read.schema(DETAILS_SCHEMA).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    frames = [reader.json(paths).withColumn("dt", F.lit(key)) for key, paths in sorted(files_by_dt.items())]
    first, *rest = frames
    for frame in rest:
        first = first.unionByName(frame)
    return first


def _summaries(day: str, rows) -> dict:
    label = f"collected {day}"
    return {
        "movies_by_company": MetadataValue.md(movies_by_company(rows, label)),
        "movies_by_language": MetadataValue.md(movies_by_language(rows, label)),
    }
