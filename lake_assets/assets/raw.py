"""The raw zone: data landed exactly as it arrived. Raw is never cleaned."""

import csv
import datetime as dt
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Config, Failure, asset

from lake_assets.io_managers import JsonRecords, LandedFile
from lake_assets.partitions import daily_partitions
from lake_assets.tmdb import TMDBResource
from lake_assets.transforms.filmes import Dialect, detect_dialect

SAMPLE_FILMES = Path(__file__).parent.parent / "sample_data" / "filmes.csv"
OWNERS = ["team:data-engineering"]


class FilmesSourceConfig(Config):
    source_path: str = ""
    """The historical CSV to land; empty means the sample bundled with the package."""


@asset(
    key=AssetKey(["raw", "filmes_csv"]),
    group_name="raw",
    kinds={"csv"},
    owners=OWNERS,
    tags={"zone": "raw", "source": "filmes_csv"},
    io_manager_key="raw_io_manager",
    metadata={"lake_path": "raw/filmes/filmes.csv"},
    description="The historical movies CSV (seed filmes.csv or the programme's movies.csv), landed byte for byte.",
)
def filmes_csv(context: AssetExecutionContext, config: FilmesSourceConfig) -> LandedFile:
    source = Path(config.source_path).expanduser() if config.source_path else SAMPLE_FILMES
    if not source.is_file():
        raise Failure(f"raw/filmes_csv: source file {source} does not exist (config source_path)")
    dialect, rows = count_csv_rows(source)
    context.add_output_metadata({"source": str(source), "dialect": dialect.value, "data_rows": rows})
    return LandedFile(source)


def count_csv_rows(path: Path) -> tuple[Dialect, int]:
    """Data rows as a CSV reader counts them (quoted line breaks do not start a row)."""
    with path.open(encoding="utf-8", newline="") as data:
        dialect = detect_dialect(data.readline())
        data.seek(0)
        if dialect is Dialect.PIPE:
            reader = csv.reader(data, delimiter="|", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(data, delimiter=",", quotechar='"', doublequote=True)
        return dialect, sum(1 for _ in reader) - 1


class TmdbCollectConfig(Config):
    allow_past_date: bool = False
    """TMDB serves only today's data: collecting it for a past partition would label it wrongly.
    Set this only to fill a past partition knowingly with today's data (a demo)."""


@asset(
    key=AssetKey(["raw", "tmdb_json"]),
    group_name="raw",
    kinds={"json"},
    owners=OWNERS,
    tags={"zone": "raw", "source": "tmdb"},
    partitions_def=daily_partitions,
    io_manager_key="raw_io_manager",
    metadata={"lake_path": "raw/tmdb"},
    description=(
        "Details of TMDB's top-rated movies (pt-BR) whose genres include Drama or Romance, collected on the "
        "partition's UTC date and landed unchanged as JSON Lines (at most 100 records a file)."
    ),
)
def tmdb_json(context: AssetExecutionContext, config: TmdbCollectConfig, tmdb: TMDBResource) -> JsonRecords:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    if context.partition_key != today and not config.allow_past_date:
        raise Failure(
            f"raw/tmdb_json for {context.partition_key}: TMDB serves only current data, so collecting now would "
            f"label today's ({today}) data as {context.partition_key}. Past raw partitions arrive as files under "
            "raw/tmdb/dt=<date>/ (the raw-arrival sensor registers them); set allow_past_date to override."
        )
    collection = tmdb.collect(log=context.log)
    context.add_output_metadata({"source": collection.source, **{f"tmdb/{k}": v for k, v in collection.stats.items()}})
    return JsonRecords(collection.records)
