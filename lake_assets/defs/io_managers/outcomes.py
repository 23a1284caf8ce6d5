"""What a publish reports: each table or partition's contract results, whether it was published, and
its materialisation metadata; and the table metadata a trusted asset declares before any run."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, MetadataValue, TableColumn, TableColumnDep, TableColumnLineage, TableSchema

from lake_assets.lib.contracts import RuleResult, Severity
from lake_assets.lib.contracts.evaluate import Observed, Partition
from lake_assets.lib.contracts.rules import publishable


@dataclass
class PartitionOutcome:
    """One table or partition of a run: its contract results, and whether it was published."""

    partition: Partition
    published: bool
    uri: str
    rows: int
    rejected: int
    files: int
    bytes: int
    results: list[RuleResult]
    extra: dict
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    had_previous_version: bool = False  # for one not published: whether readers still see an earlier one

    @property
    def broken(self) -> list[RuleResult]:
        """The fail rules it broke (why it was not published)."""
        return [r for r in self.results if r.blocks_publish]

    @property
    def warned(self) -> list[RuleResult]:
        return [r for r in self.results if r.severity is Severity.WARN and r.violations and r.applicable]

    def rules_line(self) -> str:
        """The rule count, said the same way in the materialisation and in the check."""
        applicable = sum(1 for r in self.results if r.applicable)
        return f"{len(self.results)} rules ({applicable} apply): {len(self.broken)} broken, {len(self.warned)} warned"

    def not_published_line(self) -> str:
        kept = "the previous version stays readable" if self.had_previous_version else "it has no earlier version"
        return f"not published ({kept})"

    def metadata(self) -> dict:
        return {
            "dagster/row_count": self.rows,
            "path": MetadataValue.path(self.uri),
            "rejected_rows": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "rejected_path": MetadataValue.path(f"{self.uri}/_rejected"),
            "files": self.files,
            "bytes": self.bytes,
            "contract": f"{self.rules_line()}; {rejected_line(self.rejected, self.rejected_by_reason)}",
            **self.extra,
        }


def rejected_line(rejected: int, by_reason: Mapping[str, int]) -> str:
    """`2 rows rejected: 1 malformed JSON line, 1 tmdb_id_present`, or `no row rejected`."""
    if not rejected:
        return "no row rejected"
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{rejected} row{'s' * (rejected != 1)} rejected" + (f": {reasons}" if reasons else "")


@dataclass
class PublishReport:
    outcomes: list[PartitionOutcome]
    columns: list[tuple[str, str]]
    quality_log_uri: str
    column_docs: Mapping[str, str] = field(default_factory=dict)
    report_uri: str = ""  # the run's HTML quality report, beside its quality log

    @property
    def not_published(self) -> list[PartitionOutcome]:
        return [o for o in self.outcomes if not o.published]

    def column_schema(self) -> TableSchema:
        return table_schema((name, kind, self.column_docs.get(name)) for name, kind in self.columns)

    def failure_message(self, table: str) -> str:
        """One line per partition that was not published: the rules, counts and samples."""
        lines = []
        for outcome in self.not_published:
            where = f"{table} {outcome.partition}" if outcome.partition else table
            lines.append(f"{where} {outcome.not_published_line()}: " + "; ".join(r.summary() for r in outcome.broken))
        return "\n".join(lines)


def table_schema(columns: Iterable[tuple[str, str, str | None]]) -> TableSchema:
    """`dagster/column_schema` from (name, type, description): the written columns at run time, the
    contract's (`lake_assets.lib.lineage.declared_columns`) at definition time."""
    return TableSchema(columns=[TableColumn(name=name, type=kind, description=doc) for name, kind, doc in columns])


def table_lineage(source: AssetKey, lineage: Mapping[str, Sequence[str]]) -> TableColumnLineage:
    """`dagster/column_lineage`: each column from the `source` asset's fields (`lake_assets.lib.lineage`)."""
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(asset_key=source, column_name=name) for name in fields] for column, fields in lineage.items()
        }
    )


def from_results(key: Partition, uri: str, results: list[RuleResult], observed: Observed, current: Mapping) -> PartitionOutcome:
    """A partition's contract results as an outcome: published unless a `fail` rule blocks it."""
    return PartitionOutcome(
        partition=key,
        published=publishable(results),
        uri=uri,
        rows=observed.rows.get(key, 0),
        rejected=observed.rejected.get(key, 0),
        files=0,
        bytes=0,
        results=results,
        extra={},
        rejected_by_reason=observed.rejected_by_reason.get(key, {}),
        had_previous_version=key in current,
    )
