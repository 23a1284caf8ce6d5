"""Asset checks: each trusted table's contract is one asset check on that table, per partition.

The check is declared on the trusted asset (`check_specs`) and partitioned like it. Its result per
table or day comes from the contract's evaluation in the asset's own run (see
`TrustedParquetIOManager.publish`): it fails with ERROR severity, and blocks, when a `fail` rule
broke (that day was not published); with WARN severity when `warn` rules were broken or rows were
rejected (counted per reason); and its
description names the rules, so the UI shows which day broke which rule. Its metadata holds every
rule's counts, samples and text; the quality log holds the same, one row per rule.

One check for the rule set, not one per rule: every check result is an event the Dagster instance
stores, and a year-long backfill of 17 rules would be 6,000 of them (measured: 23 ms each on the
default SQLite storage, so 2.5 minutes of bookkeeping for 55,000 rows).
"""

import warnings
from collections.abc import Callable, Iterable, Iterator

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
    MetadataValue,
    Output,
    PartitionsDefinition,
    PreviewWarning,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from lake_assets.defs.io_managers.outcomes import PartitionOutcome, PublishReport, rejected_line
from lake_assets.lib.contracts import SCHEMA_CHECK, Contract, RuleResult
from lake_assets.lib.contracts.rules import Anomaly

CONTRACT_CHECK = "contract"
QUALITY_REPORT = "quality_report"  # the metadata entry naming the run's HTML report (alerts link it)

# Partitioned asset checks are a 1.13 preview feature; they are what makes per-day results possible.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)


def check_specs(
    contract: Contract, asset_key: AssetKey, partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    """The contract check: blocking, so a day that broke a `fail` rule holds back what reads it."""
    fixed = [f"{SCHEMA_CHECK} (fail)"] + [f"{r.name} ({r.severity})" for r in contract.rules if not isinstance(r, Anomaly)]
    anomalies = sum(isinstance(r, Anomaly) for r in contract.rules)
    history = f", and {anomalies} anomaly rules (anomaly_*) judged against the last published days" if anomalies else ""
    return [
        AssetCheckSpec(
            CONTRACT_CHECK,
            asset=asset_key,
            description=(
                f"{contract.description} {len(fixed) + anomalies} rules: {', '.join(fixed)}{history}. Fails (ERROR, blocking) when a fail rule "
                "breaks; WARN when a warn rule breaks or any row is rejected. See docs/contracts.md."
            ),
            blocking=True,
            partitions_def=partitions_def,
        )
    ]


def contract_events(
    context: AssetExecutionContext, report: PublishReport, table: str, also: Callable[[list], Iterable] | None = None
) -> Iterator:
    """The events of a trusted asset's run, from its publish report: each published partition's
    materialisation (with its own metadata), then the contract's result per partition, then `also`'s
    events for the published partitions (other checks of the asset). When a partition broke a `fail`
    rule, the others are still recorded and the run fails at the end, naming the partitions not
    published."""

    def metadata(outcome: PartitionOutcome) -> dict:
        return {
            **outcome.metadata(),
            "dagster/column_schema": report.column_schema(),
            "quality_log": report.quality_log_uri,
            QUALITY_REPORT: MetadataValue.path(report.report_uri),
        }

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
    targets = _materializations(context, [o.partition for o in published])
    for outcome in report.outcomes:
        yield evaluation(context.asset_key, outcome, targets.get(outcome.partition), report.report_uri)
    if also is not None:
        yield from also([o.partition for o in report.outcomes])
    if report.not_published:
        raise Failure(description=report.failure_message(table), allow_retries=False)
    for spec in context.assets_def.check_specs:
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(spec.key))


def schema_failure(asset_key: AssetKey, message: str) -> AssetCheckEvaluation:
    """The contract's result when the source's header fits no accepted layout (nothing was read)."""
    return AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=CONTRACT_CHECK,
        passed=False,
        metadata={"broken": ["schema_contract"], "action": "not published"},
        severity=AssetCheckSeverity.ERROR,
        description=message,
        blocking=True,
    )


def evaluation(asset_key: AssetKey, outcome: PartitionOutcome, target=None, report_uri: str = "") -> AssetCheckEvaluation:
    """The contract check's result for one table or partition.

    Rejected rows alone make it WARN: a row set aside is data a reader will not see, so the check says
    so on its face, with the count per reason, instead of passing beside a non-zero `rejected_rows`."""
    broken, warned = outcome.broken, outcome.warned
    if broken:
        parts = [f"{outcome.not_published_line().capitalize()}: " + "; ".join(r.summary() for r in broken)]
    elif warned:
        parts = ["Published with warnings: " + "; ".join(r.summary() for r in warned)]
    else:
        parts = ["Published"]
    if outcome.rejected:
        parts.append(rejected_line(outcome.rejected, outcome.rejected_by_reason))
    description = "; ".join(parts) + f". {outcome.rules_line()}."
    applicable = [r for r in outcome.results if r.applicable]
    anomalies = [r for r in outcome.results if isinstance(r.rule, Anomaly)]
    out_of_band = [r for r in anomalies if r.violations]
    return AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=CONTRACT_CHECK,
        passed=not broken and not warned and not outcome.rejected,
        metadata={
            # Numbers first: the UI shows them without a click, and plots them across runs.
            "rows_checked": outcome.rows + outcome.rejected,
            "rows_published": outcome.rows if outcome.published else 0,
            "rejected_rows": outcome.rejected,
            "rules": len(outcome.results),
            "rules_applicable": len(applicable),
            "rules_broken": len(broken),
            "rules_warned": len(warned),
            # Anomaly rules have their own table below: 0 or 1 says less than their band.
            **{f"violations/{r.name}": r.violations for r in applicable if not isinstance(r.rule, Anomaly)},
            "rejected_by_reason": dict(outcome.rejected_by_reason),
            "broken": [r.name for r in broken],
            "warned": [r.name for r in warned],
            "rules_table": MetadataValue.md(_rules_table([r for r in outcome.results if not isinstance(r.rule, Anomaly)])),
            **(
                {
                    "anomalies_out_of_band": [r.name for r in out_of_band],
                    "anomalies_table": MetadataValue.md(_anomalies_table(anomalies)),
                    **{f"anomaly/{r.name}": {"observed": r.observed, "expected": list(r.band or ())} for r in out_of_band},
                }
                if anomalies
                else {}
            ),
            "action": "published" if outcome.published else outcome.not_published_line(),
            **({QUALITY_REPORT: MetadataValue.path(report_uri)} if report_uri else {}),
        },
        severity=AssetCheckSeverity.ERROR if broken else AssetCheckSeverity.WARN,
        description=description,
        blocking=True,
        partition=outcome.partition,
        target_materialization_data=target,
    )


def _rules_table(results: list[RuleResult]) -> str:
    lines = ["| rule | severity | violations | rows checked | measured | samples | rule text |", "|---|---|---|---|---|---|---|"]
    for r in results:
        violations = r.violations if r.applicable else "n/a"
        samples = ", ".join(s.replace("|", "\\|") for s in r.samples)
        lines.append(
            f"| {r.name} | {r.severity} | {violations} | {r.checked} | {r.measured} | {samples} | {r.description.replace('|', '/')} |"
        )
    return "\n".join(lines)


def _anomalies_table(results: list[RuleResult]) -> str:
    """Each anomaly rule's reading against its band, the ones out of band first."""
    lines = ["| rule | severity | observed | expected band | verdict |", "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (not r.violations, r.name)):
        observed = f"{r.observed:.4g}" if r.observed is not None else "n/a"
        band = f"{r.band[0]:.4g} to {r.band[1]:.4g}" if r.band else "n/a"
        verdict = "out of band" if r.violations else ("in band" if r.band else r.measured)
        lines.append(f"| {r.name} | {r.severity} | {observed} | {band} | {verdict} |")
    return "\n".join(lines)


def _materializations(context: AssetExecutionContext, partitions: list) -> dict:
    """The materialisations these results judge (just recorded by this run), so the UI ties each
    result to its day's materialisation; one query for the whole range."""
    if not partitions:
        return {}
    keys = [p for p in partitions if p is not None] or None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=keys), limit=len(partitions)
    ).records
    return {
        record.partition_key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        for record in records
        if record.run_id == context.run_id
    }
