"""The trusted tables' contracts: every rule kind and severity, the CSV input contract (encodings,
separators, empty files), malformed raw TMDB records, a range run where one day breaks a `fail`
rule, and the quality log. Real Spark; the lake is read back with pyarrow and DuckDB."""

import datetime as dt
import json
import re
import time

import duckdb
import pyspark
import pytest
from dagster import AssetIn, AssetKey, BackfillPolicy, DailyPartitionsDefinition, asset, materialize
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.checks import check_specs, contract_events
from lake_assets.defs.io_managers.paths import LAKE_PATH
from lake_assets.lib.contracts import evaluate
from lake_assets.lib.contracts.evaluate import Observed, judge, schema_result
from lake_assets.lib.contracts.rules import (
    Between,
    ComparedToPrevious,
    Contract,
    Counts,
    DateBetween,
    Matches,
    MaxRejectedShare,
    MinRows,
    NotEmpty,
    NotNull,
    OneOf,
    ReconcilesWithSource,
    Severity,
    Unique,
)
from lake_assets.lib.transforms.columns import RAW, REJECT_REASON
from lake_assets.lib.transforms.filmes import Dialect
from lake_assets_tests.readback import Lake, lake_resources
from lake_tools.sample_filmes import HEADER, filmes_rows, write_filmes_csv
from lake_tools.seed_history import seed, snapshot_records

# --- rule kinds on a few rows (pure Spark) -------------------------------------------------------

ROWS = [
    # id, nota, lingua, generos, lancado, dt
    (1, 7.5, "pt", ["Drama"], dt.date(1998, 4, 3), "2024-03-01"),
    (2, 42.0, "pt-BR", [], dt.date(1850, 1, 1), "2024-03-01"),
    (2, None, None, None, dt.date(2024, 3, 2), "2024-03-01"),
    (2, 3.0, "en", ["Romance"], None, "2024-03-02"),
]


@pytest.fixture(scope="module")
def rows(spark):
    schema = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("nota", T.DoubleType()),
            T.StructField("lingua", T.StringType()),
            T.StructField("generos", T.ArrayType(T.StringType())),
            T.StructField("lancado", T.DateType()),
            T.StructField("dt", T.StringType()),
        ]
    )
    return spark.createDataFrame(ROWS, schema).withColumn(REJECT_REASON, F.lit(None).cast("string"))


@pytest.mark.parametrize(
    "rule, breaking",
    [
        (NotNull("n", Severity.WARN, "", column="nota"), [3]),
        (Between("b", Severity.WARN, "", column="nota", low=0, high=10), [2]),  # a null passes
        (Matches("m", Severity.WARN, "", column="lingua", pattern="[a-z]{2}"), [2]),  # whole value
        (OneOf("o", Severity.WARN, "", column="lingua", values=("pt", "en")), [2]),
        (NotEmpty("e", Severity.WARN, "", column="generos"), [2, 3]),  # [] and null
        (DateBetween("d", Severity.WARN, "", column="lancado", earliest=dt.date(1870, 1, 1), not_after_collection=True), [2, 3]),
        (Unique("u", Severity.WARN, "", key=("id",), keep_first_by=("-nota",)), [3]),  # per dt; the null nota sorts last
    ],
)
def test_each_row_rule_kind_marks_exactly_the_rows_that_break_it(rows, rule, breaking):
    found = rows.select("id", rule.violated("dt").alias("broken")).collect()
    assert [i + 1 for i, row in enumerate(found) if row["broken"]] == breaking


@pytest.mark.parametrize(
    "rule, counts, violations",
    [
        (MinRows("r", Severity.FAIL, ""), Counts(rows=0, rejected=3), 1),
        (MinRows("r", Severity.FAIL, ""), Counts(rows=1, rejected=0), 0),
        (MaxRejectedShare("s", Severity.FAIL, "", share=0.05), Counts(rows=94, rejected=6), 1),
        (MaxRejectedShare("s", Severity.FAIL, "", share=0.05), Counts(rows=95, rejected=5), 0),
        (ComparedToPrevious("p", Severity.WARN, "", share=0.5), Counts(rows=49, rejected=0, previous_rows=100), 1),
        (ComparedToPrevious("p", Severity.WARN, "", share=0.5), Counts(rows=49, rejected=0, previous_rows=None), 0),
        (ReconcilesWithSource("c", Severity.FAIL, ""), Counts(rows=98, rejected=1, source_records=100), 1),
        (ReconcilesWithSource("c", Severity.FAIL, ""), Counts(rows=99, rejected=1, source_records=100), 0),
    ],
)
def test_each_table_rule_kind(rule, counts, violations):
    assert rule.judge(counts)[0] == violations


def test_a_rule_outside_the_layout_does_not_apply_and_a_drop_rule_passes_once_applied():
    contract = Contract(
        "t/x",
        layouts={"a": {"nota": "double"}},
        rules=[
            Between("nota_ok", Severity.DROP, "", column="nota", low=0, high=10),
            NotNull("other", Severity.FAIL, "", column="absent"),
        ],
    )
    observed = Observed(rows={None: 9}, rejected={None: 1}, rejected_by_reason={None: {"nota_ok": 1}})
    schema = schema_result(contract, "a", [("nota", "double")])
    results = {r.name: r for r in judge(contract, "a", None, observed, schema)}
    assert results["schema_contract"].passed and results["nota_ok"].violations == 1 and results["nota_ok"].passed
    assert not results["other"].applicable and results["other"].passed
    wrong = schema_result(contract, "a", [("nota", "string"), ("extra", "int")])
    assert wrong.violations == 2 and wrong.blocks_publish and "nota: string, expected double" in wrong.samples


# --- severities through a real run (the IO manager's publish, both backends) ----------------------

DAYS = DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-03-10")
NOTAS = Contract(
    "trusted/notas",
    layouts={"notas": {"id": "bigint", "nota": "double"}},
    partition_column="dt",
    rules=[
        MinRows("at_least_one_row", Severity.FAIL, "Never publish an empty day."),
        NotNull("id_present", Severity.DROP, "Every row has an id.", column="id"),
        Between("nota_0_to_10", Severity.FAIL, "A grade lies between 0 and 10.", column="nota", low=0, high=10),
        Between("nota_not_9", Severity.WARN, "Nines are suspicious.", column="nota", low=None, high=8.99),
    ],
)
NOTAS_KEY = AssetKey(["trusted", "notas"])


def _notas_asset(rows_by_day: dict):
    @asset(
        key=NOTAS_KEY,
        partitions_def=DAYS,
        backfill_policy=BackfillPolicy.single_run(),
        io_manager_key="parquet_io_manager",
        metadata={LAKE_PATH: "trusted/notas"},
        check_specs=check_specs(NOTAS, NOTAS_KEY, DAYS),
        required_resource_keys={"spark", "parquet_io_manager"},
    )
    def notas(context):
        spark = context.resources.spark.spark_session
        data = [(i, n, d) for d in context.partition_keys for i, n in rows_by_day.get(d, [])]
        df = spark.createDataFrame(data, "id bigint, nota double, dt string")
        typed = df.select("id", "nota", "dt", F.struct("id", "nota").alias(RAW))
        typed = typed.withColumn(REJECT_REASON, F.lit(None).cast("string"))
        report = context.resources.parquet_io_manager.publish(context, NOTAS.apply(typed, "notas"), NOTAS, "notas")
        yield from contract_events(context, report, "trusted/notas")

    return notas


def _run_notas(lake, spark_resource, rows_by_day: dict, days: list[str]):
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    return materialize(
        [_notas_asset(rows_by_day)], resources=lake_resources(lake, spark_resource), tags=tags, raise_on_error=False
    )


def _contract(result) -> dict:
    """The contract check's result per partition."""
    return {c.partition: c for c in result.get_asset_check_evaluations() if c.check_name == "contract"}


def test_fail_drop_and_warn_on_each_day_of_a_range(lake, spark_resource):
    good = {"2024-03-01": [(1, 5.0), (2, 6.0)], "2024-03-02": [(1, 7.0)], "2024-03-03": [(1, 8.0)]}
    assert _run_notas(lake, spark_resource, good, list(good)).success
    before = Lake(lake).bytes_of("trusted/notas/dt=2024-03-02/")

    bad = {
        "2024-03-01": [(1, 5.0), (None, 6.0), (3, 9.5)],  # a drop and a warn: published
        "2024-03-02": [(1, 42.0), (2, -1.0), (3, 4.0)],  # breaks a fail rule: keeps its previous version
        "2024-03-03": [],  # empty: fails at_least_one_row
    }
    result = _run_notas(lake, spark_resource, bad, list(bad))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert (
        "trusted/notas 2024-03-02 not published (the previous version stays readable): nota_0_to_10 (fail): 2 violation(s)"
        in failure
    )
    assert "e.g. -1.0, 42.0" in failure
    assert "trusted/notas 2024-03-03 not published (the previous version stays readable): at_least_one_row" in failure

    read = Lake(lake)
    day1 = read.table("trusted/notas/dt=2024-03-01/")
    assert sorted(day1.column("id").to_pylist()) == [1, 3] and day1.column_names == ["id", "nota"]
    rejected = read.table("trusted/notas/dt=2024-03-01/", rejected=True).to_pylist()
    assert rejected == [{"id": None, "nota": 6.0, REJECT_REASON: "id_present"}]
    assert read.bytes_of("trusted/notas/dt=2024-03-02/") == before  # byte for byte the previous version
    assert sorted(read.table("trusted/notas/dt=2024-03-03/").column("nota").to_pylist()) == [8.0]

    checks = _contract(result)
    day1, day2, day3 = checks["2024-03-01"], checks["2024-03-02"], checks["2024-03-03"]
    assert not day1.passed and day1.severity.value == "WARN"  # published, but a warn rule broke
    assert day1.metadata["rejected_by_reason"].value == {"id_present": 1} and day1.metadata["warned"].value == ["nota_not_9"]
    assert "| nota_not_9 | warn | 1 | 2 |  | 9.5 |" in day1.metadata["rules_table"].value
    # Numbers the UI shows and plots without a click, and one rule count everywhere.
    numbers = {k: day1.metadata[k].value for k in ("rows_checked", "rejected_rows", "rules", "rules_broken", "rules_warned")}
    assert numbers == {"rows_checked": 3, "rejected_rows": 1, "rules": 1 + len(NOTAS.rules), "rules_broken": 0, "rules_warned": 1}
    assert day1.metadata["violations/nota_not_9"].value == 1 and day1.metadata["violations/id_present"].value == 1
    assert f"{1 + len(NOTAS.rules)} rules" in day1.description and "1 row rejected: 1 id_present" in day1.description
    assert not day2.passed and day2.severity.value == "ERROR" and day2.blocking
    assert day2.metadata["broken"].value == ["nota_0_to_10"] and day2.metadata["violations/nota_0_to_10"].value == 2
    assert day3.metadata["broken"].value == ["at_least_one_row"]  # each day judged on its own rows
    materialized = {e.partition for e in result.get_asset_materialization_events()}
    assert materialized == {"2024-03-01"}  # only the published day is recorded as materialised


def test_a_new_day_that_breaks_a_fail_rule_says_it_has_no_earlier_version(tmp_path, spark_resource):
    result = _run_notas(_local_lake(tmp_path), spark_resource, {"2024-03-05": [(1, 42.0)]}, ["2024-03-05"])
    assert not result.success
    assert _failure(result).startswith("trusted/notas 2024-03-05 not published (it has no earlier version): nota_0_to_10")
    check = _contract(result)["2024-03-05"]
    assert check.metadata["action"].value == "not published (it has no earlier version)"
    assert check.description.startswith("Not published (it has no earlier version): nota_0_to_10")
    assert not (tmp_path / "lake" / "trusted" / "notas" / "dt=2024-03-05").exists()


@pytest.mark.parametrize(
    "bound, spark_keeps_rows, second_pass",
    [(evaluate.QUARANTINE_IN_OBSERVATION, True, False), (2, True, True), (evaluate.QUARANTINE_IN_OBSERVATION, False, True)],
    ids=["in-the-observation", "more-than-the-bound", "spark-before-4.2"],
)
def test_the_quarantine_is_the_same_whether_the_write_kept_it_or_a_second_pass_reads_it(
    tmp_path, spark_resource, monkeypatch, bound, spark_keeps_rows, second_pass
):
    """Up to QUARANTINE_IN_OBSERVATION rejected rows come from the table write's observation; more
    (three rows against a bound of 2), or a Spark without `min_by` with k, and a pass of their own
    reads them."""
    monkeypatch.setattr(evaluate, "QUARANTINE_IN_OBSERVATION", bound)
    monkeypatch.setattr(evaluate, "keeps_rejected_rows", lambda version: spark_keeps_rows)
    passes = []
    quarantine = evaluate.Split.quarantine

    def spy(self, spark):
        rows = quarantine(self, spark)
        passes.append(rows is self.rejected)
        return rows

    monkeypatch.setattr(evaluate.Split, "quarantine", spy)
    rows = {"2024-03-01": [(1, 5.0), (None, 6.0), (None, 7.0)], "2024-03-02": [(2, 3.0), (None, 1.5)]}
    result = _run_notas(_local_lake(tmp_path), spark_resource, rows, list(rows))
    assert result.success and passes == [second_pass]

    read = Lake(_local_lake(tmp_path))
    day1 = read.table("trusted/notas/dt=2024-03-01/", rejected=True).to_pylist()
    assert sorted(day1, key=lambda r: r["nota"]) == [
        {"id": None, "nota": 6.0, REJECT_REASON: "id_present"},
        {"id": None, "nota": 7.0, REJECT_REASON: "id_present"},
    ]
    assert read.table("trusted/notas/dt=2024-03-02/", rejected=True).to_pylist() == [
        {"id": None, "nota": 1.5, REJECT_REASON: "id_present"}
    ]
    assert read.table("trusted/notas/dt=2024-03-02/").to_pylist() == [{"id": 2, "nota": 3.0}]
    dropped = {c.partition: c.metadata["rejected_by_reason"].value for c in _contract(result).values()}
    assert dropped == {"2024-03-01": {"id_present": 2}, "2024-03-02": {"id_present": 1}}


def test_rejected_rows_ride_on_the_observation_from_spark_4_2():
    assert [evaluate.keeps_rejected_rows(v) for v in ("3.5.1", "4.0.0", "4.1.2", "4.2.0", "4.3.0", "5.0.0-preview1")] == [
        False,
        False,
        False,
        True,
        True,
        True,
    ]
    assert evaluate.keeps_rejected_rows(pyspark.__version__)  # the pinned one does: the tests above take that path


def test_the_quality_log_reads_back_in_duckdb(tmp_path, spark_resource):
    from lake_assets.defs.resources import LakeResource

    lake = LakeResource(root=str(tmp_path / "lake"))
    days = {"2024-03-04": [(1, 5.0)], "2024-03-05": [(1, 11.0)]}
    result = _run_notas(lake, spark_resource, days, list(days))
    run_id = result.run_id
    log = duckdb.sql(
        f"select partition, rule, severity, passed, violations, published, run_id from read_parquet('{tmp_path}/lake/trusted/_quality/*.parquet') "
        "order by partition, rule"
    ).fetchall()
    assert len(log) == 2 * (len(NOTAS.rules) + 1)  # every rule and the schema, per day
    assert ("2024-03-05", "nota_0_to_10", "fail", False, 1, False, run_id) in log
    assert ("2024-03-04", "nota_0_to_10", "fail", True, 0, True, run_id) in log


# --- the CSV input contract ----------------------------------------------------------------------


def _filmes(lake, spark_resource, source, encoding="utf-8", dialect="auto"):
    return materialize(
        [raw.filmes_csv, trusted.filmes],
        resources=lake_resources(lake, spark_resource),
        run_config={
            "ops": {
                "raw__filmes_csv": {"config": {"source_path": str(source), "encoding": encoding}},
                "trusted__filmes": {"config": {"dialect": dialect, "encoding": encoding}},
            }
        },
        raise_on_error=False,
    )


def _failure(result) -> str:
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return re.sub(r"^[\w.]+: ", "", error.message.strip())  # without the exception's qualified class name


def _local_lake(tmp_path):
    from lake_assets.defs.resources import LakeResource

    return LakeResource(root=str(tmp_path / "lake"))


ACCENTED = ["Coração Selvagem", "Ação e Reação", "Memórias Póstumas"]


def _accented_rows():
    rows = [list(row) for row in filmes_rows(3, seed=11)]
    for row, title in zip(rows, ACCENTED, strict=True):
        row[0] = title
    return rows


def test_a_latin1_file_fails_in_seconds_naming_the_byte_then_loads_exactly_with_the_encoding_set(tmp_path, spark_resource):
    import csv

    source = tmp_path / "filmes-latin1.csv"
    with source.open("w", encoding="latin-1", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(_accented_rows())
    lake = _local_lake(tmp_path)
    started = time.monotonic()
    result = _filmes(lake, spark_resource, source)
    assert not result.success and time.monotonic() - started < 30
    message = _failure(result)
    assert "is not valid utf-8: byte 0xe7 at offset 18 (line 1)" in message and "`encoding` config" in message
    assert "\n" not in message and not list(lake.storage("raw").list("raw/"))

    assert _filmes(lake, spark_resource, source, encoding="latin-1").success
    table = Lake(lake).table("trusted/filmes/")
    assert sorted(table.column("titulo").to_pylist()) == sorted(ACCENTED)
    assert "media_de_votos" in table.column_names  # Média de votos, named by the rule


def test_a_semicolon_export_with_decimal_commas_is_a_dialect_of_its_own(tmp_path, spark_resource):
    source = tmp_path / "filmes-excel.csv"
    lines = [";".join(HEADER)] + [
        'Central do Brasil;03/04/1998;"Dora, uma professora; Josué";23,5;1200;8,1;Brazil;pt;Drama',
        "Bacurau;2019-08-29;Um povoado;1.234,5;800;7,4;Brazil;pt;Drama, Thriller",
    ]
    source.write_text("\r\n".join(lines) + "\r\n", encoding="cp1252")
    lake = _local_lake(tmp_path)
    result = _filmes(lake, spark_resource, source, encoding="cp1252")
    assert result.success, _failure(result)
    rows = {r["titulo"]: r for r in Lake(lake).table("trusted/filmes/").to_pylist()}
    assert rows["Central do Brasil"]["popularidade"] == 23.5 and rows["Central do Brasil"]["media_de_votos"] == 8.1
    assert rows["Central do Brasil"]["data_de_lancamento"] == dt.date(1998, 4, 3)
    assert rows["Central do Brasil"]["visao_geral"] == "Dora, uma professora; Josué"
    assert rows["Bacurau"]["popularidade"] == 1234.5 and rows["Bacurau"]["generos"] == ["Drama", "Thriller"]
    meta = next(
        e for e in result.get_asset_materialization_events() if e.asset_key == trusted.filmes.key
    ).materialization.metadata
    assert meta["dialect"].value == "semicolon"


def test_a_header_that_fits_no_layout_fails_the_schema_contract_never_a_one_column_table(tmp_path, spark_resource):
    source = tmp_path / "other.csv"
    source.write_text("Nome;Idade\nAna;31\n", encoding="utf-8")
    lake = _local_lake(tmp_path)
    result = _filmes(lake, spark_resource, source)
    assert not result.success
    assert "match none of the accepted layouts (seed, programme_movies, programme_series)" in _failure(result)
    (contract,) = _contract(result).values()
    assert not contract.passed and contract.metadata["broken"].value == ["schema_contract"]
    assert not list(lake.storage("trusted").list("trusted/filmes/"))


def test_an_empty_file_is_one_line(tmp_path, spark_resource):
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    result = _filmes(_local_lake(tmp_path), spark_resource, source)
    assert not result.success and _failure(result) == f"{source} is empty (0 bytes, no header line): nothing to load."


def test_a_header_only_file_fails_its_contract_and_the_previous_table_stays(tmp_path, spark_resource):
    lake = _local_lake(tmp_path)
    assert _filmes(lake, spark_resource, write_filmes_csv(tmp_path / "v1.csv", 50)).success
    before = Lake(lake).bytes_of("trusted/filmes/")
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(HEADER) + "\n", encoding="utf-8")
    result = _filmes(lake, spark_resource, header_only)
    assert not result.success
    assert (
        "trusted/filmes not published (the previous version stays readable): at_least_one_row (fail): 1 violation(s)"
        in _failure(result)
    )
    assert "[0 rows (minimum 1)]" in _failure(result)
    assert Lake(lake).bytes_of("trusted/filmes/") == before
    assert Lake(lake).table("trusted/filmes/").num_rows == 50


def test_too_many_bad_rows_keep_the_previous_table(tmp_path, spark_resource):
    lake = _local_lake(tmp_path)
    assert _filmes(lake, spark_resource, write_filmes_csv(tmp_path / "v1.csv", 40)).success
    result = _filmes(lake, spark_resource, write_filmes_csv(tmp_path / "v2.csv", 100, bad_rows=20))
    assert not result.success and "rejected_at_most_5_percent (fail)" in _failure(result)
    assert Lake(lake).table("trusted/filmes/").num_rows == 40


def test_a_filmes_csv_landed_from_outside_is_judged_with_its_rejections_counted(lake, spark_resource, tmp_path):
    """As when the sensor registers the file: no raw materialisation by a run, no metadata to lean on."""
    source = write_filmes_csv(tmp_path / "filmes.csv", 120, bad_rows=2)
    lake.storage("raw").put_file(source, "raw/filmes/filmes.csv")
    result = materialize(
        [raw.filmes_csv, trusted.filmes], selection=[trusted.filmes.key], resources=lake_resources(lake, spark_resource)
    )
    (contract,) = _contract(result).values()
    assert "120 source records; 118 published + 2 rejected" in contract.metadata["rules_table"].value
    # Rejected rows make the check WARN, counted per reason, never a green check beside them.
    assert not contract.passed and contract.severity.value == "WARN" and contract.metadata["rejected_rows"].value == 2
    assert contract.description.startswith("Published; 2 rows rejected: ")


# --- raw TMDB folders with records that are not records ------------------------------------------


def test_malformed_lines_and_a_stray_file_are_rejected_and_downstream_reads_only_table_rows(lake, spark_resource):
    day = "2024-02-10"
    landed = seed(lake, dt.date.fromisoformat(day), 1, snapshot_records())[day]
    storage = lake.storage("raw")
    storage.put_bytes(b'{"id": 1, "title": "cortado\n\n{"id": 2,\n', f"raw/tmdb/dt={day}/part-99999-broken.jsonl")
    storage.put_bytes(b"notas de campo\nnao e JSON\n", f"raw/tmdb/dt={day}/notes.txt")
    seen = {}

    @asset(ins={"rows": AssetIn(key=trusted.tmdb.key)}, partitions_def=trusted.tmdb.partitions_def)
    def downstream(rows) -> None:
        seen["columns"] = rows.columns
        seen["count"] = rows.count()

    result = materialize(
        [raw.tmdb_json, trusted.tmdb, downstream],
        selection=[trusted.tmdb.key, AssetKey("downstream")],
        resources=lake_resources(lake, spark_resource),
        partition_key=day,
    )
    assert result.success
    (contract,) = _contract(result).values()
    assert contract.metadata["rules_broken"].value == contract.metadata["rules_warned"].value == 0  # no rule broke
    assert not contract.passed and contract.severity.value == "WARN"  # but 4 rows were set aside, and it says so
    assert contract.metadata["rejected_by_reason"].value == {"malformed JSON line": 4}
    assert contract.description.startswith("Published; 4 rows rejected: 4 malformed JSON line.")
    meta = {k: v.value for k, v in next(e for e in result.get_asset_materialization_events()).materialization.metadata.items()}
    assert meta["rejected_rows"] == 4 and meta["dagster/row_count"] == landed
    rejected = Lake(lake).table(f"trusted/tmdb/dt={day}/", rejected=True).to_pylist()
    assert sorted(r[REJECT_REASON] for r in rejected) == ["malformed JSON line"] * 4
    assert seen == {"columns": [*trusted_columns(), "dt"], "count": landed}


def trusted_columns() -> list[str]:
    from lake_assets.lib.contracts.tmdb import COLUMNS

    return list(COLUMNS)


def test_a_bad_day_in_a_five_day_backfill_keeps_its_previous_version_and_the_others_publish(tmp_path, spark_resource):
    lake = _local_lake(tmp_path)
    days = [(dt.date(2024, 2, 1) + dt.timedelta(days=n)).isoformat() for n in range(5)]
    records = snapshot_records()
    seed(lake, dt.date.fromisoformat(days[0]), 5, records)
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    resources = lake_resources(lake, spark_resource)
    assert materialize([raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, tags=tags).success
    read = Lake(lake)
    before = {day: read.current_keys(f"trusted/tmdb/dt={day}/") for day in days}
    rows_before = {day: read.table(f"trusted/tmdb/dt={day}/").num_rows for day in days}

    bad_day = days[2]
    storage = lake.storage("raw")
    first = sorted(o.key for o in storage.list(f"raw/tmdb/dt={bad_day}/") if o.key.endswith(".jsonl"))[0]
    lines = storage.get_bytes(first).decode().splitlines()
    movie = json.loads(lines[0])
    movie["vote_average"] = 42.0  # TMDB's scale is 0..10
    storage.put_bytes(("\n".join([json.dumps(movie), *lines[1:]]) + "\n").encode(), first)
    result = materialize(
        [raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, tags=tags, raise_on_error=False
    )

    assert not result.success
    message = _failure(result)
    assert message == (
        f"trusted/tmdb {bad_day} not published (the previous version stays readable): "
        "media_de_votos_0_to_10 (fail): 1 violation(s), not published; e.g. 42.0"
    )
    after = {day: read.current_keys(f"trusted/tmdb/dt={day}/") for day in days}
    assert after[bad_day] == before[bad_day]
    assert all(not set(after[day]) & set(before[day]) for day in days if day != bad_day)  # republished: new files
    assert {e.partition for e in result.get_asset_materialization_events() if e.asset_key == trusted.tmdb.key} == set(days) - {
        bad_day
    }
    checks = _contract(result)
    assert [day for day in days if checks[day].metadata["broken"].value] == [bad_day]
    assert checks[bad_day].metadata["broken"].value == ["media_de_votos_0_to_10"]
    # One commit of four days: the bad day still reads its previous rows.
    assert read.table(f"trusted/tmdb/dt={bad_day}/").num_rows == rows_before[bad_day]
    table = read.catalog().load_table("trusted.tmdb")
    assert table.current_snapshot().summary["lake.partitions"] == ",".join(d for d in days if d != bad_day)


def test_the_contracts_document_is_the_declarations():
    from pathlib import Path

    from lake_assets.cli.contracts import markdown
    from lake_assets.lib.contracts import FILMES, TMDB

    committed = (Path(__file__).resolve().parents[1] / "docs" / "contracts.md").read_text()
    assert committed == markdown([FILMES, TMDB]), "regenerate: python -m lake_assets.cli.contracts > docs/contracts.md"


def test_every_column_of_every_layout_is_described_once():
    from lake_assets.lib.contracts import FILMES, TMDB

    for contract in (FILMES, TMDB):
        declared = {column for layout in contract.layouts.values() for column in layout}
        assert set(contract.columns) == declared, contract.table
        assert all(text.endswith(".") and "\n" not in text for text in contract.columns.values())
    docs = TMDB.column_docs("tmdb_details")
    assert docs["tmdb_id"] == "TMDB's movie id. Rules: tmdb_id_present (drop), one_row_per_movie_per_day (drop)."
    assert docs["receita"] == "The revenue in US dollars (0 when unknown)."


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_a_quoted_csv_cut_at_record_boundaries_reads_back_exactly(tmp_path, spark, parts):
    """The cut points fall only between records, however the quoted line breaks and quotes fall."""
    from lake_assets.lib.csv_files import split_at_records
    from lake_assets.lib.transforms.columns import CORRUPT
    from lake_assets.lib.transforms.filmes import csv_options

    source = write_filmes_csv(tmp_path / "filmes.csv", 3000, seed=5, bad_rows=3)
    with source.open("a", encoding="utf-8") as out:
        out.write('Linha curta,"com ""aspas""\ne quebra"\n')
    (tmp_path / "parts").mkdir()
    cut = split_at_records(source, tmp_path / "parts", parts)
    assert len(cut) == parts
    assert b"".join(p.read_bytes()[len(HEADER_LINE) :] for p in cut) == source.read_bytes()[len(HEADER_LINE) :]
    schema = T.StructType([T.StructField(c, T.StringType()) for c in HEADER] + [T.StructField(CORRUPT, T.StringType())])
    options = csv_options(Dialect.SEED, "utf-8")

    def rows(paths):
        return sorted(tuple(r) for r in spark.read.options(**options).schema(schema).csv([str(p) for p in paths]).collect())

    whole, pieces = rows([source]), rows(cut)
    assert len(whole) == 3001 and pieces == whole


HEADER_LINE = (",".join(HEADER) + "\n").encode()


def test_trusted_filmes_reads_a_big_quoted_csv_in_parallel_parts_staged_beside_the_lake(
    tmp_path, spark, storage_backend, monkeypatch
):
    """The split is what the asset does with the path the raw IO manager hands it (a `file://` URI
    on a local lake, a downloaded copy from S3), and its parts live in the lake's `_staging/` only
    while the run reads them."""
    from lake_assets.lib.staging import SparkStage, spark_readable
    from lake_assets.lib.transforms.columns import CORRUPT
    from lake_assets.lib.transforms.filmes import csv_options

    monkeypatch.setattr(trusted, "SPLIT_ABOVE_BYTES", 0)
    monkeypatch.setattr(trusted, "PART_BYTES", 64 << 10)
    source = write_filmes_csv(tmp_path / "filmes.csv", 3000, seed=9, bad_rows=2)
    storage_backend.put_file(source, "raw/filmes/filmes.csv")
    (whole,) = spark_readable(storage_backend, ["raw/filmes/filmes.csv"], "raw-in")
    stage = SparkStage(storage_backend)
    parts = trusted._parallel_parts(whole, Dialect.SEED, stage)
    assert len(parts) == -(-source.stat().st_size // (64 << 10)) > 1
    if whole.startswith("file://"):
        assert all(p.startswith(f"{storage_backend.spark_path(stage.key)}/filmes-parts/") for p in parts)
    schema = T.StructType([T.StructField(c, T.StringType()) for c in HEADER] + [T.StructField(CORRUPT, T.StringType())])

    def rows(paths):
        return sorted(
            tuple(r) for r in spark.read.options(**csv_options(Dialect.SEED, "utf-8")).schema(schema).csv(paths).collect()
        )

    assert rows(parts) == rows([whole]) and len(rows(parts)) == 3000
    stage.close()
    assert list(storage_backend.list("_staging/")) == []
