"""Anomaly rules: judged from the quality log's history alone, with a warm-up, on seeded days with
injected anomalies (`lake_tools.anomaly_days`), and in a real run of `trusted/tmdb`."""

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import materialize

from lake_assets.defs.assets import raw, trusted
from lake_assets.lib import quality_log
from lake_assets.lib.contracts import TMDB
from lake_assets.lib.contracts.anomalies import History, Reading, band, judge
from lake_assets.lib.contracts.rules import Anomaly, Metric, Severity
from lake_assets.lib.storage.local import LocalStorage
from lake_assets_tests.readback import lake_resources
from lake_tools.anomaly_days import INJECTED, days, replay
from lake_tools.seed_history import seed, snapshot_records

# Which rule each injected anomaly must trip.
EXPECTED_RULE = {
    "a third of the rows": "anomaly_row_count",
    "titulo_original 40% null": "anomaly_null_share_titulo_original",
    "media_de_votos shifted by -2": "anomaly_mean_media_de_votos",
    "8% duplicated tmdb_id": "anomaly_distinct_share_tmdb_id",
    "idioma_original distribution flipped (en <-> pt)": "anomaly_distribution_idioma_original",
}
KEPT = 5  # records of the day that loses the others (the seeded days hold 30 to 240)
ROWS = Anomaly("rows", Severity.WARN, "", metric=Metric.ROW_COUNT, window=3, relative=0.1)


def test_five_injected_anomalies_are_caught_with_at_most_one_false_alarm_in_90_days(tmp_path):
    judged = replay(days(90), LocalStorage(tmp_path))
    flagged = {j.day.partition: j.flagged for j in judged if j.flagged}
    injected = {j.day.partition: j.day.anomaly for j in judged if j.day.anomaly}
    assert len(injected) == len(INJECTED) == 5
    for day, anomaly in injected.items():
        assert EXPECTED_RULE[anomaly] in flagged.get(day, []), (day, anomaly, flagged.get(day))
    false_alarms = sorted(set(flagged) - set(injected))
    assert len(false_alarms) <= 1, {day: flagged[day] for day in false_alarms}
    # Warm-up: no day before the 15th is judged at all; the quality log holds every reading.
    assert not any(j.flagged for j in judged[:14])
    log = duckdb.sql(
        f"select partition, count(expected_low) from read_parquet('{tmp_path}/trusted/_quality/tmdb-*.parquet') "
        "where kind = 'Anomaly' group by partition order by partition"
    ).fetchall()
    assert len(log) == 90 and {n for _, n in log[:14]} == {0} and {n for _, n in log[14:]} == {26}


def test_no_judgement_before_the_window_is_full_then_a_band_from_median_and_mad():
    history = [Reading(100.0), Reading(104.0), Reading(96.0)]
    warming = judge(ROWS, Reading(10.0), history[:2])
    assert (warming.violations, warming.band) == (0, None)
    assert warming.measured.startswith("warming up: 2 of 3")
    # Median 100, MAD 4: 5 * 1.4826 * 4 = 29.65 wins over 10% of the median.
    assert band(ROWS, [100, 104, 96]) == (100 - 5 * 1.4826 * 4, 100 + 5 * 1.4826 * 4)
    low = judge(ROWS, Reading(60.0), history)
    assert (low.violations, low.observed) == (1, 60.0)
    assert judge(ROWS, Reading(120.0), history).violations == 0
    # A steady metric (MAD 0) still gets the declared least width: 10% of 100.
    assert band(ROWS, [100, 100, 100]) == (90, 110)


def test_history_counts_a_day_by_its_latest_published_evaluation_and_reads_logs_from_before_the_columns():
    def log(day: str, value: float, published: bool, at: int) -> pa.Table:
        result = judge(ROWS, Reading(value), [])
        when = dt.datetime(2026, 1, at, tzinfo=dt.UTC)
        return quality_log.entries("trusted/toy", f"run{at}", when, {day: ([result], published)})

    logs = [
        log("2026-01-01", 10, True, 1),
        log("2026-01-02", 20, True, 2),
        log("2026-01-02", 25, True, 3),  # re-run: replaces the 20
        log("2026-01-03", 99, False, 4),  # not published: not history
    ]
    old = logs[0].drop_columns(["observed", "expected_low", "expected_high", "shares"])  # a file from before them
    files = [_bytes(t) for t in [*logs, old]]
    history = History.from_log(quality_log.read_logs(files))
    assert [r.value for r in history.before("rows", "2026-01-04", 10)] == [10, 25]
    assert [r.value for r in history.before("rows", "2026-01-02", 10)] == [10]  # a day never sees itself


def _bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_a_real_run_flags_a_day_with_a_third_of_its_rows_from_the_history_of_the_days_before(tmp_path, spark_resource):
    from lake_assets.defs.resources import LakeResource

    lake = LakeResource(root=str(tmp_path / "lake"))
    first = dt.date(2024, 5, 1)
    window = next(r for r in TMDB.rules if r.name == "anomaly_row_count").window
    count = window + 2
    landed = seed(lake, first, count, snapshot_records())
    days_ = sorted(landed)
    resources = lake_resources(lake, spark_resource)
    tags = {"dagster/asset_partition_range_start": days_[0], "dagster/asset_partition_range_end": days_[-1]}
    backfill = materialize([raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, tags=tags)
    judged = [e for e in backfill.get_asset_check_evaluations() if e.check_name == "contract"]
    assert len(judged) == count and all(e.metadata["anomalies_out_of_band"].value == [] for e in judged)

    # The last day loses all but five of its records upstream; every record is still valid.
    last = days_[-1]
    storage = lake.storage("raw")
    files = sorted(o.key for o in storage.list(f"raw/tmdb/dt={last}/") if o.key.endswith(".jsonl"))
    lines = [line for key in files for line in (storage.get_bytes(key) or b"").decode().splitlines()]
    storage.delete(files)
    storage.put_bytes(("\n".join(lines[:KEPT]) + "\n").encode(), f"raw/tmdb/dt={last}/part-0.jsonl")
    result = materialize([raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, partition_key=last)
    assert result.success  # a warning: published, and said

    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "contract")
    # Five records also move the day's null shares and means: each rule out of band says by how much.
    out_of_band = check.metadata["anomalies_out_of_band"].value
    assert "anomaly_row_count" in out_of_band
    for name in out_of_band:
        seen = check.metadata[f"anomaly/{name}"].value
        assert not seen["expected"][0] <= seen["observed"] <= seen["expected"][1], (name, seen)
    reading = check.metadata["anomaly/anomaly_row_count"].value
    assert reading["observed"] == KEPT
    low, high = reading["expected"]
    assert low > KEPT and high >= low
    assert check.severity.value == "WARN" and "out of its usual band" in (check.description or "")
    # The counts agree with the description's "43 rules (43 apply)", and the table shows every reading.
    rules = len(TMDB.rules) + 1
    assert check.metadata["rules"].value == check.metadata["rules_applicable"].value == rules
    assert f"{rules} rules ({rules} apply)" in (check.description or "")
    table = check.metadata["anomalies_table"].value
    assert table.count("\n| anomaly_") == 26 and f"| anomaly_row_count | warn | {KEPT} |" in table

    # The quality log holds the reading and its band, read back with DuckDB.
    rows = duckdb.sql(
        f"select partition, observed, expected_low, expected_high, passed, run_id from read_parquet('{tmp_path}/lake/trusted/_quality/*.parquet') "
        "where rule = 'anomaly_row_count' order by evaluated_at, partition"
    ).fetchall()
    warm = [r for r in rows if r[5] != result.run_id]
    assert [r[0] for r in warm] == days_ and all(r[2] is None for r in warm[:window]) and warm[window][2] is not None
    assert rows[-1][:5] == (last, KEPT, low, high, False)

    # The report beside it names the flagged day; the materialisation links it.
    materialization = result.get_asset_materialization_events()[0].materialization
    report = materialization.metadata["quality_report"].value
    html = open(report, encoding="utf-8").read()
    assert report.endswith(".html") and f'id="day-{last}"' in html and "anomaly_row_count" in html
    assert json.dumps(check.metadata["quality_report"].value) == json.dumps(report)
