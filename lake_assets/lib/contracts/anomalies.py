"""Anomaly rules: a day's metrics judged against the same metrics of the days before it.

A day's reading (`profile`) is taken from its published rows with pyarrow when the run writes it; the
history is the quality log's earlier readings (`History`), so judging costs no Spark job and no read of
earlier data. The band is robust: the median of the last `window` published days, plus or minus
`tolerance` MADs scaled to a standard deviation, so one odd day in the window does not widen it.
"""

import bisect
import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.lib.contracts.rules import Anomaly, Contract, Metric, RuleResult, Unique

MAD_TO_SIGMA = 1.4826  # a normal distribution's MAD is 0.6745 of its standard deviation
NULL_VALUE = "(null)"  # a distribution's name for a missing value


@dataclass(frozen=True)
class Reading:
    """One metric of one table or partition: a number, and a distribution's value shares."""

    value: float
    shares: Mapping[str, float] | None = None


def anomaly_rules(contract: Contract, layout: str) -> list[Anomaly]:
    return [rule for rule in contract.applicable(layout) if isinstance(rule, Anomaly)]


def profile(contract: Contract, layout: str, rows: pa.Table, rejected_by_reason: Mapping[str, int]) -> dict[str, Reading]:
    """Each anomaly rule's reading of one table or partition: `rows` are the rows it publishes,
    `rejected_by_reason` the records set aside. A metric with nothing to measure (a mean of no value)
    has no reading, and its rule says so."""
    readings = {}
    rejected = sum(rejected_by_reason.values())
    for rule in anomaly_rules(contract, layout):
        value = _measure(rule, contract, rows, rejected, rejected_by_reason)
        if value is not None:
            readings[rule.name] = value
    return readings


def _measure(rule: Anomaly, contract: Contract, rows: pa.Table, rejected: int, by_reason: Mapping[str, int]) -> Reading | None:
    n = rows.num_rows
    if rule.metric is Metric.ROW_COUNT:
        return Reading(float(n + rejected))
    if n == 0:
        return None
    column = rows[rule.column]
    if rule.metric is Metric.NULL_SHARE:
        return Reading(column.null_count / n)
    if rule.metric is Metric.MEAN:
        mean = pc.mean(column).as_py()
        return Reading(float(mean)) if mean is not None else None
    if rule.metric is Metric.DISTINCT_SHARE:
        # Published rows hold one row per key; the duplicates the contract set aside count as records.
        duplicates = sum(by_reason.get(u.name, 0) for u in contract.rules if isinstance(u, Unique) and u.key == (rule.column,))
        return Reading(pc.count_distinct(column).as_py() / (n + duplicates))
    if rule.metric is Metric.DISTRIBUTION:
        counts = pc.value_counts(pc.fill_null(column.cast(pa.string()), NULL_VALUE))
        return Reading(0.0, {str(v["values"]): v["counts"] / n for v in counts.to_pylist()})
    raise ValueError(f"{rule.name}: no measure for metric {rule.metric}")


class History:
    """Published readings per rule, in partition order (for an unpartitioned table, in run order):
    what each rule's band is computed from. Built from the quality log, and grown as a run judges its
    days in order, so a backfill's later days are judged against its earlier ones."""

    def __init__(self):
        self._by_rule: dict[str, tuple[list[str], list[Reading]]] = {}

    @classmethod
    def from_log(cls, log: pa.Table) -> "History":
        """The latest published reading of each partition per anomaly rule (`log`: quality log rows)."""
        history = cls()
        if log.num_rows == 0:
            return history
        wanted = log.filter(pc.and_(pc.equal(log["kind"], "Anomaly"), pc.is_valid(log["observed"])))
        wanted = wanted.filter(pc.fill_null(wanted["published"], False)).sort_by("evaluated_at")
        latest: dict[tuple[str, str], Reading] = {}
        for row in wanted.select(["rule", "partition", "evaluated_at", "observed", "shares"]).to_pylist():
            # A partition counts by its latest evaluation; an unpartitioned table keeps every version.
            shares = dict(row["shares"]) if row["shares"] is not None else None
            latest[(row["rule"], _order_key(row["partition"], row["evaluated_at"]))] = Reading(row["observed"], shares)
        for (rule, where), reading in sorted(latest.items()):
            history._insert(rule, where, reading)
        return history

    def add(self, rule: str, partition: str | None, evaluated_at: dt.datetime, reading: Reading) -> None:
        """Record a published reading; a partition read again replaces its earlier reading."""
        self._insert(rule, _order_key(partition, evaluated_at), reading)

    def _insert(self, rule: str, where: str, reading: Reading) -> None:
        keys, readings = self._by_rule.setdefault(rule, ([], []))
        at = bisect.bisect_left(keys, where)
        if at < len(keys) and keys[at] == where:
            readings[at] = reading
        else:
            keys.insert(at, where)
            readings.insert(at, reading)

    def record(self, partition: str | None, evaluated_at: dt.datetime, results: Iterable[RuleResult]) -> None:
        """A published table or partition's anomaly readings join the history."""
        for r in results:
            if isinstance(r.rule, Anomaly) and r.observed is not None:
                self.add(r.name, partition, evaluated_at, Reading(r.observed, r.shares))

    def before(self, rule: str, partition: str | None, count: int) -> list[Reading]:
        """The last `count` readings of the days before `partition` (None: of the table's versions)."""
        keys, readings = self._by_rule.get(rule, ([], []))
        end = bisect.bisect_left(keys, partition if partition is not None else _AFTER_EVERY_VERSION)
        return readings[max(0, end - count) : end]


# Where a reading sorts: a day by its date, an unpartitioned table's version by its time after `~`,
# which sorts after any date (the two never mix in one table).
_AFTER_EVERY_VERSION = "~~"


def _order_key(partition: str | None, evaluated_at: dt.datetime) -> str:
    return partition if partition is not None else f"~{evaluated_at.isoformat()}"


def judge(rule: Anomaly, reading: Reading | None, history: Sequence[Reading]) -> RuleResult:
    """One anomaly rule on one table or partition: within the band of its history, warming up, or
    out of band (one violation). It checks no row (`checked` stays 0); `measured` names the days."""
    result = RuleResult(rule=rule, name=rule.name, severity=rule.severity, description=rule.description, violations=0, checked=0)
    if reading is None:
        result.measured = "no reading (no published value to measure)"
        return result
    result.shares = dict(reading.shares) if reading.shares is not None else None
    observed = reading.value
    if rule.metric is Metric.DISTRIBUTION and len(history) >= rule.window:
        typical = _median_shares([h.shares or {} for h in history])
        observed = _distance(reading.shares or {}, typical)
        scale = [_distance(h.shares or {}, typical) for h in history]
    else:
        scale = [h.value for h in history]
    result.observed = observed
    if len(history) < rule.window:
        result.measured = f"warming up: {len(history)} of {rule.window} published days of history; observed {_fmt(observed)}"
        return result
    low, high = band(rule, scale)
    result.band = (low, high)
    result.violations = 0 if low <= observed <= high else 1
    result.measured = f"observed {_fmt(observed)}, expected {_fmt(low)} to {_fmt(high)} (last {len(history)} days)"
    return result


def band(rule: Anomaly, values: Sequence[float]) -> tuple[float, float]:
    """Median ± max(tolerance scaled MADs, floor, relative of the median); a distance has no lower side."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    half = max(rule.tolerance * MAD_TO_SIGMA * mad, rule.floor, rule.relative * abs(median))
    low, high = median - half, median + half
    if rule.metric in (Metric.NULL_SHARE, Metric.DISTINCT_SHARE):
        return max(0.0, low), min(1.0, high)
    if rule.metric is Metric.DISTRIBUTION:
        return 0.0, high
    return (max(0.0, low), high) if rule.metric is Metric.ROW_COUNT else (low, high)


def _median_shares(days: Iterable[Mapping[str, float]]) -> dict[str, float]:
    days = list(days)
    values = {value for day in days for value in day}
    return {value: statistics.median(day.get(value, 0.0) for day in days) for value in values}


def _distance(shares: Mapping[str, float], typical: Mapping[str, float]) -> float:
    """Total variation distance (0: the same shares, 1: nothing in common), against the median shares
    normalised to sum to 1."""
    total = sum(typical.values()) or 1.0
    values = set(shares) | set(typical)
    return 0.5 * sum(abs(shares.get(v, 0.0) - typical.get(v, 0.0) / total) for v in values)


def _fmt(value: float) -> str:
    return f"{value:.4g}"
