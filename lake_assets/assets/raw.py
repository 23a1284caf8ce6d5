"""The raw zone: data landed exactly as it arrived. Raw is never cleaned."""

import datetime as dt
from pathlib import Path

from dagster import AssetExecutionContext, BackfillPolicy, Config, Failure, asset
from pydantic import Field

from lake_assets.assets import OWNERS
from lake_assets.csv_files import Encoding, check_encoding, count_records, header_line
from lake_assets.io_managers import LAKE_PATH, JsonRecords, LandedFile
from lake_assets.partitions import daily_partitions
from lake_assets.resources import TMDBResource
from lake_assets.transforms.filmes import detect_dialect, header_columns

SAMPLE_FILMES = Path(__file__).resolve().parents[1] / "sample_data" / "filmes.csv"


class FilmesSourceConfig(Config):
    source_path: str = Field(
        default="", description="The historical CSV to land (a local path). Empty: the sample bundled with the package."
    )
    encoding: Encoding = Field(
        default="utf-8", description="The file's text encoding: utf-8, latin-1 or cp1252 (Excel in Brazil often saves cp1252)."
    )


@asset(
    key_prefix="raw",
    name="filmes_csv",
    group_name="raw",
    kinds={"csv"},
    owners=OWNERS,
    io_manager_key="raw_io_manager",
    metadata={LAKE_PATH: "raw/filmes/filmes.csv"},
)
def filmes_csv(context: AssetExecutionContext, config: FilmesSourceConfig) -> LandedFile:
    """The historical movies CSV (seed filmes.csv or the programme's movies.csv), landed byte for byte
    once its encoding is checked (a wrong one fails in seconds, naming the byte and its offset)."""
    source = Path(config.source_path).expanduser() if config.source_path else SAMPLE_FILMES
    if not source.is_file():
        raise Failure(f"raw/filmes_csv: source file {source} does not exist (config source_path)")
    with source.open("rb") as data:
        header = header_line(data.read(64 * 1024), config.encoding, str(source))
    check_encoding(lambda: source.open("rb"), config.encoding, str(source))
    try:
        dialect = detect_dialect(header)
    except ValueError as unknown:
        raise Failure(f"{source}: {unknown}") from None
    records = count_records(lambda: source.open("rb"), dialect, config.encoding, header_columns(header, dialect)[0])
    context.add_output_metadata(
        {"source": str(source), "dialect": str(dialect), "encoding": config.encoding, "data_rows": records}
    )
    return LandedFile(source)


class TmdbCollectConfig(Config):
    allow_past_date: bool = Field(
        default=False,
        description="TMDB serves only today's data: collecting it for a past partition would label it wrongly. "
        "Set this only to fill a past partition knowingly with today's data (a demo).",
    )


@asset(
    key_prefix="raw",
    name="tmdb_json",
    group_name="raw",
    kinds={"json"},
    owners=OWNERS,
    partitions_def=daily_partitions,
    # As trusted/tmdb's, so a run of both assets over a range is one run (and Dagster does not warn
    # about mixed policies); a collection itself is always one day.
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="raw_io_manager",
    metadata={LAKE_PATH: "raw/tmdb"},
)
def tmdb_json(context: AssetExecutionContext, config: TmdbCollectConfig, tmdb: TMDBResource) -> JsonRecords:
    """Details of TMDB's top-rated movies (pt-BR) whose genres include Drama or Romance, collected on the
    partition's UTC date and landed unchanged as JSON Lines (at most 100 records a file)."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    keys = context.partition_keys
    if len(keys) != 1:
        raise Failure(
            f"raw/tmdb_json collects one day per run, not {len(keys)} ({keys[0]}...{keys[-1]}): TMDB serves only "
            "today's data. Past raw partitions arrive as files under raw/tmdb/dt=<date>/."
        )
    (key,) = keys
    if key != today and not config.allow_past_date:
        raise Failure(
            f"raw/tmdb_json for {key}: TMDB serves only current data, so collecting now would "
            f"label today's ({today}) data as {key}. Past raw partitions arrive as files under "
            "raw/tmdb/dt=<date>/ (the raw-arrival sensor registers them); set allow_past_date to override."
        )
    collection = tmdb.collect(log=context.log)
    context.add_output_metadata({"source": collection.source, **{f"tmdb/{k}": v for k, v in collection.stats.items()}})
    return JsonRecords(collection.records)
