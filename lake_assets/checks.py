"""Asset checks: the guarantees a reader of the trusted zone relies on, verified after each run."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check
from pyspark.sql import functions as F

from lake_assets.assets import raw, trusted


@asset_check(asset=trusted.tmdb, description="Exactly one row per tmdb_id per dt, and no row without an id.")
def tmdb_one_row_per_movie_per_day(tmdb) -> AssetCheckResult:
    # `tmdb` is loaded through the Parquet IO manager: only this run's partitions, only their
    # committed files (downloaded from S3 when Spark cannot read the bucket itself).
    rows, distinct, missing = tmdb.agg(
        F.count("*"), F.count_distinct("dt", "tmdb_id"), F.count_if(F.col("tmdb_id").isNull())
    ).first()
    return AssetCheckResult(
        passed=rows == distinct and missing == 0,
        metadata={"rows": rows, "duplicates": rows - distinct, "rows_without_id": missing},
    )


@asset_check(
    asset=trusted.filmes,
    additional_deps=[raw.filmes_csv],
    description="Every raw data row is either in the table or counted in _rejected/: nothing is dropped silently.",
)
def filmes_rows_reconcile_with_raw(context: AssetCheckExecutionContext) -> AssetCheckResult:
    def latest(key: AssetKey) -> dict:
        event = context.instance.get_latest_materialization_event(key)
        metadata = event.asset_materialization.metadata if event else {}
        return {name: value.value for name, value in metadata.items()}

    raw_meta, trusted_meta = latest(raw.filmes_csv.key), latest(trusted.filmes.key)
    raw_rows = raw_meta.get("data_rows")
    accounted = trusted_meta.get("dagster/row_count", 0) + trusted_meta.get("rejected_rows", 0)
    return AssetCheckResult(
        passed=raw_rows == accounted,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "raw_data_rows": raw_rows,
            "trusted_rows": trusted_meta.get("dagster/row_count"),
            "rejected_rows": trusted_meta.get("rejected_rows"),
        },
    )


CHECKS = [tmdb_one_row_per_movie_per_day, filmes_rows_reconcile_with_raw]
