"""The quality log: one Parquet file per table per run under `trusted/_quality/`, one row per rule per
table or partition, readable with DuckDB (`read_parquet('lake/trusted/_quality/*.parquet')`).

It is the lake's record of every contract result, and the history anomaly rules are judged against,
so a run reads the earlier runs' files of its table (`LogReader`), newest first, as far back as needed. The run's HTML report sits beside
its log file, under the same name.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_assets.lib.contracts.evaluate import Partition
from lake_assets.lib.contracts.rules import RuleResult
from lake_assets.lib.storage import Storage

QUALITY_LOG = "trusted/_quality"
READ_BATCH = 8  # log files fetched at once while reading back

QUALITY_LOG_SCHEMA = pa.schema(
    [
        ("evaluated_at", pa.timestamp("ms", tz="UTC")),
        ("run_id", pa.string()),
        ("table", pa.string()),
        ("partition", pa.string()),
        ("rule", pa.string()),
        ("kind", pa.string()),
        ("severity", pa.string()),
        ("description", pa.string()),
        ("applicable", pa.bool_()),
        ("passed", pa.bool_()),
        ("violations", pa.int64()),
        ("rows_checked", pa.int64()),
        ("measured", pa.string()),
        ("samples", pa.list_(pa.string())),
        ("published", pa.bool_()),
        # Anomaly rules only: the metric's value, the band its history allowed (null while warming up),
        # and a distribution's value shares; the history the next days are judged against.
        ("observed", pa.float64()),
        ("expected_low", pa.float64()),
        ("expected_high", pa.float64()),
        ("shares", pa.map_(pa.string(), pa.float64())),
    ]
)


def entries(
    table: str, run_id: str, evaluated_at: dt.datetime, results: Mapping[Partition, tuple[list[RuleResult], bool]]
) -> pa.Table:
    """One row per rule per table-or-partition of this run: the lake's quality log (`_quality/`)."""
    rows = [
        {
            "evaluated_at": evaluated_at,
            "run_id": run_id,
            "table": table,
            "partition": partition,
            "rule": r.name,
            "kind": r.rule.kind if r.rule else "Schema",
            "severity": str(r.severity),
            "description": r.description,
            "applicable": r.applicable,
            "passed": r.passed,
            "violations": r.violations,
            "rows_checked": r.checked,
            "measured": r.measured,
            "samples": r.samples,
            "published": published,
            "observed": r.observed,
            "expected_low": r.band[0] if r.band else None,
            "expected_high": r.band[1] if r.band else None,
            "shares": sorted(r.shares.items()) if r.shares is not None else None,
        }
        for partition, (partition_results, published) in results.items()
        for r in partition_results
    ]
    return pa.Table.from_pylist(rows, schema=QUALITY_LOG_SCHEMA)


def log_key(table: str, run_id: str, evaluated_at: dt.datetime, suffix: str = "parquet") -> str:
    """`trusted/_quality/<table>-<time>-<run>.<suffix>`: a run's log, or its report (`html`)."""
    return f"{QUALITY_LOG}/{_prefix(table)}{evaluated_at:%Y%m%dT%H%M%S}-{run_id[:8]}.{suffix}"


def write(storage: Storage, log: pa.Table, key: str) -> str:
    sink = pa.BufferOutputStream()
    pq.write_table(log, sink)
    storage.put_bytes(sink.getvalue().to_pybytes(), key)
    return storage.uri(key)


class LogReader:
    """A table's earlier logs, read newest first and only as far back as asked: a daily run reads
    the files of the days its rules look back on, not the lake's whole life."""

    def __init__(self, storage: Storage, table: str):
        self._storage = storage
        listed = storage.list(f"{QUALITY_LOG}/{_prefix(table)}")
        # Names carry the run's time, so the newest sort last.
        self._keys = sorted((o.key for o in listed if o.key.endswith(".parquet")), reverse=True)
        self._read: list[pa.Table] = []
        self._published: set[str] = set()  # days, or runs of an unpartitioned table, found published

    def covering(self, before: str | None, days: int) -> pa.Table:
        """The log rows read so far, reading older files until every one of the `days` days before
        `before` was found published (None: until `days` published runs of an unpartitioned table)."""
        while self._keys and not self._covers(before, days):
            # A few files at a time, fetched together: on S3 each is a request of its own.
            batch, self._keys = self._keys[:READ_BATCH], self._keys[READ_BATCH:]
            with ThreadPoolExecutor(READ_BATCH) as pool:
                for data in pool.map(self._storage.get_bytes, batch):
                    if data:
                        self._add(read_logs([data]), before is not None)
        return pa.concat_tables(self._read) if self._read else QUALITY_LOG_SCHEMA.empty_table()

    def _add(self, table: pa.Table, partitioned: bool) -> None:
        self._read.append(table)
        published = table.filter(pc.fill_null(table["published"], False))
        found = published["partition"] if partitioned else published["run_id"]
        self._published.update(str(v) for v in pc.unique(found.drop_null()).to_pylist())

    def _covers(self, before: str | None, days: int) -> bool:
        if before is None:
            return len(self._published) >= days
        end = dt.date.fromisoformat(before)
        return all((end - dt.timedelta(days=n)).isoformat() in self._published for n in range(1, days + 1))


def read_logs(files: Iterable[bytes]) -> pa.Table:
    """Log files as one table; a file from before a column existed gets nulls there."""
    tables = [_current(pq.read_table(pa.BufferReader(data))) for data in files if data]
    return pa.concat_tables(tables) if tables else QUALITY_LOG_SCHEMA.empty_table()


def _current(table: pa.Table) -> pa.Table:
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in QUALITY_LOG_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=QUALITY_LOG_SCHEMA)


def _prefix(table: str) -> str:
    return f"{table.split('/')[-1]}-"
