"""The trusted tables' upkeep, as jobs people launch from the UI: snapshot retention and rollback.

- `table_maintenance` (daily on `LAKE_MAINTENANCE_CRON`, and launchable by hand) expires each
  table's snapshots older than `LAKE_SNAPSHOT_RETENTION` days, the last `LAKE_SNAPSHOTS_KEPT`
  always kept, then deletes the files no retained snapshot names, and reports what it freed.
- `table_rollback` makes an earlier snapshot of a table, or one day of it, current again as a new
  commit, and records a materialisation of each partition it changed, so the UI shows the data
  readers now see.

The logic lives in lake_assets/lib/tables/maintenance.py; this module only says when and with what.
"""

import datetime as dt
from typing import Literal

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)
from pydantic import Field

from lake_assets.defs.automation import SETTINGS, TIMEZONE
from lake_assets.defs.resources import CatalogResource, LakeResource, SparkResource
from lake_assets.lib.tables import iceberg, maintenance
from lake_assets.lib.tables.catalog import table_identifier

TABLES = ("trusted/filmes", "trusted/tmdb")


@op(description="Expire old snapshots of every trusted table and delete the files none of the kept ones names.")
def expire_snapshots(context: OpExecutionContext, lake: LakeResource) -> None:
    storage = lake.storage("trusted")
    older_than = dt.datetime.now(dt.UTC) - dt.timedelta(days=SETTINGS.snapshot_retention_days)
    for path in TABLES:
        table = iceberg.load(lake.iceberg_catalog(), path)
        if table is None:
            context.log.info(f"{table_identifier(path)}: not created yet, nothing to expire")
            continue
        report = maintenance.expire(table, storage, older_than=older_than, keep_last=SETTINGS.snapshots_kept)
        context.log.info(f"{table_identifier(path)}: {report.summary()}")
        # An observation, not a materialisation: the rows readers see did not change.
        context.log_event(
            AssetObservation(
                asset_key=AssetKey.from_user_string(path),
                metadata={
                    "dagster/table_name": table_identifier(path),
                    "maintenance": report.summary(),
                    "snapshots_expired": len(report.expired),
                    "snapshots_kept": len(report.kept),
                    "files_deleted": len(report.deleted),
                    "bytes_freed": report.bytes_freed,
                    "metadata_bytes": report.metadata_bytes_after,
                },
            )
        )


@job(
    description=f"Snapshot retention for the trusted tables: older than LAKE_SNAPSHOT_RETENTION "
    f"({SETTINGS.snapshot_retention_days:g} days), the last {SETTINGS.snapshots_kept} always kept."
)
def table_maintenance():
    expire_snapshots()


table_maintenance_schedule = ScheduleDefinition(
    name="table_maintenance_schedule",
    job=table_maintenance,
    cron_schedule=SETTINGS.maintenance_cron,
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING if SETTINGS.enabled else DefaultScheduleStatus.STOPPED,
    description=f"Runs table_maintenance at {SETTINGS.maintenance_cron} (UTC, LAKE_MAINTENANCE_CRON).",
)


class RollbackConfig(Config):
    table: Literal["trusted/tmdb", "trusted/filmes"] = Field(description="The table to roll back.")
    # Text, not a number: snapshot ids are 64-bit and the launchpad's JSON would round them.
    snapshot_id: str = Field(
        default="", description='The snapshot to make current again (a materialisation\'s snapshot_id), in quotes: "4213…".'
    )
    as_of: str = Field(default="", description="Or: the snapshot current at this time (ISO 8601, UTC unless it says).")
    dt: str = Field(default="", description="Only this day of trusted/tmdb, YYYY-MM-DD (empty: the whole table).")


@op(description="Make an earlier snapshot of a trusted table, or one day of it, current again as a new commit.")
def rollback_table(
    context: OpExecutionContext, config: RollbackConfig, lake: LakeResource, spark: SparkResource, catalog: CatalogResource
) -> None:
    if bool(config.snapshot_id) == bool(config.as_of):
        raise Failure("table_rollback: give exactly one of snapshot_id and as_of")
    try:
        snapshot_id = int(config.snapshot_id) if config.snapshot_id else None
        as_of = dt.datetime.fromisoformat(config.as_of) if config.as_of else None
    except ValueError as error:
        raise Failure(f"table_rollback: {error}") from None
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    storage = lake.storage("trusted")
    try:
        result = maintenance.rollback(
            lake.iceberg_catalog(),
            storage,
            config.table,
            snapshot_id=snapshot_id,
            as_of=as_of,
            partition=config.dt or None,
            run_id=context.run_id,
        )
    except ValueError as error:  # no such snapshot, or the day is not in it
        raise Failure(f"table_rollback: {error}") from None
    changed = ", ".join(p or "the table" for p in result.partitions) or "nothing (it already holds that content)"
    context.log.info(
        f"{result.table}: rolled back to snapshot {result.rolled_back_to}, as snapshot {result.snapshot_id}: {changed}"
    )
    for partition, rows in sorted(result.partitions.items(), key=lambda item: item[0] or ""):
        context.log_event(
            AssetMaterialization(
                asset_key=AssetKey.from_user_string(config.table),
                partition=partition,
                description=f"Rolled back to snapshot {result.rolled_back_to}",
                metadata={
                    "dagster/row_count": rows,
                    "dagster/table_name": table_identifier(config.table),
                    "dagster/uri": MetadataValue.path(storage.uri(config.table)),
                    "snapshot_id": str(result.snapshot_id),
                    "rolled_back_to": str(result.rolled_back_to),
                },
            )
        )
    if spark.remote:  # a persistent Spark catalog (make dev) must follow the new current files
        table = iceberg.load(lake.iceberg_catalog(), config.table)
        partitions = sorted(p for p in result.partitions if p) if config.table == "trusted/tmdb" else None
        try:
            catalog.register(storage, config.table, table, partitions, log=context.log, spark_session=spark.spark_session)
        except Failure as error:
            context.log.warning(f"the rollback is committed; the Spark catalog was not updated: {error.description}")


@job(description="Roll a trusted table, or one day of trusted/tmdb, back to an earlier snapshot (a new commit).")
def table_rollback():
    rollback_table()


JOBS = [table_maintenance, table_rollback]
SCHEDULES = [table_maintenance_schedule]
