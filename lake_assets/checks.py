"""Asset checks: every rule of a table's contract is an asset check on that table.

The checks are declared on the trusted assets (`check_specs`), partitioned like them, and `fail`
rules are blocking. Their results come from the contract's evaluation in the asset's own run (see
`TrustedParquetIOManager.publish`), one per rule per partition, so the UI shows which day broke
which rule, and re-running just those days is one selection.
"""

import warnings
from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    Failure,
    MaterializeResult,
    Output,
    PartitionsDefinition,
    PreviewWarning,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from lake_assets.contracts import SCHEMA_CHECK, Contract, RuleResult, Severity
from lake_assets.io_managers import PartitionOutcome, PublishReport

# Partitioned asset checks are a 1.13 preview feature; they are what makes per-day results possible.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)


def check_specs(
    contract: Contract, asset_key: AssetKey, partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    """One check per rule (and one for the schema), blocking for `fail` rules."""
    described = {SCHEMA_CHECK: (Severity.FAIL, "The table's columns and types are those of an accepted layout.")}
    described.update({rule.name: (rule.severity, rule.description) for rule in contract.rules})
    return [
        AssetCheckSpec(
            name,
            asset=asset_key,
            description=f"[{severity}] {text}",
            blocking=severity is Severity.FAIL,
            partitions_def=partitions_def,
            metadata={"severity": str(severity)},
        )
        for name, (severity, text) in described.items()
    ]


def contract_events(context: AssetExecutionContext, report: PublishReport, table: str) -> Iterator:
    """The events of a trusted asset's run, from its publish report: each published partition's
    materialisation (with its own metadata), then every rule's result per partition. When a
    partition broke a `fail` rule, the others are still recorded and the run fails at the end,
    naming the partitions that kept their previous version."""

    def metadata(outcome: PartitionOutcome) -> dict:
        return {**outcome.metadata(), "dagster/column_schema": report.column_schema(), "quality_log": report.quality_log_uri}

    published = [o for o in report.outcomes if o.published]
    if report.not_published:
        for outcome in published:
            yield AssetMaterialization(asset_key=context.asset_key, partition=outcome.partition, metadata=metadata(outcome))
    elif published[0].partition is None:
        yield MaterializeResult(metadata=metadata(published[0]))
    else:
        # Each day its own metadata (rows, folder, rejected, summaries), not the range's.
        for outcome in published:
            context.add_asset_metadata(metadata(outcome), partition_key=outcome.partition)
        yield MaterializeResult()
    for outcome in report.outcomes:
        target = _materialization(context, outcome) if outcome.published else None
        for result in outcome.results:
            yield _evaluation(context.asset_key, outcome, result, target)
    if report.not_published:
        raise Failure(description=report.failure_message(table), allow_retries=False)
    for spec in context.assets_def.check_specs:
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(spec.key))


def schema_failure(asset_key: AssetKey, message: str) -> AssetCheckEvaluation:
    """The schema contract's result when the source's header fits no accepted layout (nothing read)."""
    return AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=SCHEMA_CHECK,
        passed=False,
        metadata={"severity": str(Severity.FAIL), "action": "not published"},
        severity=AssetCheckSeverity.ERROR,
        description=message,
        blocking=True,
    )


def _evaluation(asset_key: AssetKey, outcome: PartitionOutcome, result: RuleResult, target) -> AssetCheckEvaluation:
    metadata = {
        "severity": str(result.severity),
        "violations": result.violations,
        "rows_checked": result.checked,
        "action": "not published"
        if result.blocks_publish
        else ("rows dropped to _rejected/" if result.severity is Severity.DROP and result.violations else "none"),
    }
    if result.samples:
        metadata["samples"] = result.samples
    if result.measured:
        metadata["measured"] = result.measured
    if not result.applicable:
        metadata["action"] = "not applicable to this source layout"
    return AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=result.name,
        passed=result.passed,
        metadata=metadata,
        severity=AssetCheckSeverity.ERROR if result.severity is Severity.FAIL else AssetCheckSeverity.WARN,
        description=result.summary(),
        blocking=result.severity is Severity.FAIL,
        partition=outcome.partition,
        target_materialization_data=target,
    )


def _materialization(context: AssetExecutionContext, outcome: PartitionOutcome):
    """The materialisation these results judge (just recorded by this run), so the UI ties them."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[outcome.partition] if outcome.partition else None),
        limit=1,
    ).records
    if not records or records[0].run_id != context.run_id:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )
