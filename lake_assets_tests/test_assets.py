"""The four assets materialised with Dagster into a temporary lake, on the local disk and on S3,
then read back independently (pyarrow, DuckDB, listings) - never through Spark."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dagster import materialize

from lake_assets.defs import deadline
from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.automation import SETTINGS
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.lib.contracts import FILMES
from lake_assets_tests.readback import Lake, lake_resources
from lake_tools.sample_filmes import write_filmes_csv

PROGRAMME_ROWS = Path(__file__).resolve().parent / "data"  # real rows of the programme's movies.csv / series.csv


def _today() -> str:
    # Asked per test, not at import: a suite that runs across midnight UTC must not collect "today"
    # for a date that has become yesterday (the asset refuses past dates).
    return dt.datetime.now(dt.UTC).date().isoformat()


def _filmes(lake, spark_resource, source="", dialect="auto", raise_on_error=True):
    return materialize(
        [raw.filmes_csv, trusted.filmes],
        resources=lake_resources(lake, spark_resource),
        run_config={
            "ops": {
                "raw__filmes_csv": {"config": {"source_path": str(source)}},
                "trusted__filmes": {"config": {"dialect": dialect}},
            }
        },
        raise_on_error=raise_on_error,
    )


def _metadata(result, key):
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_filmes_sample_typed_with_rejections_counted(lake, spark_resource):
    result = _filmes(lake, spark_resource)
    assert result.success
    raw_meta, meta = _metadata(result, "raw/filmes_csv"), _metadata(result, "trusted/filmes")
    landed = lake.storage("raw").get_bytes("raw/filmes/filmes.csv")
    assert landed == raw.SAMPLE_FILMES.read_bytes()  # byte for byte
    assert raw_meta["dagster/row_count"] == 2000 and raw_meta["bytes"] == len(landed)

    read = Lake(lake)
    table = read.table("trusted/filmes/")
    assert table.num_rows == 1998 == meta["dagster/row_count"]
    assert read.table("trusted/filmes/", rejected=True).num_rows == 2 == meta["rejected_rows"]
    assert table.schema.field("data_de_lancamento").type == pa.date32()
    assert table.schema.field("votos").type == pa.int64()
    assert table.schema.field("media_de_votos").type == pa.float64()
    assert pa.types.is_list(table.schema.field("generos").type)
    assert "Data de lançamento" not in table.column_names
    overviews = table.column("visao_geral").to_pylist()
    assert any("\n" in o for o in overviews) and any('"nunca mais"' in o for o in overviews)
    assert table.column("data_de_lancamento").null_count == 21  # the sample's empty dates
    assert {c.name for c in meta["dagster/column_schema"].columns} == set(table.column_names)
    (contract,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "contract"]
    assert "2000 source records; 1998 published + 2 rejected" in contract.metadata["rules_table"].value
    assert contract.metadata["rules_broken"].value == 0 and contract.metadata["rejected_rows"].value == 2
    assert not contract.passed and contract.severity.value == "WARN"  # the 2 rejected rows, said on the check's face
    reasons = contract.metadata["rejected_by_reason"].value
    assert sum(reasons.values()) == 2 and contract.description.startswith("Published; 2 rows rejected: ")
    # One rule count: the check's description, its metadata and the materialisation agree.
    rules = 1 + len(FILMES.rules)
    assert contract.metadata["rules"].value == rules and meta["contract"].startswith(f"{rules} rules (")
    (spec,) = [spec for spec in trusted.filmes.check_specs if spec.name == "contract"]
    assert f" {rules} rules: schema_contract (fail), " in spec.description
    columns = {c.name: c.description for c in meta["dagster/column_schema"].columns}
    assert columns["media_de_votos"] == "Vote average, 0 to 10. Rules: media_de_votos_0_to_10 (drop)."


def test_rematerialising_replaces_exactly(lake, spark_resource):
    assert _filmes(lake, spark_resource).success
    read = Lake(lake)
    first = read.current_keys("trusted/filmes/")
    assert _filmes(lake, spark_resource).success
    second = read.current_keys("trusted/filmes/")
    assert first and second and not set(first) & set(second)  # the new snapshot names only new files
    assert len({k.rsplit("/", 1)[0] for k in second}) == 1  # one folder per write: Spark's catalog can name it
    assert set(first) <= set(read.keys("trusted/filmes/"))  # the earlier snapshot stays readable until retention
    assert read.table("trusted/filmes/").num_rows == 1998
    assert not list(lake.storage("trusted").list("_staging/"))  # Spark's scratch space is gone
    if not lake.root.startswith("s3"):
        assert not [p for p in Path(lake.root).rglob("*") if p.is_dir() and not any(p.iterdir())]  # no empty folders


@pytest.mark.parametrize("name, rows", [("movies_subset_1.csv", 50), ("movies_subset_2.csv", 50)])
def test_programme_movies_csv_dialect(lake, spark_resource, name, rows):
    result = _filmes(lake, spark_resource, PROGRAMME_ROWS / name)
    assert result.success
    assert _metadata(result, "trusted/filmes")["dialect"] == "pipe"
    table = Lake(lake).table("trusted/filmes/")
    assert table.num_rows == rows
    assert Lake(lake).table("trusted/filmes/", rejected=True).num_rows == 0
    types = {f.name: f.type for f in table.schema}
    assert types["ano_lancamento"] == pa.int32() and types["numero_votos"] == pa.int64()
    assert types["nota_media"] == pa.float64() and pa.types.is_list(types["genero"])
    rows_ = table.to_pylist()
    # \N became null, in text and numeric columns alike, and no CR survived the CRLF line ends
    assert all(r["personagem"] != "\\N" for r in rows_) and any(r["personagem"] is None for r in rows_)
    assert any(r["ano_falecimento"] is None for r in rows_)
    assert not any(isinstance(v, str) and "\r" in v for r in rows_ for v in r.values())
    assert all(t.startswith("tt") for r in rows_ for t in r["titulos_mais_conhecidos"])


def test_bad_csv_rows_are_counted_not_dropped(tmp_path, spark_resource):
    lake = LakeResource(root=str(tmp_path / "lake"))
    source = write_filmes_csv(tmp_path / "filmes.csv", 300, seed=3, bad_rows=5)
    with source.open("a", encoding="utf-8") as out:
        out.write("Linha curta,2020-01-01\n")  # 2 fields where the header has 9
    result = _filmes(lake, spark_resource, source)
    meta = _metadata(result, "trusted/filmes")
    assert meta["dagster/row_count"] == 295 and meta["rejected_rows"] == 6
    rejected = Lake(lake).table("trusted/filmes/", rejected=True).to_pylist()
    reasons = sorted(r["_reject_reason"] for r in rejected)
    assert reasons.count("unparseable value in: votos") == 5 and reasons[0].startswith("malformed row")


def _tmdb(lake, spark_resource, partition):
    return materialize(
        [raw.tmdb_json, trusted.tmdb],
        resources=lake_resources(lake, spark_resource),
        partition_key=partition,
    )


def test_tmdb_partition_from_offline_snapshot(lake, spark_resource):
    today = _today()
    result = _tmdb(lake, spark_resource, today)
    assert result.success
    raw_meta, meta = _metadata(result, "raw/tmdb_json"), _metadata(result, "trusted/tmdb")
    raw_keys = [k for k in Lake(lake).keys(f"raw/tmdb/dt={today}/") if k.endswith(".jsonl")]
    records = [json.loads(line) for k in raw_keys for line in lake.storage("raw").get_bytes(k).decode().splitlines()]
    assert len(records) == raw_meta["dagster/row_count"] > 100
    assert all(len(lake.storage("raw").get_bytes(k).decode().splitlines()) <= 100 for k in raw_keys)
    assert all({18, 10749} & {g["id"] for g in r["genres"]} for r in records)

    table = Lake(lake).table(f"trusted/tmdb/dt={today}/")
    ids = table.column("tmdb_id").to_pylist()
    assert len(ids) == len(set(ids)) == len({r["id"] for r in records}) == meta["dagster/row_count"]
    assert table.schema.field("tmdb_id").type == pa.int64()
    assert table.schema.field("data_de_lancamento").type == pa.date32()
    assert table.schema.field("produtoras").type == pa.list_(pa.string())
    assert "dt" not in table.column_names  # the partition is the folder
    assert "| produtora |" in meta["movies_by_company"] and "| idioma_original |" in meta["movies_by_language"]
    (contract,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "contract"]
    assert contract.passed and contract.partition == today and contract.metadata["rejected_by_reason"].value == {}
    assert f"| one_row_per_movie_per_day | drop | 0 | {len(ids)} |" in contract.metadata["rules_table"].value
    # Today's deadline is judged by the run that publishes it, from its first publish time.
    # (Before 09:00 UTC the run also restates yesterday's verdict, the day then due.)
    (on_deadline,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "published_by_deadline" and c.partition == today
    ]
    due = deadline.deadline_of(today, SETTINGS.freshness_deadline_cron)
    expected = "on time" if dt.datetime.now(dt.UTC) <= due else "late"
    assert on_deadline.partition == today and on_deadline.metadata["status"].value == expected
    assert on_deadline.passed == (expected == "on time")


def test_duckdb_reads_the_current_snapshot_and_a_glob_reads_every_version(tmp_path, spark_resource):
    today = _today()
    lake = LakeResource(root=str(tmp_path / "lake"))
    assert _tmdb(lake, spark_resource, today).success
    assert _tmdb(lake, spark_resource, today).success  # a second run replaces, never duplicates
    files = [str(tmp_path / "lake" / key) for key in Lake(lake).current_keys(f"trusted/tmdb/dt={today}/")]
    dts, rows, distinct = duckdb.sql(
        f"select list(distinct dt), count(*), count(distinct tmdb_id) from read_parquet({files}, hive_partitioning=false)"
    ).fetchall()[0]
    assert dts == [today] and rows == distinct > 100  # `dt` is in the files: Iceberg reads it there
    # A folder glob sees each version until retention expires it: why every reader plans its files.
    root = tmp_path / "lake" / "trusted" / "tmdb"
    (globbed,) = duckdb.sql(f"select count(*) from read_parquet('{root}/*/*/*.parquet')").fetchall()[0]
    assert globbed == 2 * rows


def test_past_partition_is_refused_without_override(tmp_path, spark_resource):
    lake = LakeResource(root=str(tmp_path / "lake"))
    result = materialize(
        [raw.tmdb_json], resources=lake_resources(lake, spark_resource), partition_key="2024-01-01", raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "TMDB serves only today's data" in failure.event_specific_data.error.message
    assert "make seed-history" in failure.event_specific_data.error.message
    assert not list(lake.storage("raw").list("raw/tmdb/"))


def test_a_launch_over_past_raw_days_registers_the_landed_ones_and_fails_only_the_others(tmp_path):
    """What the UI's Materialize does over past days of raw/tmdb_json: the landed days stay materialised
    (each with its own row count), nothing is collected or rewritten, and only a day with no files fails."""
    from dagster import DagsterInstance

    from lake_assets.defs.io_managers.raw import RawZoneIOManager
    from lake_assets.defs.resources.tmdb import TMDBResource
    from lake_tools.seed_history import seed, snapshot_records

    lake = LakeResource(root=str(tmp_path / "lake"))
    landed = seed(lake, dt.date(2024, 4, 1), 2, snapshot_records())
    before = {key: Lake(lake).bytes_of(f"raw/tmdb/dt={key}/") for key in landed}
    resources = {"lake": lake, "tmdb": TMDBResource(), "raw_io_manager": RawZoneIOManager(lake=lake)}
    tags = {"dagster/asset_partition_range_start": "2024-04-01", "dagster/asset_partition_range_end": "2024-04-03"}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([raw.tmdb_json], resources=resources, tags=tags, instance=instance, raise_on_error=False)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.event_specific_data.error.message
        assert "1 day(s) without raw files (2024-04-03)" in message and "2 landed day(s) of this run were registered" in message
        events = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
        assert set(events) == set(landed)
        for key, count in landed.items():
            lines = [
                line
                for k in Lake(lake).keys(f"raw/tmdb/dt={key}/")
                if k.endswith(".jsonl")
                for line in lake.storage("raw").get_bytes(k).decode().splitlines()
                if line.strip()
            ]
            assert events[key]["dagster/row_count"].value == len(lines) == count
        status = instance.get_status_by_partition(
            raw.tmdb_json.key, ["2024-04-01", "2024-04-02", "2024-04-03"], raw.tmdb_json.partitions_def
        )
        assert {k: v.value for k, v in status.items()} == {
            "2024-04-01": "MATERIALIZED",
            "2024-04-02": "MATERIALIZED",
            "2024-04-03": "FAILED",
        }
    assert {key: Lake(lake).bytes_of(f"raw/tmdb/dt={key}/") for key in landed} == before  # nothing rewritten
    assert not list(lake.storage("raw").list("raw/tmdb/dt=2024-04-03/"))


def test_failed_publish_leaves_previous_version_readable(tmp_path, spark_resource, monkeypatch):
    from pyiceberg.catalog.sql import SqlCatalog

    lake = LakeResource(root=str(tmp_path / "lake"))
    assert _filmes(lake, spark_resource).success
    read = Lake(lake)
    before = read.current_keys("trusted/filmes/")

    def fail_at_commit(self, *args, **kwargs):
        raise OSError("disk full (injected)")  # the catalog commit is the one point of publication

    monkeypatch.setattr(SqlCatalog, "commit_table", fail_at_commit)
    smaller = write_filmes_csv(tmp_path / "v2.csv", 300, seed=5)
    result = _filmes(lake, spark_resource, smaller, raise_on_error=False)
    assert not result.success
    monkeypatch.undo()

    assert read.current_keys("trusted/filmes/") == before  # the catalog still names version 1
    assert read.table("trusted/filmes/").num_rows == 1998
    assert _filmes(lake, spark_resource, smaller).success
    assert read.table("trusted/filmes/").num_rows == 300


def test_a_file_landed_beside_collected_ones_is_read(tmp_path, spark_resource):
    today = _today()
    lake = LakeResource(root=str(tmp_path / "lake"))
    assert _tmdb(lake, spark_resource, today).success
    raw_storage = lake.storage("raw")
    (first,) = [k for k in Lake(lake).keys(f"raw/tmdb/dt={today}/") if k.endswith(".jsonl")][:1]
    movie = json.loads(raw_storage.get_bytes(first).decode().splitlines()[0])
    movie.update(id=999999001, title="Chegou depois")
    raw_storage.put_bytes((json.dumps(movie) + "\n").encode(), f"raw/tmdb/dt={today}/landed-by-hand.jsonl")
    before = Lake(lake).table(f"trusted/tmdb/dt={today}/").num_rows
    assert materialize(
        [raw.tmdb_json, trusted.tmdb],
        selection=[trusted.tmdb.key],
        resources=lake_resources(lake, spark_resource),
        partition_key=today,
    ).success
    table = Lake(lake).table(f"trusted/tmdb/dt={today}/")
    assert table.num_rows == before + 1 and 999999001 in table.column("tmdb_id").to_pylist()
