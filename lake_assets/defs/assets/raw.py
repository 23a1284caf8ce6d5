"""The raw zone: data landed exactly as it arrived. Raw is never cleaned."""

import datetime as dt
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    DataVersion,
    Failure,
    Output,
    ResourceParam,
    asset,
)
from pydantic import Field

from lake_assets import SAMPLE_DATA
from lake_assets.defs.assets import OWNERS
from lake_assets.defs.failures import failing_on_lake_errors
from lake_assets.defs.io_managers.paths import LAKE_PATH
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources import TMDBResource
from lake_assets.defs.versions import RAW_CODE_VERSION, data_version_tags
from lake_assets.lib.csv_files import Encoding, check_encoding, count_records, header_line
from lake_assets.lib.raw_versions import file_md5, version_of
from lake_assets.lib.raw_zone import JsonRecords, LandedFile, json_lines_version
from lake_assets.lib.registry import RAW_FILMES, RAW_TMDB
from lake_assets.lib.transforms.filmes import detect_dialect, header_columns

SAMPLE_FILMES = SAMPLE_DATA / "filmes.csv"


class FilmesSourceConfig(Config):
    source_path: str = Field(default="", description="The historical CSV to land (a local path; empty: the bundled sample).")
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
    metadata={LAKE_PATH: RAW_FILMES.path},
    code_version=RAW_CODE_VERSION,
)
def filmes_csv(context: AssetExecutionContext, config: FilmesSourceConfig) -> Output[LandedFile]:
    """The historical movies CSV (seed filmes.csv or the programme's movies.csv), landed byte for byte
    once its encoding is checked (a wrong one fails in seconds, naming the byte and its offset)."""
    with failing_on_lake_errors():
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
            {"source": str(source), "dialect": str(dialect), "encoding": config.encoding, "dagster/row_count": records}
        )
        # The data version the raw-arrival sensor would give the same bytes: an identical file landed
        # later from outside is then no change.
        return Output(LandedFile(source), data_version=DataVersion(version_of([file_md5(source)])))


class TmdbCollectConfig(Config):
    allow_past_date: bool = Field(
        default=False,
        description="Collect today's TMDB data into a past day's partition anyway (a demo): it would be labelled wrongly.",
    )


@asset(
    key_prefix="raw",
    name="tmdb_json",
    group_name="raw",
    kinds={"json"},
    owners=OWNERS,
    partitions_def=daily_partitions,
    # As trusted/tmdb's, so a run of both assets over a range is one run (and Dagster does not warn
    # about mixed policies).
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="raw_io_manager",
    metadata={LAKE_PATH: RAW_TMDB.path},
    code_version=RAW_CODE_VERSION,
    # A run over days that already landed registers them and lands nothing (see below).
    output_required=False,
)
def tmdb_json(
    context: AssetExecutionContext,
    config: TmdbCollectConfig,
    tmdb: TMDBResource,
    raw_io_manager: ResourceParam[RawZoneIOManager],
):
    """Details of TMDB's top-rated movies (pt-BR) whose genres include Drama or Romance, collected on the
    partition's UTC date and landed unchanged as JSON Lines (at most 100 records a file). TMDB serves
    only today's data: a past day is filled by landing files under raw/tmdb/dt=<date>/ (the raw-arrival
    sensor registers them; `make seed-history` for a demo), and materialising it registers what landed."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    keys = list(context.partition_keys)
    if keys == [today] or (len(keys) == 1 and config.allow_past_date):
        with failing_on_lake_errors():
            collection = tmdb.collect(log=context.log)
        context.add_output_metadata({"source": collection.source, **{f"tmdb/{k}": v for k, v in collection.stats.items()}})
        yield Output(JsonRecords(collection.records), data_version=DataVersion(json_lines_version(collection.records)))
        return
    # Days that already landed are registered as they are, each with its own metadata, so a launch
    # from the UI never turns a landed day red; only what cannot be filled fails, saying how to fill it.
    landed = raw_io_manager.landed_days(context.assets_def, keys)
    for key, (metadata, version) in landed.items():
        yield AssetMaterialization(
            asset_key=context.asset_key,
            partition=key,
            metadata={"source": "landed files, registered as they are", **metadata},
            tags=data_version_tags(version),
        )
    missing = [key for key in keys if key not in landed]
    if missing:
        shown = ", ".join(missing[:5]) + ("…" if len(missing) > 5 else "")
        why = (
            f"today ({today}) is collected in a run of its own (the daily schedule, or Materialize on today's partition alone)"
            if missing == [today]
            else "TMDB serves only today's data, so a past day cannot be collected"
        )
        raise Failure(
            f"raw/tmdb_json: {len(missing)} day(s) without raw files ({shown}): {why}. Land files under "
            "raw/tmdb/dt=<date>/ (the raw-arrival sensor registers them) or run `make seed-history` for a demo; "
            f"{len(landed)} landed day(s) of this run were registered.",
            allow_retries=False,
        )
