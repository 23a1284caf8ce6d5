"""The trusted IO manager: publishes a contracted DataFrame to the trusted zone's Iceberg tables.

It writes the table and its rejected rows once, takes the contract's counts from that same write,
commits every table or `dt=` partition that keeps its contract in one Iceberg commit, leaves the
previous version of any that does not, and appends the results to the quality log.
"""

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence

import pyarrow as pa
from dagster import AssetExecutionContext, ConfigurableIOManager, Failure, InputContext, OutputContext
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.defs.io_managers.outcomes import PublishReport, from_results
from lake_assets.defs.io_managers.paths import lake_path, zone
from lake_assets.defs.resources import CatalogResource, LakeResource, SparkResource
from lake_assets.lib import quality_log, quality_report
from lake_assets.lib.contracts import Contract
from lake_assets.lib.contracts.anomalies import anomaly_rules, profile
from lake_assets.lib.contracts.evaluate import (
    Observed,
    Partition,
    judge_in_order,
    schema_result,
    split,
    violations_by_partition,
)
from lake_assets.lib.contracts.rules import FLAG_PREFIX, ComparedToPrevious
from lake_assets.lib.lineage import column_lineage
from lake_assets.lib.partitions import dt_path
from lake_assets.lib.registry import source_of
from lake_assets.lib.staging import (
    SparkStage,
    StagedFile,
    by_partition,
    documented,
    read_arrow,
    row_count,
    spark_readable,
    staged_size,
    written_schema,
)
from lake_assets.lib.storage import Storage
from lake_assets.lib.storage.publish import upload_all
from lake_assets.lib.tables import iceberg
from lake_assets.lib.tables.catalog import describe as describe_catalog
from lake_assets.lib.tables.catalog import table_identifier
from lake_assets.lib.transforms.columns import partition_key_column

REPORT_SAMPLES = 5  # rejected rows per partition shown in the quality report
# The staging copy of the partition column that Spark turns into folder names.
_FOLDER_COLUMN = "dt_folder"  # not `_`-prefixed: Spark and the stage skip such folders


class TrustedParquetIOManager(ConfigurableIOManager):
    """Publishes contracted Spark DataFrames to the trusted zone's Iceberg tables (`publish`): one
    catalog commit per run, of every partition that keeps its contract, and loads the current
    snapshot for downstream assets (`load_input`)."""

    lake: LakeResource
    spark: SparkResource
    catalog: CatalogResource | None = Field(
        default=None, description="Where else the tables are named after each commit (the Spark catalog); None: nowhere else."
    )

    def handle_output(self, context: OutputContext, obj) -> None:
        raise TypeError(
            f"{context.asset_key.to_user_string()}: trusted assets publish through TrustedParquetIOManager.publish "
            "(per-partition contract results) and return a MaterializeResult, not a value"
        )

    def load_input(self, context: InputContext) -> DataFrame:
        path = lake_path(context)
        storage = self.lake.storage(zone(path))
        table = iceberg.load(self.lake.iceberg_catalog(), path)
        wanted = list(context.asset_partition_keys) if context.has_asset_partitions else None
        files = iceberg.current_files(table, storage, wanted) if table is not None else {}
        keys = [f.key for data in files.values() for f in data]
        if not keys:
            where = f"partitions {wanted}" if wanted else "any data"
            raise Failure(f"{table_identifier(path)} has no committed version with {where}: materialise it first")
        rows = self.spark.spark_session.read.parquet(*spark_readable(storage, keys, "trusted-in"))
        if wanted is None:
            return rows
        # Each row's day from its file's folder: files published before Iceberg lack the column.
        return rows.withColumn("dt", partition_key_column(F.col("_metadata.file_path"), self.lake.dt_layout))

    def publish(
        self,
        context: AssetExecutionContext,
        flagged: DataFrame,
        contract: Contract,
        layout: str,
        *,
        source_records: Callable[[], Mapping[Partition, int]] | None = None,
        describe: Callable[[Partition, pa.Table], dict] | None = None,
        metadata: Mapping | None = None,
    ) -> PublishReport:
        """Write `flagged` (a contract's `apply` output) once, judge the contract per partition from
        that write, commit what keeps it in one Iceberg commit, and log every result.
        `source_records` (called once the writes are done, so its count can run meanwhile) feeds the
        reconcile rule; `describe` adds metadata for a published partition from its rows; `metadata`
        goes with every partition."""
        path = lake_path(context.assets_def)
        storage = self.lake.storage(zone(path))
        catalog = self.lake.iceberg_catalog()
        part = contract.partition_column
        keys: list[Partition] = list(context.partition_keys) if part else [None]
        flagged_rules = contract.flagged_rules(layout)
        rows = split(flagged, contract, layout)
        columns = [(f.name, f.dataType.simpleString()) for f in rows.good.schema.fields if f.name != part]
        table = iceberg.load(catalog, path)
        days = [key for key in keys if key]
        current = iceberg.current_files(table, storage, days or None) if table is not None else {}
        stage = SparkStage(storage)
        try:
            # Spark's partitionBy moves a column out of the files into folder names; a copy goes there
            # instead, so `dt` stays in each file, where Iceberg reads a file's partition value.
            good = rows.good.withColumn(_FOLDER_COLUMN, F.col(part)) if part else rows.good
            data = by_partition(
                stage.write(good, "data", partition_by=_FOLDER_COLUMN if part else None), keys, context.asset_key.to_user_string()
            )
            totals = rows.totals
            spark = self.spark.spark_session
            # Rejected rows, when there are any: from the table write's observation, or from a pass of
            # their own when there are too many to keep there (`Split.quarantine`).
            quarantined = (
                by_partition(
                    stage.write(rows.quarantine(spark), "rejected", partition_by=part), keys, context.asset_key.to_user_string()
                )
                if totals["rejected"]
                else {}
            )
            violated = [r for r in flagged_rules if totals.get(FLAG_PREFIX + r.name, 0)]
            observed = Observed(
                rows={key: row_count(storage, data.get(key, {}).values()) for key in keys},
                rejected={key: row_count(storage, quarantined.get(key, {}).values()) for key in keys},
                violations=violations_by_partition(stage.read(spark, "data"), contract, violated) if violated else {},
                rejected_by_reason=rows.reasons(contract, lambda: stage.read(spark, "rejected")) if totals["rejected"] else {},
                source_records=source_records() if source_records else {},
            )
            if any(isinstance(r, ComparedToPrevious) for r in contract.rules):
                observed.previous_rows = self._previous_rows(table, storage, days, observed.rows)
            schema = schema_result(contract, layout, columns)
            now = dt.datetime.now(dt.UTC)
            logs = quality_log.LogReader(storage, contract.table)
            rules = anomaly_rules(contract, layout)
            earlier = logs.covering(keys[0], max(r.window for r in rules)) if rules else None
            if rules:
                observed.readings = self._readings(storage, contract, layout, keys, data, observed)
            judged = judge_in_order(contract, layout, keys, observed, schema, earlier, now)
            outcomes = [from_results(key, storage.uri(self._folder(path, key)), judged[key], observed, current) for key in keys]
            samples = {
                key: read_arrow(storage, files.values(), rows=REPORT_SAMPLES).to_pylist() for key, files in quarantined.items()
            }
            published = [o for o in outcomes if o.published]
            if published:
                snapshot = self._commit(
                    context,
                    published,
                    storage=storage,
                    catalog=catalog,
                    path=path,
                    contract=contract,
                    layout=layout,
                    files={"data": data, "rejected": quarantined},
                    describe=describe,
                )
                table = iceberg.load(catalog, path)
                for outcome in published:
                    outcome.extra.update(snapshot)
            for outcome in outcomes:
                outcome.extra = {**(metadata or {}), **outcome.extra}
        finally:
            stage.close()
        # The report's trends reach further back than the rules do: the reader goes on reading.
        trend_from = (dt.date.fromisoformat(keys[-1]) + dt.timedelta(days=1)).isoformat() if keys[-1] else None
        earlier = logs.covering(trend_from, quality_report.TREND_DAYS)
        log_uri, report_uri = self._log(storage, contract, layout, context.run_id, now, outcomes, earlier, samples)
        if self.catalog is not None and published:  # after the commit: a catalog never names uncommitted data
            registered = self.catalog.register(
                storage,
                path,
                table,
                # A partitioned table's outcomes all have a key: the filter only narrows the type.
                [o.partition for o in published if o.partition is not None] if part else None,
                log=context.log,
                spark_session=self.spark.spark_session,
            )
            for outcome in published:
                outcome.extra.update(registered)
        return PublishReport(outcomes, columns, log_uri, contract.column_docs(layout), report_uri)

    def _folder(self, path: str, key: Partition) -> str:
        """A table's folder, or its partition's (`dt=...`) below it."""
        return f"{path}/{dt_path(key, self.lake.dt_layout)}" if key else path

    def _commit(self, context, published, *, storage, catalog, path, contract, layout, files, describe) -> dict:
        """Copy the published partitions' files (`files`: staged "data" and "rejected" rows by
        partition) to their final keys, each in a folder of this write, then commit them all at once.
        Returns the snapshot's metadata; on a lost race the copies are removed and the run fails with
        one line (the current version is untouched)."""
        data, quarantined = files["data"], files["rejected"]
        write_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        placed: dict[str, StagedFile] = {}
        table_keys: list[str] = []
        for outcome in published:
            key = outcome.partition
            folder = f"{self._folder(path, key)}/{write_id}"
            files = data.get(key, {})
            for name, source in files.items():
                placed[f"{folder}/{name}"] = source
                table_keys.append(f"{folder}/{name}")
            for name, source in quarantined.get(key, {}).items():
                placed[f"{folder}/_rejected/{name}"] = source
            outcome.uri = storage.uri(folder)
            outcome.files = len(files)
            outcome.bytes = sum(staged_size(source) for source in files.values())
            if describe is not None:
                outcome.extra = describe(key, read_arrow(storage, files.values()))
        upload_all(storage, placed)
        first = next(iter(data[published[0].partition].values()))
        schema = documented(written_schema(storage, first), contract.column_docs(layout))
        try:
            snapshot = iceberg.replace(
                catalog,
                storage,
                path,
                schema,
                table_keys,
                [o.partition for o in published],
                contract.partition_column,
                run_id=context.run_id,
            )
        except iceberg.CommitConflict as error:
            storage.delete(sorted(placed))  # never committed: no reader can name them
            raise Failure(str(error)) from None
        return {
            "dagster/table_name": table_identifier(path),
            "dagster/uri": storage.uri(path),
            "snapshot_id": str(snapshot),
            "catalog": describe_catalog(self.lake),
        }

    def _previous_rows(self, table, storage: Storage, days: Sequence[str], this_run: Mapping[Partition, int]) -> dict:
        """Rows of each day's previous day: from this run if it wrote that day, else as the current
        snapshot's manifests count them (no file is read)."""
        before = {key: (dt.date.fromisoformat(key) - dt.timedelta(days=1)).isoformat() for key in days}
        wanted = sorted({day for day in before.values() if day not in this_run})
        stored = iceberg.rows_by_partition(iceberg.current_files(table, storage, wanted)) if table is not None and wanted else {}
        return {key: this_run[day] if day in this_run else stored.get(day) for key, day in before.items()}

    def _readings(self, storage, contract, layout, keys, data, observed) -> dict:
        """Each partition's anomaly readings, from its staged rows (only the columns the rules read)."""
        wanted = sorted({r.column for r in anomaly_rules(contract, layout) if r.column})
        return {
            key: profile(
                contract,
                layout,
                read_arrow(storage, data.get(key, {}).values(), columns=wanted),
                observed.rejected_by_reason.get(key, {}),
            )
            for key in keys
        }

    def _log(self, storage, contract, layout, run_id, now, outcomes, earlier, samples) -> tuple[str, str]:
        """Append the run's results to the quality log and write its report beside it: (log, report)."""
        entries = quality_log.entries(contract.table, run_id, now, {o.partition: (o.results, o.published) for o in outcomes})
        log_uri = quality_log.write(storage, entries, quality_log.log_key(contract.table, run_id, now))
        source = source_of(contract)  # None: not a registered table's contract, so no lineage
        html = quality_report.render(
            contract.table,
            run_id,
            pa.concat_tables([earlier, entries]),
            rejected=samples,
            lineage=column_lineage(contract.table, layout) if source else {},
            raw_asset="/".join(source.key) if source else "",
            generated_at=now,
        )
        report_key = quality_log.log_key(contract.table, run_id, now, "html")
        storage.put_bytes(html.encode(), report_key)
        return log_uri, storage.uri(report_key)
