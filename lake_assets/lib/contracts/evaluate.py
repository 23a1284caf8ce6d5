"""Judging a contract: from the counts a write observed to one result per rule per table or partition.

The counts come from the write itself (Spark observations, Parquet footers), and so do the rejected
rows when there are few (`QUARANTINE_IN_OBSERVATION`). Only when a warn or fail rule was broken
somewhere does `violations_by_partition` read the just-written data once more, to say in which
partitions and to show sample values; a clean run starts no extra pass over the source.
"""

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from lake_assets.lib.contracts import anomalies
from lake_assets.lib.contracts.anomalies import History, Reading
from lake_assets.lib.contracts.rules import (
    FLAG_PREFIX,
    SAMPLES,
    SCHEMA_CHECK,
    Anomaly,
    ByRowRule,
    Contract,
    Counts,
    Rule,
    RuleResult,
    Severity,
    TableRule,
    publishable,
)
from lake_assets.lib.transforms.columns import RAW, REJECT_REASON

Partition = str | None  # a partition key, or None for an unpartitioned table
# Up to this many rejected rows ride on the table's write, in its observation (Spark's `min_by` with k
# keeps a bounded heap per task), so the quarantine is written without reading the source again. With
# more, a second pass over the source writes it: memory stays bounded whatever the file holds.
QUARANTINE_IN_OBSERVATION = 1000
_QUARANTINE = "_quarantine"  # the observation's entry for those rows (no rule name starts with "_")


def keeps_rejected_rows(spark_version: str) -> bool:
    """`min_by` with k is Spark 4.2's: a Spark Connect server older than that (a cluster on Spark 3.5,
    say) gets the second pass instead of failing the run."""
    match = re.match(r"(\d+)\.(\d+)", spark_version)
    if match is None:
        raise ValueError(f"not a Spark version: {spark_version!r}")
    major, minor = (int(n) for n in match.groups())
    return (major, minor) >= (4, 2)


@dataclass
class Observed:
    """What the writes of one run came to, per partition."""

    rows: Mapping[Partition, int]
    rejected: Mapping[Partition, int]
    # {partition: {rule name: (violations, samples)}} for warn/fail row rules; absent means none
    violations: Mapping[Partition, Mapping[str, tuple[int, list[str]]]] = field(default_factory=dict)
    # {partition: {reason: rows set aside}}: a drop rule's name, or a parse failure ("malformed JSON line")
    rejected_by_reason: Mapping[Partition, Mapping[str, int]] = field(default_factory=dict)
    source_records: Mapping[Partition, int] = field(default_factory=dict)
    previous_rows: Mapping[Partition, int | None] = field(default_factory=dict)
    # {partition: {anomaly rule name: reading}}, from the published rows (`anomalies.profile`)
    readings: Mapping[Partition, Mapping[str, Reading]] = field(default_factory=dict)


@dataclass
class Split:
    """A contracted DataFrame split for writing: the table's rows, the quarantine, and the observation
    that counts everything as the table's rows are written (read `totals` and `quarantine` after that
    write)."""

    good: DataFrame
    rejected: DataFrame  # the quarantine's own pass over the source
    observation: Observation
    kept: DataFrame  # the columns the observation keeps of a rejected row (its schema, never run)

    @property
    def totals(self) -> dict[str, int]:
        return {name: value for name, value in self.observation.get.items() if name != _QUARANTINE}

    def kept_rows(self) -> list[dict] | None:
        """The rejected rows the observation kept, when it kept them all; else None."""
        observed = self.observation.get
        if _QUARANTINE not in observed or observed["rejected"] > QUARANTINE_IN_OBSERVATION:
            return None
        return [row.asDict(recursive=True) for row in observed[_QUARANTINE] or []]

    def reasons(self, contract: Contract, written: Callable[[], DataFrame]) -> dict[Partition, dict[str, int]]:
        """Rejected rows per partition and reason: counted from the kept rows (no Spark job), else
        from the `written` quarantine."""
        rows = self.kept_rows()
        if rows is None:
            return rejected_by_reason(written(), contract)
        out: dict[Partition, dict[str, int]] = {}
        part = contract.partition_column
        for row in rows:
            by_reason = out.setdefault(str(row[part]) if part else None, {})
            by_reason[row[REJECT_REASON]] = by_reason.get(row[REJECT_REASON], 0) + 1
        return out

    def quarantine(self, spark: SparkSession) -> DataFrame:
        """The rejected rows to write: the ones the observation kept when it kept them all (no pass
        over the source), else the quarantine's own pass."""
        rows = self.kept_rows()
        if rows is None:
            return self.rejected
        # Handed over as Arrow: a classic session then starts no Python worker to read Python rows.
        kept = spark.createDataFrame(pa.Table.from_pylist(rows, schema=to_arrow_schema(self.kept.schema)))
        return kept.coalesce(1).select(f"{RAW}.*", *self.kept.columns[1:])  # a few rows: one task, one file


def split(flagged: DataFrame, contract: Contract, layout: str) -> Split:
    """Split `Contract.apply`'s output. Every count rides on the table's write as a Spark observation
    (no pass of its own): good and rejected rows, each warn/fail rule's violations (`_violates_<rule>`),
    and up to QUARANTINE_IN_OBSERVATION rejected rows themselves.
    It sees the rows before the split, so it also says whether there is a quarantine to write at all."""
    part = contract.partition_column
    flags = [FLAG_PREFIX + r.name for r in contract.flagged_rules(layout)]
    rejected_row = F.col(REJECT_REASON).isNotNull()
    observation = Observation(f"contract-{uuid.uuid4().hex}")
    kept = [RAW, REJECT_REASON, *([part] if part else [])]
    # The rejected rows themselves, up to the bound (a null ordering key leaves a good row out).
    ordering = F.when(rejected_row, F.lit(0))
    rejected_rows = F.min_by(F.when(rejected_row, F.struct(*kept)), ordering, QUARANTINE_IN_OBSERVATION).alias(_QUARANTINE)
    observed = flagged.observe(
        observation,
        F.count_if(~rejected_row).alias("rows"),
        F.count_if(rejected_row).alias("rejected"),
        *[F.count_if(F.col(f)).alias(f) for f in flags],
        *([rejected_rows] if keeps_rejected_rows(flagged.sparkSession.version) else []),
    )
    # Each side reads through an observation, which Spark does not push a filter below. Pushed down to
    # the scan, the filter gets the typing and the rules inlined into one condition that parses each
    # value several times, then does it all again for the rows it keeps (bench_contract: 1.60x the
    # transform alone, against 1.08x). The table's side carries the counts; the quarantine's pass
    # carries a bare row count, so it computes only what decides a reject (the parse, the drop rules),
    # not the flags and the counts again.
    good = observed.filter(~rejected_row).drop(RAW, REJECT_REASON, *flags)
    barrier = flagged.observe(Observation(f"quarantine-{uuid.uuid4().hex}"), F.count(F.lit(1)).alias("rows"))
    rejected = barrier.filter(rejected_row).select(f"{RAW}.*", *kept[1:])
    return Split(good, rejected, observation, flagged.select(*kept))


def schema_result(contract: Contract, layout: str, written: Sequence[tuple[str, str]]) -> RuleResult:
    """The schema contract: the written columns and types are exactly the layout's."""
    expected = dict(contract.layouts[layout])
    actual = {name: kind for name, kind in written if name != contract.partition_column}
    wrong = sorted(
        [f"{c}: missing" for c in expected.keys() - actual.keys()]
        + [f"{c}: unexpected" for c in actual.keys() - expected.keys()]
        + [f"{c}: {actual[c]}, expected {expected[c]}" for c in expected.keys() & actual.keys() if actual[c] != expected[c]]
    )
    return RuleResult(
        rule=None,
        name=SCHEMA_CHECK,
        severity=Severity.FAIL,
        description=f"The columns and types of the `{layout}` layout: " + ", ".join(f"{c} {t}" for c, t in expected.items()),
        violations=len(wrong),
        checked=len(expected),
        samples=wrong[:SAMPLES],
        measured=f"{len(actual)} columns",
    )


def judge(
    contract: Contract, layout: str, partition: Partition, observed: Observed, schema: RuleResult, history: History | None = None
) -> list[RuleResult]:
    """Every rule of the contract on one table or partition, the schema contract first; anomaly rules
    against `history` (none: every anomaly rule is still warming up)."""
    rows, rejected = observed.rows.get(partition, 0), observed.rejected.get(partition, 0)
    counts = Counts(
        rows=rows,
        rejected=rejected,
        previous_rows=observed.previous_rows.get(partition),
        source_records=observed.source_records.get(partition),
    )
    applicable = set(id(r) for r in contract.applicable(layout))
    results = [schema]
    for rule in contract.rules:
        if id(rule) not in applicable:
            results.append(_result(rule, 0, 0, applicable=False))
        elif isinstance(rule, Anomaly):
            past = history.before(rule.name, partition, rule.window) if history else []
            results.append(anomalies.judge(rule, observed.readings.get(partition, {}).get(rule.name), past))
        elif isinstance(rule, TableRule):
            violations, measured = rule.judge(counts)
            results.append(_result(rule, violations, rows, measured=measured))
        elif rule.severity is Severity.DROP:
            dropped = observed.rejected_by_reason.get(partition, {}).get(rule.name, 0)
            results.append(_result(rule, dropped, rows + rejected, measured=f"{dropped} of {rows + rejected} rows set aside"))
        else:
            count, samples = observed.violations.get(partition, {}).get(rule.name, (0, []))
            results.append(_result(rule, count, rows, samples=samples))
    return results


def judge_in_order(
    contract: Contract,
    layout: str,
    keys: Sequence[Partition],
    observed: Observed,
    schema: RuleResult,
    earlier: pa.Table | None,
    now: dt.datetime,
) -> dict[Partition, list[RuleResult]]:
    """`judge` for each partition in date order, anomaly rules against `earlier` (the quality log's
    rows before this run; None: the contract has no anomaly rule). A published partition joins the
    history of the next, so a backfill's later days are judged by its earlier ones."""
    history = History.from_log(earlier) if earlier is not None else None
    judged = {}
    for key in sorted(keys, key=lambda k: k or ""):
        judged[key] = results = judge(contract, layout, key, observed, schema, history)
        if history is not None and publishable(results):
            history.record(key, now, results)
    return judged


def _result(rule: Rule, violations: int, checked: int, *, samples=(), measured: str = "", applicable: bool = True) -> RuleResult:
    return RuleResult(
        rule=rule,
        name=rule.name,
        severity=rule.severity,
        description=rule.description,
        violations=violations,
        checked=checked,
        samples=list(samples),
        measured=measured,
        applicable=applicable,
    )


def violations_by_partition(
    written: DataFrame, contract: Contract, rules: Sequence[ByRowRule]
) -> dict[Partition, dict[str, tuple[int, list[str]]]]:
    """Re-evaluate these row rules on the written rows (typed, good rows only): per partition and rule,
    the count and up to SAMPLES values. One Spark job; only the violating rows are shuffled."""
    part = contract.partition_column
    group = F.col(part).cast("string") if part else F.lit(None).cast("string")
    rows = written.withColumn(REJECT_REASON, F.lit(None).cast("string"))
    broken = F.array(
        *[F.when(rule.violated(part), F.struct(F.lit(rule.name).alias("rule"), rule.sample().alias("value"))) for rule in rules]
    )
    per_rule = Window.partitionBy("partition", "v.rule")
    found = (
        rows.select(group.alias("partition"), F.explode(F.filter(broken, lambda v: v.isNotNull())).alias("v"))
        .withColumn("n", F.row_number().over(per_rule.orderBy("v.value")))
        .withColumn("total", F.count(F.lit(1)).over(per_rule))
        .filter(F.col("n") <= SAMPLES)
        .select("partition", "v.rule", "v.value", "total")
        .collect()
    )
    out: dict[Partition, dict[str, tuple[int, list[str]]]] = {}
    for row in found:
        by_rule = out.setdefault(row["partition"], {})
        total, samples = by_rule.get(row["rule"], (row["total"], []))
        by_rule[row["rule"]] = (total, samples + [row["value"] if row["value"] is not None else "null"])
    return out


def rejected_by_reason(rejected: DataFrame, contract: Contract) -> dict[Partition, dict[str, int]]:
    """Rows set aside per partition and reason (a drop rule, or a parse failure), from the written
    `_rejected/` rows: a few rows, so one small job."""
    part = contract.partition_column
    group = F.col(part).cast("string") if part else F.lit(None).cast("string")
    counts = rejected.groupBy(group.alias("partition"), F.col(REJECT_REASON).alias("reason")).count().collect()
    out: dict[Partition, dict[str, int]] = {}
    for row in counts:
        out.setdefault(row["partition"], {})[row["reason"]] = row["count"]
    return out
