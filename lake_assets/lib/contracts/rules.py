"""The vocabulary of a table contract: rule kinds, severities, and how a contract is applied and judged.

A rule is either a row rule (a Spark column that is true for a row breaking it) or a table rule
(judged from the counts of a table or partition). Severity says what a violation does:

- `fail`: the table or partition is not published; the previous version stays current;
- `drop`: the violating rows go to `_rejected/`, with the rule's name as `_reject_reason`;
- `warn`: the violations are counted and shown; nothing is removed.

`Contract.apply` is pure (DataFrame in, DataFrame out): it marks drop-rule violations in
`_reject_reason` and adds one boolean column per warn/fail row rule, so the counts are taken in the
same pass that writes the data (see `TrustedParquetIOManager.publish`).
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lake_assets.lib.transforms.columns import REJECT_REASON

FLAG_PREFIX = "_violates_"  # one boolean column per warn/fail row rule, dropped before the write
SAMPLES = 5  # violating values shown per rule


class Severity(StrEnum):
    FAIL = "fail"
    DROP = "drop"
    WARN = "warn"


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    description: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads; a rule whose columns a layout lacks does not apply to it."""
        return ()

    @property
    def kind(self) -> str:
        return type(self).__name__


# --- row rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowRule(Rule):
    column: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def violated(self, partition_column: str | None) -> Column:
        """True for a row that breaks the rule, never null (a null value passes every rule but NotNull)."""
        return F.coalesce(self._breaks(partition_column), F.lit(False))

    def _breaks(self, partition_column: str | None) -> Column:
        raise NotImplementedError

    def sample(self) -> Column:
        """What a person sees of a violating row: its value."""
        return F.col(self.column).cast("string")


@dataclass(frozen=True)
class NotNull(RowRule):
    def _breaks(self, partition_column):
        return F.col(self.column).isNull()


@dataclass(frozen=True)
class Between(RowRule):
    """A number between `low` and `high`, both included (either may be None: unbounded)."""

    low: float | None = None
    high: float | None = None

    def _breaks(self, partition_column):
        value = F.col(self.column)
        too_low = value < self.low if self.low is not None else F.lit(False)
        too_high = value > self.high if self.high is not None else F.lit(False)
        return too_low | too_high


@dataclass(frozen=True)
class Matches(RowRule):
    """The whole value matches a regular expression (Java syntax)."""

    pattern: str = ""

    def _breaks(self, partition_column):
        return ~F.col(self.column).rlike(f"^(?:{self.pattern})$")


@dataclass(frozen=True)
class OneOf(RowRule):
    values: tuple[str, ...] = ()

    def _breaks(self, partition_column):
        return ~F.col(self.column).isin(*self.values)


@dataclass(frozen=True)
class DateBetween(RowRule):
    """A date no earlier than `earliest` and no later than the partition's own date (the collection
    date of a `dt` partition) or, for an unpartitioned table, the day the run evaluates it."""

    earliest: dt.date | None = None
    not_after_collection: bool = False

    def _breaks(self, partition_column):
        value = F.col(self.column)
        too_early = value < F.lit(self.earliest) if self.earliest else F.lit(False)
        if not self.not_after_collection:
            return too_early
        collected = F.to_date(F.col(partition_column)) if partition_column else F.current_date()
        return too_early | (value > collected)


@dataclass(frozen=True)
class NotEmpty(RowRule):
    """An array with at least one element (a null array breaks it too)."""

    def _breaks(self, partition_column):
        return F.col(self.column).isNull() | (F.size(F.col(self.column)) == 0)


@dataclass(frozen=True)
class Unique(Rule):
    """No two rows share the key (within each partition of a partitioned table). The first row by
    `keep_first_by` (column names, `-name` for descending) is kept; the others break the rule."""

    key: tuple[str, ...] = ()
    keep_first_by: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + tuple(c.lstrip("-") for c in self.keep_first_by)

    def violated(self, partition_column: str | None) -> Column:
        # Rows already rejected sort last, so a good row is never the "duplicate" of a rejected one.
        order = [F.col(REJECT_REASON).isNotNull()] + [
            F.col(c[1:]).desc_nulls_last() if c.startswith("-") else F.col(c).asc_nulls_last() for c in self.keep_first_by
        ]
        partition = ([partition_column] if partition_column else []) + list(self.key)
        return F.row_number().over(Window.partitionBy(*partition).orderBy(*order)) > 1

    def sample(self) -> Column:
        return F.concat_ws("/", *[F.col(c).cast("string") for c in self.key])


# Every rule but a table rule is judged row by row: it has `violated` and `sample`.
ByRowRule = RowRule | Unique


# --- table rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRule(Rule):
    def judge(self, counts: "Counts") -> tuple[int, str]:
        """(violations, what was measured); 0 violations passes."""
        raise NotImplementedError


@dataclass(frozen=True)
class MinRows(TableRule):
    minimum: int = 1

    def judge(self, counts):
        return (0 if counts.rows >= self.minimum else 1), f"{counts.rows} rows (minimum {self.minimum})"


@dataclass(frozen=True)
class MaxRejectedShare(TableRule):
    share: float = 0.05

    def judge(self, counts):
        total = counts.rows + counts.rejected
        measured = counts.rejected / total if total else 0.0
        return (
            1 if measured > self.share else 0
        ), f"{counts.rejected} of {total} rows rejected ({measured:.1%}, at most {self.share:.0%})"


@dataclass(frozen=True)
class ComparedToPrevious(TableRule):
    """At least `share` of the rows of the previous partition (a sudden drop means a broken collection)."""

    share: float = 0.5

    def judge(self, counts):
        if counts.previous_rows is None:
            return 0, "no previous partition to compare with"
        floor = counts.previous_rows * self.share
        return (
            1 if counts.rows < floor else 0
        ), f"{counts.rows} rows vs {counts.previous_rows} in the previous partition (at least {self.share:.0%})"


@dataclass(frozen=True)
class ReconcilesWithSource(TableRule):
    """Every record of the raw source is either a published row or a rejected one, by an independent
    count of the source (not Spark's): a reader that silently splits or merges records is caught."""

    def judge(self, counts):
        if counts.source_records is None:
            return 0, "the source was not counted"
        accounted = counts.rows + counts.rejected
        measured = f"{counts.source_records} source records; {counts.rows} published + {counts.rejected} rejected"
        return abs(counts.source_records - accounted), measured


class Metric(StrEnum):
    """What an anomaly rule follows, one number per table or partition, kept in the quality log."""

    ROW_COUNT = "row_count"  # records checked: published plus rejected
    NULL_SHARE = "null_share"  # share of published rows where the column is null
    DISTINCT_SHARE = "distinct_share"  # distinct key values per record checked (duplicates set aside count)
    MEAN = "mean"  # mean of a numeric column over published rows (nulls left out)
    DISTRIBUTION = "distribution"  # distance of a column's value shares from the window's median shares


@dataclass(frozen=True)
class Anomaly(Rule):
    """A metric judged against its own history: the last `window` published days (or versions of an
    unpartitioned table) set a band, median ± `tolerance` scaled MADs, never narrower than `floor`
    nor than `relative` of the median (a steady metric has a MAD of 0). Fewer than `window` days of
    history: not judged yet (warm-up). For `DISTRIBUTION` the observed value is a distance (total
    variation, 0 to 1) and only the band's top counts.

    It reads only the quality log (`lake_assets.lib.contracts.anomalies`): no pass over the data."""

    metric: Metric = Metric.ROW_COUNT
    column: str = ""
    window: int = 14
    tolerance: float = 5.0
    floor: float = 0.0
    relative: float = 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,) if self.column else ()


@dataclass(frozen=True)
class Counts:
    """What a table or one partition came to: the input for the table rules."""

    rows: int
    rejected: int
    previous_rows: int | None = None
    source_records: int | None = None


# --- the contract --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """A trusted table's promise: its columns and types (one accepted layout, or several when the
    source comes in several shapes), and the rules its rows and partitions keep."""

    table: str
    layouts: Mapping[str, Mapping[str, str]]
    rules: Sequence[Rule]
    partition_column: str | None = None
    description: str = ""
    # What each column holds, one sentence; every column of every layout has one (a test checks).
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.table}: rule names must be unique: {names}")

    @property
    def check_names(self) -> list[str]:
        """One asset check per rule, plus the schema contract."""
        return [SCHEMA_CHECK] + [rule.name for rule in self.rules]

    def column_docs(self, layout: str) -> dict[str, str]:
        """Each column's description followed by the rules that judge its values: the
        `dagster/column_schema` text. Anomaly rules watch every column's aggregates; naming them on
        each column would drown the rules that judge its rows."""
        docs = {}
        for name in self.layouts[layout]:
            rules = [
                f"{r.name} ({r.severity})" for r in self.applicable(layout) if name in r.columns and not isinstance(r, Anomaly)
            ]
            docs[name] = self.columns.get(name, "") + (f" Rules: {', '.join(rules)}." if rules else "")
        return docs

    def layout_of(self, columns: Sequence[str]) -> str | None:
        """The accepted layout with exactly these columns (order aside), or None."""
        wanted = set(columns) - {self.partition_column}
        return next((name for name, layout in self.layouts.items() if set(layout) == wanted), None)

    def applicable(self, layout: str) -> list[Rule]:
        present = set(self.layouts[layout]) | {self.partition_column}
        return [rule for rule in self.rules if set(rule.columns) <= present]

    def apply(self, df: DataFrame, layout: str) -> DataFrame:
        """Mark drop-rule violations in `_reject_reason` (the first rule broken; a parse failure stays
        first) and add a `_violates_<rule>` column per warn/fail row rule, evaluated on good rows only.

        The reason is one `coalesce` over all row rules, not one nested rewrite per rule: Spark would
        inline a nested chain into every expression that reads it, multiplying the work per row.
        Uniqueness comes after, so a row already set aside is never the one a duplicate is kept for."""
        part = self.partition_column
        rules = self.applicable(layout)
        drops = [r for r in rules if r.severity is Severity.DROP and isinstance(r, ByRowRule)]
        by_row = [r for r in drops if not isinstance(r, Unique)]
        if by_row:
            df = df.withColumn(
                REJECT_REASON, F.coalesce(F.col(REJECT_REASON), *[F.when(r.violated(part), F.lit(r.name)) for r in by_row])
            )
        for rule in (r for r in drops if isinstance(r, Unique)):
            df = df.withColumn(REJECT_REASON, F.coalesce(F.col(REJECT_REASON), F.when(rule.violated(part), F.lit(rule.name))))
        flags = [
            (F.col(REJECT_REASON).isNull() & rule.violated(part)).alias(FLAG_PREFIX + rule.name)
            for rule in self.flagged_rules(layout)
        ]
        return df.select("*", *flags) if flags else df

    def flagged_rules(self, layout: str) -> list[ByRowRule]:
        """The row rules that `apply` turned into flag columns (warn and fail)."""
        return [r for r in self.applicable(layout) if r.severity is not Severity.DROP and isinstance(r, ByRowRule)]

    def dropping_rules(self, layout: str) -> list[ByRowRule]:
        return [r for r in self.applicable(layout) if r.severity is Severity.DROP and isinstance(r, ByRowRule)]


SCHEMA_CHECK = "schema_contract"


def publishable(results: "Sequence[RuleResult]") -> bool:
    """A table or partition is published unless a `fail` rule broke."""
    return not any(r.blocks_publish for r in results)


@dataclass
class RuleResult:
    """One rule judged on one table or partition."""

    rule: Rule | None  # None: the schema contract
    name: str
    severity: Severity
    description: str
    violations: int
    checked: int
    samples: list[str] = field(default_factory=list)
    measured: str = ""
    applicable: bool = True
    # An anomaly rule's reading: the value seen and the band history allowed (None while warming up).
    observed: float | None = None
    band: tuple[float, float] | None = None
    shares: dict[str, float] | None = None  # a DISTRIBUTION rule's value shares, kept for later days

    @property
    def passed(self) -> bool:
        # A drop rule holds for what is published: its violators went to _rejected/ (and are counted).
        return self.violations == 0 or self.severity is Severity.DROP

    @property
    def blocks_publish(self) -> bool:
        return self.severity is Severity.FAIL and self.violations > 0

    def summary(self) -> str:
        if not self.applicable:
            return f"{self.name}: not applicable to this source layout"
        if self.violations == 0:
            return f"{self.name}: passed ({self.measured or f'{self.checked} rows checked'})"
        action = {Severity.FAIL: "not published", Severity.DROP: "dropped to _rejected/", Severity.WARN: "kept, warned"}[
            self.severity
        ]
        if self.band is not None:
            return f"{self.name} ({self.severity}): out of its usual band, {action}: {self.measured}"
        shown = f"; e.g. {', '.join(self.samples)}" if self.samples else ""
        return f"{self.name} ({self.severity}): {self.violations} violation(s), {action}{shown}" + (
            f" [{self.measured}]" if self.measured else ""
        )
