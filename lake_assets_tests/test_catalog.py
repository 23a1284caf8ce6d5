"""The trusted tables by name: AWS Glue as their Iceberg catalog (a real moto server), DuckDB views of
one snapshot, and the Spark catalog of a Spark Connect server with Hive support.

Assets are materialised with Dagster into a SeaweedFS or local lake; what the catalogs say is checked
against the lake read back independently: boto3 for Glue and S3, plain pyiceberg to plan a snapshot's
files, pyarrow to read them."""

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pyiceberg.catalog
import pytest
from dagster import AssetKey, MaterializeResult, ResourceParam, materialize
from dagster import asset as dagster_asset
from pyiceberg.catalog import load_catalog
from pyiceberg.utils.config import Config
from pyspark.sql import functions as F

from lake_assets.cli import catalog
from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.io_managers.paths import LAKE_PATH
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.io_managers.trusted import TrustedParquetIOManager
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources import CatalogResource, LakeResource, catalog_resource_from_env
from lake_assets.defs.resources.tmdb import TMDBResource
from lake_assets.lib.contracts.rules import Contract
from lake_assets.lib.partitions import dt_path
from lake_assets.lib.raw_zone import land_json_lines
from lake_assets.lib.tables import iceberg
from lake_assets.lib.tables.iceberg import DataFile
from lake_assets.lib.tables.spark_catalog import (
    CatalogError,
    SparkTable,
    TableSpec,
    columns_of,
    hive_type,
    register_in_spark,
    spark_partition_statements,
    spark_table_statements,
    version_folders,
)
from lake_assets.lib.transforms.columns import RAW, REJECT_REASON
from lake_assets_tests.conftest import _FOREIGN_AWS_VARS
from lake_assets_tests.readback import Lake
from lake_tools import devserver
from lake_tools.devserver import SparkConnectServer
from lake_tools.duckdb_lake import open_lake
from lake_tools.moto_glue import DEV_CREDENTIALS
from lake_tools.processes import free_port, reap, start_watchdog
from lake_tools.seed_history import RAW_TMDB_PATH, records_for_day, seed, snapshot_records

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ["2024-01-01", "2024-01-02", "2024-01-03"]
RANGE_TAGS = {"dagster/asset_partition_range_start": HISTORY[0], "dagster/asset_partition_range_end": HISTORY[-1]}
GLUE_DATABASE = "trusted"  # the Iceberg namespace, which Glue holds as a database


def _resources(lake, spark_resource):
    return {
        "lake": lake,
        "spark": spark_resource,
        "tmdb": TMDBResource(),  # the bundled offline snapshot
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark_resource, catalog=CatalogResource()),
    }


def _metadata(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: getattr(v, "value", v) for k, v in events[-1].materialization.metadata.items()}


def _rows(table: pa.Table) -> list[str]:
    """A table's rows, comparable whatever the order of rows and the Arrow widths of types."""
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


# --- pure helpers ----------------------------------------------------------------------------------


def test_hive_types_of_what_spark_writes():
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("ano", pa.int32()),
            ("nota", pa.float64()),
            ("lancamento", pa.date32()),
            ("titulo", pa.string()),
            ("generos", pa.list_(pa.string())),
            ("visto_em", pa.timestamp("us", tz="UTC")),
            ("preco", pa.decimal128(10, 2)),
            ("ativo", pa.bool_()),
            ("pessoa", pa.struct([("nome", pa.string()), ("idade", pa.int16())])),
            ("notas", pa.map_(pa.string(), pa.float32())),
        ]
    )
    assert columns_of(schema) == (
        ("id", "bigint"),
        ("ano", "int"),
        ("nota", "double"),
        ("lancamento", "date"),
        ("titulo", "string"),
        ("generos", "array<string>"),
        ("visto_em", "timestamp"),
        ("preco", "decimal(10,2)"),
        ("ativo", "boolean"),
        ("pessoa", "struct<nome:string,idade:smallint>"),
        ("notas", "map<string,float>"),
    )
    with pytest.raises(ValueError, match="column 'hora': no Glue/Hive type for Arrow type time64"):
        columns_of(pa.schema([("hora", pa.time64("us"))]))
    # What pyiceberg's `as_arrow()` gives for Iceberg strings and lists.
    assert hive_type(pa.list_(pa.struct([("a", pa.large_string())]))) == "array<struct<a:string>>"
    assert hive_type(pa.large_list(pa.large_string())) == "array<string>"


SPEC = TableSpec("trusted", "tmdb", "/lake/trusted/tmdb", (("tmdb_id", "bigint"), ("nova", "string")), True)


def test_spark_table_statements_create_add_columns_or_recreate():
    statements, created = spark_table_statements(SPEC, None)
    assert created and statements == [
        "CREATE TABLE IF NOT EXISTS `trusted`.`tmdb` (`tmdb_id` bigint, `nova` string, `dt` string) USING parquet "
        "PARTITIONED BY (`dt`) LOCATION '/lake/trusted/tmdb'"
    ]
    older = SparkTable((("tmdb_id", "bigint"),), "file:/lake/trusted/tmdb", ("2024-01-01",))
    assert spark_table_statements(SPEC, older) == (["ALTER TABLE `trusted`.`tmdb` ADD COLUMNS (`nova` string)"], False)
    same = SparkTable(SPEC.columns, "file:/lake/trusted/tmdb/", ())
    assert spark_table_statements(SPEC, same) == ([], False)
    retyped = SparkTable((("tmdb_id", "int"), ("nova", "string")), "file:/lake/trusted/tmdb", ())
    moved = SparkTable(SPEC.columns, "file:/elsewhere/trusted/tmdb", ())
    for current in (retyped, moved):
        statements, created = spark_table_statements(SPEC, current)
        assert created and statements[0] == "DROP TABLE IF EXISTS `trusted`.`tmdb`" and statements[1].startswith("CREATE TABLE")
    filmes = TableSpec("trusted", "filmes", "/lake/trusted/filmes/w1", (("id", "bigint"),), False)
    assert spark_table_statements(filmes, None)[0] == [
        "CREATE TABLE IF NOT EXISTS `trusted`.`filmes` (`id` bigint) USING parquet LOCATION '/lake/trusted/filmes/w1'"
    ]


def test_spark_partition_statements_add_new_keys_in_batches_and_move_existing_ones():
    many = [(f"k{i:03d}", f"/lake/trusted/tmdb/dt=k{i:03d}/w1") for i in range(250)]
    batches = spark_partition_statements(SPEC, many)
    assert len(batches) == 3 and sum(b.count(" PARTITION (") for b in batches) == 250
    assert batches[0].startswith(
        "ALTER TABLE `trusted`.`tmdb` ADD IF NOT EXISTS PARTITION (`dt`='k000') LOCATION '/lake/trusted/tmdb/dt=k000/w1' "
        "PARTITION (`dt`='k001')"
    )
    # A day the table has moves to its new write folder; a new day is added.
    statements = spark_partition_statements(
        SPEC, [("2024-01-01", "/lake/trusted/tmdb/dt=2024-01-01/w2"), ("2024-01-04", "/l/it's")], existing=["2024-01-01"]
    )
    assert statements == [
        "ALTER TABLE `trusted`.`tmdb` PARTITION (`dt`='2024-01-01') SET LOCATION '/lake/trusted/tmdb/dt=2024-01-01/w2'",
        "ALTER TABLE `trusted`.`tmdb` ADD IF NOT EXISTS PARTITION (`dt`='2024-01-04') LOCATION '/l/it\\'s'",
    ]
    assert spark_partition_statements(SPEC, []) == []


def _file(key: str, partition: str | None) -> DataFile:
    return DataFile(key, size=100, rows=10, partition=partition)


def test_version_folders_name_one_write_folder_per_partition():
    files = {
        "2024-01-01": [_file(f"trusted/tmdb/dt=2024-01-01/w1/part-{i}.parquet", "2024-01-01") for i in range(3)],
        "2024-01-02": [_file("trusted/tmdb/dt=2024-01-02/w2/part-0.parquet", "2024-01-02")],
    }
    assert version_folders(None, files) == {
        "2024-01-01": "trusted/tmdb/dt=2024-01-01/w1",
        "2024-01-02": "trusted/tmdb/dt=2024-01-02/w2",
    }
    assert version_folders(None, {None: [_file("trusted/filmes/w3/part-0.parquet", None)]}) == {None: "trusted/filmes/w3"}
    assert version_folders(None, {}) == {}

    # Another tool's commit spread a day over two folders: no single location names it.
    files["2024-01-02"].append(_file("trusted/tmdb/dt=2024-01-02/w9/part-0.parquet", "2024-01-02"))
    with pytest.raises(CatalogError) as raised:
        version_folders(None, files)
    assert raised.value.description == (
        "Spark catalog: 2024-01-02's current files lie in 2 folders; a plain Parquet table names one location per partition"
    )
    with pytest.raises(CatalogError, match="^Spark catalog: the table's current files lie in 2 folders;"):
        version_folders(None, {None: [_file("trusted/filmes/a/p.parquet", None), _file("trusted/filmes/b/p.parquet", None)]})


class _FakeSpark:
    """Just enough of a SparkSession for `register_in_spark`: records the SQL it is given."""

    def __init__(self, table: SparkTable | None = None, fail: str | None = None):
        self.statements: list[str] = []
        self.fail = fail
        columns = [SimpleNamespace(name=n, dataType=t, isPartition=False) for n, t in (table.columns if table else ())]
        self.catalog = SimpleNamespace(tableExists=lambda name: table is not None, listColumns=lambda name: columns)
        self.table = table

    def sql(self, statement: str):
        self.statements.append(statement)
        if self.fail and statement.startswith(self.fail):
            raise RuntimeError("[LOCATION_ALREADY_EXISTS] refused (injected)\n\tat org.apache.spark.sql.Foo(Foo.scala:1)")
        rows: list = []
        if statement.startswith("DESCRIBE TABLE EXTENDED"):
            rows = [{"col_name": "Location", "data_type": self.table.location}]
        elif statement.startswith("SHOW PARTITIONS"):
            rows = [(f"dt={key}",) for key in self.table.partitions]
        return SimpleNamespace(collect=lambda: rows)


def test_register_in_spark_adds_every_partition_to_a_new_table_and_moves_existing_ones():
    everything = [("2024-01-01", "/lake/trusted/tmdb/dt=2024-01-01/w1"), ("2024-01-02", "/lake/trusted/tmdb/dt=2024-01-02/w2")]
    fresh = _FakeSpark()
    done = register_in_spark(fresh, SPEC, everything[1:], lambda: everything)
    assert done == "trusted.tmdb created, 2 partition(s) registered"
    assert fresh.statements[0] == "CREATE DATABASE IF NOT EXISTS `trusted`"
    assert fresh.statements[1].startswith("CREATE TABLE IF NOT EXISTS `trusted`.`tmdb`")
    assert fresh.statements[2] == (
        "ALTER TABLE `trusted`.`tmdb` ADD IF NOT EXISTS PARTITION (`dt`='2024-01-01') LOCATION '/lake/trusted/tmdb/dt=2024-01-01/w1' "
        "PARTITION (`dt`='2024-01-02') LOCATION '/lake/trusted/tmdb/dt=2024-01-02/w2'"
    )

    # The table exists: only the committed partitions are pointed at their new folders.
    known = _FakeSpark(SparkTable(SPEC.columns, "file:/lake/trusted/tmdb", ("2024-01-01", "2024-01-02")))
    moved = [("2024-01-02", "/lake/trusted/tmdb/dt=2024-01-02/w3")]
    assert register_in_spark(known, SPEC, moved, lambda: pytest.fail("a known table is not listed again")) == (
        "trusted.tmdb unchanged, 1 partition(s) registered"
    )
    assert known.statements[-1] == (
        "ALTER TABLE `trusted`.`tmdb` PARTITION (`dt`='2024-01-02') SET LOCATION '/lake/trusted/tmdb/dt=2024-01-02/w3'"
    )

    failing = _FakeSpark(SparkTable(SPEC.columns, "file:/lake/trusted/tmdb", ("2024-01-02",)), fail="ALTER TABLE")
    with pytest.raises(CatalogError) as raised:
        register_in_spark(failing, SPEC, moved, lambda: everything)
    assert raised.value.description == (
        "Spark catalog: `ALTER TABLE `trusted`.`tmdb` PARTITION (`dt`='2024-01-02') SET LOCATION '/lake/trusted/tmdb/dt=2024-01-02/w3'` "
        "failed: [LOCATION_ALREADY_EXISTS] refused (injected)"
    )


def test_database_names_are_checked_when_the_resource_is_built():
    with pytest.raises(ValueError, match="1-255 lower-case letters, digits or _, not 'Trusted-Zone'"):
        CatalogResource(spark_database="Trusted-Zone")
    assert CatalogResource(spark_database=None).spark_database is None
    assert CatalogResource().spark_database == "trusted"


def test_the_retired_glue_database_variable_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAKE_GLUE_DATABASE", "trusted")
    with pytest.raises(ValueError) as raised:
        catalog_resource_from_env()
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and message.startswith("LAKE_GLUE_DATABASE='trusted': retired")
    assert "PYICEBERG_CATALOG__LAKE__TYPE=glue" in message

    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.delenv("LAKE_TRUSTED_ROOT", raising=False)
    assert catalog.main(["sync"]) == 1
    assert capsys.readouterr().err.strip() == f"lake_assets.cli.catalog: {message}"


def test_the_dev_server_calls_sync_with_arguments_it_accepts(tmp_path, monkeypatch, capsys):
    """`make dev` registers what `make run` published by running `python -m lake_assets.cli.catalog …`."""
    called = []

    def run(args, **kwargs):
        called.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(devserver.subprocess, "run", run)
    assert devserver.register_lake("sc://127.0.0.1:1") == []
    (args,) = called
    assert args[:3] == [sys.executable, "-m", "lake_assets.cli.catalog"]
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    for name in ("LAKE_TRUSTED_ROOT", "LAKE_GLUE_DATABASE", "SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    assert catalog.main(args[3:]) == 0  # no SPARK_REMOTE here: nothing to register, but the arguments parse
    assert "no SPARK_REMOTE" in capsys.readouterr().err


# --- AWS Glue as the Iceberg catalog, on an S3 lake -------------------------------------------------


def _glue_catalog_variables(moto_glue) -> dict[str, str]:
    """pyiceberg's configuration of catalog `lake` as a Glue catalog on the moto server. Glue gets
    credentials of its own (moto takes any); the lake's S3 keeps the AWS_* ones of the S3 server."""
    return {
        "PYICEBERG_CATALOG__LAKE__TYPE": "glue",
        "PYICEBERG_CATALOG__LAKE__GLUE__ENDPOINT": moto_glue.endpoint_url,
        "PYICEBERG_CATALOG__LAKE__GLUE__REGION": "us-east-1",
        "PYICEBERG_CATALOG__LAKE__GLUE__ACCESS_KEY_ID": DEV_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "PYICEBERG_CATALOG__LAKE__GLUE__SECRET_ACCESS_KEY": DEV_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@dataclass
class GlueLake:
    lake: LakeResource
    bucket: str
    env: dict[str, str]  # the runs' environment: the S3 server's AWS_* variables and the Glue catalog's
    results: dict
    s3: object  # a boto3 S3 client on the test server
    glue: object  # a boto3 Glue client on moto

    def apply(self, patch: pytest.MonkeyPatch) -> None:
        """This lake's environment, for a test (plain `load_catalog("lake")` and `open_lake` read it)."""
        for name in (*_FOREIGN_AWS_VARS, "AWS_ENDPOINT_URL_GLUE"):
            patch.delenv(name, raising=False)
        for name, value in self.env.items():
            patch.setenv(name, value)
        # pyiceberg reads PYICEBERG_* once, when `pyiceberg.catalog` is imported: read them again.
        patch.setattr(pyiceberg.catalog, "_ENV_CONFIG", Config())

    def iceberg_table(self, name: str):
        """trusted.<name> through plain pyiceberg: catalog `lake` as the environment configures it,
        with the S3 server's endpoint for the files (pyiceberg's own property names)."""
        files = {"s3.endpoint": self.env["AWS_ENDPOINT_URL"], "s3.region": "us-east-1"}
        files |= {"s3.access-key-id": self.env["AWS_ACCESS_KEY_ID"], "s3.secret-access-key": self.env["AWS_SECRET_ACCESS_KEY"]}
        return load_catalog("lake", **files).load_table(f"{GLUE_DATABASE}.{name}")

    def glue_table(self, name: str) -> dict:
        return self.glue.get_table(DatabaseName=GLUE_DATABASE, Name=name)["Table"]

    def exists(self, uri: str) -> bool:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert bucket == self.bucket
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except self.s3.exceptions.ClientError:
            return False

    def read_files(self, table, snapshot_id: int | None = None) -> pa.Table:
        """The rows of the files a snapshot names (planned by pyiceberg), each read by pyarrow."""
        tables = []
        for task in table.scan(snapshot_id=snapshot_id).plan_files():
            bucket, key = task.file.file_path.removeprefix("s3://").split("/", 1)
            tables.append(pq.read_table(io.BytesIO(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
        return pa.concat_tables(tables, promote_options="default")


def _drop_trusted_tables(glue_client) -> None:
    """moto's catalog lives as long as the session: start and end this module without our tables."""
    try:
        names = [t["Name"] for t in glue_client.get_tables(DatabaseName=GLUE_DATABASE)["TableList"]]
    except glue_client.exceptions.EntityNotFoundException:
        return
    for name in names:
        glue_client.delete_table(DatabaseName=GLUE_DATABASE, Name=name)


@pytest.fixture(scope="module")
def glue_lake(s3_server, moto_glue, spark_resource):
    """`trusted/filmes` and a 3-day backfill of `trusted/tmdb` materialised with Dagster into a
    SeaweedFS lake, their Iceberg catalog being Glue on moto (pyiceberg's PYICEBERG_CATALOG__LAKE__*)."""
    bucket = f"lake-glue-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    _drop_trusted_tables(moto_glue.client())
    env = {**s3_server.env(), "LAKE_S3_PATH_STYLE": "1", **_glue_catalog_variables(moto_glue)}
    lake = LakeResource(
        root=f"s3://{bucket}/lake", endpoint_url=s3_server.endpoint_url, region_name="us-east-1", s3_path_style=True
    )
    published = GlueLake(lake, bucket, env, {}, s3_server.boto3_client(), moto_glue.client())
    try:
        with pytest.MonkeyPatch.context() as patch:
            published.apply(patch)
            resources = _resources(lake, spark_resource)
            published.results["filmes"] = materialize([raw.filmes_csv, trusted.filmes], resources=resources)
            seed(lake, dt.date.fromisoformat(HISTORY[0]), len(HISTORY), snapshot_records())
            published.results["backfill"] = materialize(
                [raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, tags=RANGE_TAGS
            )
        assert all(result.success for result in published.results.values())
        yield published
    finally:
        _drop_trusted_tables(moto_glue.client())
        s3_server.delete_bucket(bucket)


@pytest.fixture
def glue_env(glue_lake, monkeypatch) -> GlueLake:
    """The Glue lake, with its environment set for this test."""
    glue_lake.apply(monkeypatch)
    return glue_lake


@dataclass
class Rematerialised:
    day: str
    before: dict  # the Glue table of tmdb before, and after
    after: dict
    earlier_snapshot: int  # tmdb's current snapshot before
    as_of_between: dt.datetime  # a time after that snapshot and before the next
    result: object


@pytest.fixture(scope="module")
def rematerialised(glue_lake, spark_resource) -> Rematerialised:
    """HISTORY[1] landed again with fewer movies and materialised again: a new version of one day."""
    day = HISTORY[1]
    with pytest.MonkeyPatch.context() as patch:
        glue_lake.apply(patch)
        before = glue_lake.glue_table("tmdb")
        earlier = glue_lake.iceberg_table("tmdb").current_snapshot()
        fewer = records_for_day(snapshot_records(), day)[:60]
        land_json_lines(glue_lake.lake.storage("raw"), f"{RAW_TMDB_PATH}/{dt_path(day, glue_lake.lake.dt_layout)}", fewer)
        result = materialize(
            [raw.tmdb_json, trusted.tmdb],
            selection=[trusted.tmdb.key],
            resources=_resources(glue_lake.lake, spark_resource),
            partition_key=day,
        )
        assert result.success
        after = glue_lake.glue_table("tmdb")
        table = glue_lake.iceberg_table("tmdb")
    later = min(s.timestamp_ms for s in table.snapshots() if s.timestamp_ms > earlier.timestamp_ms)
    between = dt.datetime.fromtimestamp((earlier.timestamp_ms + later) / 2000, dt.UTC)
    return Rematerialised(day, before, after, earlier.snapshot_id, between, result)


def test_glue_holds_both_tables_as_iceberg_tables_whose_metadata_is_in_the_bucket(glue_env):
    lake = glue_env
    assert {t["Name"] for t in lake.glue.get_tables(DatabaseName=GLUE_DATABASE)["TableList"]} == {"filmes", "tmdb"}
    for name in ("filmes", "tmdb"):
        table = lake.glue_table(name)
        parameters = table["Parameters"]
        assert parameters["table_type"] == "ICEBERG"
        location = parameters["metadata_location"]
        assert location.startswith(f"s3://{lake.bucket}/lake/trusted/{name}/metadata/") and location.endswith(".metadata.json")
        assert lake.exists(location)
        assert table["StorageDescriptor"]["Location"] == f"s3://{lake.bucket}/lake/trusted/{name}"
    backfill = _metadata(lake.results["backfill"], "trusted/tmdb")
    assert backfill["catalog"] == "lake (glue)" and backfill["dagster/table_name"] == "trusted.tmdb"
    assert "catalog/spark" not in backfill  # a classic session's catalog is in memory: nothing registered


def test_plain_pyiceberg_reads_what_the_snapshots_files_hold(glue_env):
    for name, rows in (("filmes", 1998), ("tmdb", None)):
        table = glue_env.iceberg_table(name)
        read = table.scan().to_arrow()
        files = glue_env.read_files(table)
        assert read.num_rows == files.num_rows and (rows is None or rows == files.num_rows)
        assert _rows(read) == _rows(files)
    tmdb = glue_env.iceberg_table("tmdb").scan().to_arrow()
    assert sorted(set(tmdb.column("dt").to_pylist())) == HISTORY


def test_rematerialising_a_day_makes_new_metadata_and_keeps_the_previous(glue_env, rematerialised):
    # moto does not check Glue's VersionId (its update_table ignores it), so two writers racing on one
    # table cannot be shown here: the optimistic commit is proven on the SQL catalogs elsewhere
    # (test_iceberg_commits.py).
    before, after = rematerialised.before["Parameters"], rematerialised.after["Parameters"]
    assert after["table_type"] == "ICEBERG"
    assert after["metadata_location"] != before["metadata_location"]
    assert after["previous_metadata_location"] == before["metadata_location"]
    assert glue_env.exists(after["metadata_location"]) and glue_env.exists(before["metadata_location"])

    table = glue_env.iceberg_table("tmdb")
    assert table.metadata_location == after["metadata_location"]
    files = glue_env.read_files(table)
    by_day = Counter(files.column("dt").to_pylist())
    assert sorted(by_day) == HISTORY and 0 < by_day[rematerialised.day] <= 60  # one version of the day: the new one
    earlier = glue_env.read_files(table, rematerialised.earlier_snapshot)
    assert Counter(earlier.column("dt").to_pylist())[rematerialised.day] > 60
    assert _rows(table.scan().to_arrow()) == _rows(files)


# --- DuckDB views of one snapshot ------------------------------------------------------------------


def test_duckdb_views_answer_the_seeds_two_summaries_on_s3(glue_env):
    day = HISTORY[0]
    duck = open_lake(glue_env.lake)
    by_company = duck.sql(
        f"""select produtora, count(*) as filmes, list(titulo order by titulo) as titulos
            from (select unnest(produtoras) as produtora, titulo from tmdb where dt = '{day}')
            group by produtora order by filmes desc, produtora"""
    ).fetchall()
    by_language = duck.sql(
        f"select idioma_original, count(*) as filmes from tmdb where dt = '{day}' group by 1 order by 2 desc, 1"
    ).fetchall()

    files = glue_env.read_files(glue_env.iceberg_table("tmdb"))
    rows = [r for r in files.to_pylist() if r["dt"] == day]
    companies = Counter(c for r in rows for c in r["produtoras"])
    assert {name: count for name, count, _ in by_company} == companies and len(companies) > 20
    assert by_company[0][1] == max(companies.values())
    titles = {name: sorted(r["titulo"] for r in rows if name in r["produtoras"]) for name in companies}
    assert all(list(found) == titles[name] for name, _, found in by_company)
    assert dict(by_language) == Counter(r["idioma_original"] for r in rows)
    assert dict(duck.sql("select dt, count(*) from tmdb group by dt").fetchall()) == Counter(files.column("dt").to_pylist())
    assert duck.sql("select count(*) from filmes").fetchall() == [(1998,)]


def test_duckdb_travels_to_an_earlier_snapshot_by_id_or_time(glue_env, rematerialised):
    table = glue_env.iceberg_table("tmdb")
    earlier = _rows(glue_env.read_files(table, rematerialised.earlier_snapshot))
    now = _rows(glue_env.read_files(table))
    assert earlier != now

    for travelled in (
        open_lake(glue_env.lake, snapshot_id=rematerialised.earlier_snapshot),
        open_lake(glue_env.lake, as_of=rematerialised.as_of_between),
    ):
        assert _rows(travelled.sql("select * from tmdb").to_arrow_table()) == earlier
        assert travelled.sql("select count(*) from filmes").fetchall() == [(1998,)]
    assert _rows(open_lake(glue_env.lake).sql("select * from tmdb").to_arrow_table()) == now

    with pytest.raises(ValueError, match="no trusted table has snapshot 12345"):
        open_lake(glue_env.lake, snapshot_id=12345)
    with pytest.raises(ValueError, match="no trusted table had a snapshot at 2000-01-01T00:00:00"):
        open_lake(glue_env.lake, as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


# --- schema changes on a local lake (the default SQLite catalog) -------------------------------------


def _publish_day(lake, spark_resource, day: str, rows: list[tuple], schema: str):
    """Publish one day of a tmdb-like table through the trusted IO manager, under a contract whose
    only promise is `schema`: a contract that adds a column."""
    columns = dict(column.strip().split(" ", 1) for column in schema.split(","))
    contract = Contract(table="trusted/tmdb", layouts={"test": columns}, rules=[], partition_column="dt")

    @dagster_asset(key=AssetKey(["trusted", "tmdb"]), partitions_def=daily_partitions, metadata={LAKE_PATH: "trusted/tmdb"})
    def tmdb_like(context, parquet_io_manager: ResourceParam[TrustedParquetIOManager]):
        df = spark_resource.spark_session.createDataFrame(rows, schema).withColumn("dt", F.lit(context.partition_key))
        df = df.withColumn(RAW, F.struct(*[F.col(c).cast("string") for c in columns]))
        flagged = contract.apply(df.withColumn(REJECT_REASON, F.lit(None).cast("string")), "test")
        (outcome,) = parquet_io_manager.publish(context, flagged, contract, "test").outcomes
        return MaterializeResult(metadata=outcome.metadata())

    io_manager = TrustedParquetIOManager(lake=lake, spark=spark_resource, catalog=CatalogResource())
    assert materialize([tmdb_like], resources={"parquet_io_manager": io_manager}, partition_key=day).success


def test_a_schema_change_adds_columns_and_duckdb_reads_older_days_with_nulls(tmp_path, spark_resource):
    lake = LakeResource(root=str(tmp_path / "lake"))
    _publish_day(lake, spark_resource, HISTORY[0], [(1, "Central do Brasil")], "tmdb_id bigint, titulo string")
    # TMDB adds a field.
    _publish_day(lake, spark_resource, HISTORY[1], [(2, "Cidade de Deus", 1.5)], "tmdb_id bigint, titulo string, nota double")
    # A day without `titulo`: the table keeps it, older days still hold it.
    _publish_day(lake, spark_resource, HISTORY[2], [(3, 2.5)], "tmdb_id bigint, nota double")
    table = Lake(lake).catalog().load_table("trusted.tmdb")
    assert sorted(table.schema().column_names) == ["dt", "nota", "titulo", "tmdb_id"]
    assert (tmp_path / "lake/_catalog/lake.db").is_file()  # in the trusted root: the lake and its catalog move together

    rows = open_lake(lake).sql("select dt, tmdb_id, titulo, nota from tmdb order by dt").fetchall()
    assert rows == [
        (HISTORY[0], 1, "Central do Brasil", None),
        (HISTORY[1], 2, "Cidade de Deus", 1.5),
        (HISTORY[2], 3, None, 2.5),
    ]


# --- end to end: Spark SQL through a Connect server ---------------------------------------------------


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server as `make dev` starts it (Hive catalog, Derby metastore in its home)."""
    server = SparkConnectServer(tmp_path_factory.mktemp("connect") / "spark", port=free_port())
    server.start()
    watcher = start_watchdog(pids=[server.pid()])
    try:
        server.warm_up()
        yield server
    finally:
        server.stop()
        reap(watcher)


def _cli_env(lake_root: Path, remote: str) -> dict[str, str]:
    """This environment without the lake, AWS, Dagster and Iceberg settings of the developer's shell."""
    prefixes = ("LAKE_", "AWS_", "DAGSTER_", "SPARK_CONNECT", "PYICEBERG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | {"LAKE_ROOT": str(lake_root), "SPARK_REMOTE": remote}


def _cli_materialize(lake_root: Path, remote: str, home: Path, *arguments: str) -> None:
    """`dagster asset materialize` as the README's command-line backfill runs it, on the Connect server."""
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "lake_assets.defs.definitions", *arguments],
        cwd=ROOT,
        env=_cli_env(lake_root, remote) | {"DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _rows_by_day(lake_root: Path) -> dict[str, int]:
    """pyarrow's row count of each day's files in the current snapshot (planned by plain pyiceberg)."""
    read = Lake(LakeResource(root=str(lake_root)))
    return {
        day: sum(pq.read_metadata(lake_root / key).num_rows for key in read.current_keys(f"trusted/tmdb/dt={day}/"))
        for day in HISTORY
    }


def _partition_location(spark, day: str) -> str:
    rows = spark.sql(f"describe table extended trusted.tmdb partition (dt = '{day}')").collect()
    return next(r.data_type for r in rows if r.col_name == "Location")


@pytest.fixture(scope="module")
def connect_lake(connect_server, tmp_path_factory):
    """filmes and a 3-day backfill materialised by the CLI on the Connect server, into a local lake."""
    base = tmp_path_factory.mktemp("connect-lake")
    lake_root = base / "lake"
    seed(LakeResource(root=str(lake_root)), dt.date.fromisoformat(HISTORY[0]), len(HISTORY), snapshot_records())
    _cli_materialize(lake_root, connect_server.remote, base / "home", "--select", "raw/filmes_csv,trusted/filmes")
    _cli_materialize(
        lake_root,
        connect_server.remote,
        base / "home",
        "--select",
        "trusted/tmdb",
        "--partition-range",
        f"{HISTORY[0]}...{HISTORY[-1]}",
    )
    return lake_root


@pytest.mark.e2e
def test_spark_sql_counts_the_trusted_tables_by_name_like_pyarrow(connect_server, connect_lake, connect_session, tmp_path):
    spark = connect_session(connect_server.remote)
    assert spark.conf.get("spark.sql.catalogImplementation") == "hive"
    expected = _rows_by_day(connect_lake)
    assert all(expected.values()) and len(set(expected.values())) > 1
    assert dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == expected
    (count,) = spark.sql(f"select count(*) from trusted.tmdb where dt = '{HISTORY[1]}'").first()
    assert count == expected[HISTORY[1]]
    filmes = Lake(LakeResource(root=str(connect_lake))).current_keys("trusted/filmes/")
    rows = sum(pq.read_metadata(connect_lake / key).num_rows for key in filmes)
    assert spark.sql("select count(*) from trusted.filmes").first()[0] == rows == 1998
    assert [r[0] for r in spark.sql("show partitions trusted.tmdb").collect()] == [f"dt={d}" for d in HISTORY]
    day_folder = connect_lake / "trusted" / "tmdb" / f"dt={HISTORY[1]}"
    (first_write,) = [p for p in day_folder.iterdir() if p.is_dir()]
    assert _partition_location(spark, HISTORY[1]).endswith(str(first_write))

    # Re-materialised by another client: the old write folder stays on disk until retention, but the
    # partition now points at the new one, so this open session reads one version of the day.
    _cli_materialize(
        connect_lake, connect_server.remote, tmp_path / "home", "--select", "trusted/tmdb", "--partition", HISTORY[1]
    )
    (second_write,) = [p for p in day_folder.iterdir() if p.is_dir() and p != first_write]
    assert any(first_write.glob("*.parquet"))
    assert _partition_location(spark, HISTORY[1]).endswith(str(second_write))
    assert [r[0] for r in spark.sql("show partitions trusted.tmdb").collect()] == [f"dt={d}" for d in HISTORY]
    assert (
        dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == _rows_by_day(connect_lake) == expected
    )

    # DuckDB, from the snapshot, agrees; so do the README's summaries in both dialects.
    duck = open_lake(LakeResource(root=str(connect_lake)))
    assert dict(duck.sql("select dt, count(*) from tmdb group by dt").fetchall()) == expected
    in_spark = spark.sql(
        f"""select produtora, count(*) as filmes, array_sort(collect_list(titulo)) as titulos
            from trusted.tmdb lateral view explode(produtoras) p as produtora where dt = '{HISTORY[1]}'
            group by produtora order by filmes desc"""
    ).collect()
    in_duckdb = duck.sql(
        f"""select produtora, count(*) as filmes, list(titulo order by titulo) as titulos
            from (select unnest(produtoras) as produtora, titulo from tmdb where dt = '{HISTORY[1]}')
            group by produtora order by filmes desc"""
    ).fetchall()
    assert {r.produtora: (r.filmes, list(r.titulos)) for r in in_spark} == {p: (n, list(t)) for p, n, t in in_duckdb}
    assert len(in_duckdb) > 20 and in_spark[0].filmes == in_duckdb[0][1]
    language = f"select idioma_original, count(*) as filmes from {{}} where dt = '{HISTORY[1]}' group by 1 order by 2 desc"
    assert dict(spark.sql(language.format("trusted.tmdb")).collect()) == dict(duck.sql(language.format("tmdb")).fetchall())


@pytest.mark.e2e
def test_the_spark_catalog_survives_a_server_restart(connect_server, connect_lake, connect_session, request):
    connect_server.stop()
    connect_server.start()
    watcher = start_watchdog(pids=[connect_server.pid()])  # the fixture's watcher guards the first JVM only
    request.addfinalizer(lambda: reap(watcher, timeout=0.1))
    spark = connect_session(connect_server.remote)
    assert {r.tableName for r in spark.sql("show tables in trusted").collect()} == {"filmes", "tmdb"}
    assert dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == _rows_by_day(connect_lake)
    assert (connect_server.home / "metastore_db").is_dir() and (connect_server.home / "derby.log").is_file()


@pytest.mark.e2e
def test_sync_registers_what_classic_runs_published(connect_server, connect_lake, connect_session):
    spark = connect_session(connect_server.remote)
    spark.sql("drop table trusted.tmdb")  # as if published by `make run`'s classic session: in no Spark catalog
    assert [r.tableName for r in spark.sql("show tables in trusted").collect()] == ["filmes"]
    assert all(_rows_by_day(connect_lake).values())  # an external table: dropping it left the data
    done = subprocess.run(
        [sys.executable, "-m", "lake_assets.cli.catalog", "sync"],
        cwd=ROOT,
        env=_cli_env(connect_lake, connect_server.remote),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("Spark catalog:")] == [
        "Spark catalog: trusted.filmes unchanged",
        f"Spark catalog: trusted.tmdb created, {len(HISTORY)} partition(s) registered",
    ]
    assert dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == _rows_by_day(connect_lake)


@pytest.mark.e2e
def test_schema_changes_in_the_spark_catalog_add_columns_or_recreate_keeping_data(connect_server, connect_session, tmp_path):
    spark = connect_session(connect_server.remote)
    lake = LakeResource(root=str(tmp_path / "lake"))
    storage = lake.storage("trusted")
    resource = CatalogResource(spark_database=f"schema_{uuid.uuid4().hex[:8]}")
    database = resource.spark_database

    def commit_day(day: str, table: pa.Table) -> dict:
        """One day's file in a write folder of its own, committed, then named in the Spark catalog."""
        table = table.append_column("dt", pa.array([day] * table.num_rows))
        local = tmp_path / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(table, local)
        key = f"trusted/tmdb/dt={day}/{uuid.uuid4().hex[:8]}/part-0.parquet"
        storage.put_file(local, key)
        iceberg.replace(lake.iceberg_catalog(), storage, "trusted/tmdb", table.schema, [key], [day], "dt")
        committed = iceberg.load(lake.iceberg_catalog(), "trusted/tmdb")
        return resource.register(storage, "trusted/tmdb", committed, [day], log=logging.getLogger("test"), spark_session=spark)

    def rows() -> list[tuple]:
        found = spark.sql(f"select dt, tmdb_id, titulo, nota from {database}.tmdb order by dt").collect()
        return [tuple(r) for r in found]

    assert commit_day(HISTORY[0], pa.table({"tmdb_id": pa.array([1], pa.int32()), "titulo": ["a"]}))["catalog/spark"] == (
        f"{database}.tmdb created, 1 partition(s) registered"
    )
    # TMDB adds a field: a column is added, the older day reads it as null.
    day2 = pa.table({"tmdb_id": pa.array([2], pa.int32()), "titulo": ["b"], "nota": [1.5]})
    assert commit_day(HISTORY[1], day2)["catalog/spark"] == f"{database}.tmdb updated, 1 partition(s) registered"
    assert [c.name for c in spark.catalog.listColumns(f"{database}.tmdb")] == ["tmdb_id", "titulo", "nota", "dt"]
    assert rows() == [(HISTORY[0], 1, "a", None), (HISTORY[1], 2, "b", 1.5)]
    # The contract widens a type: the definition is re-created, every partition kept, no data lost.
    day3 = pa.table({"tmdb_id": pa.array([3], pa.int64()), "titulo": ["c"], "nota": [2.5]})
    assert commit_day(HISTORY[2], day3)["catalog/spark"] == f"{database}.tmdb re-created, 3 partition(s) registered"
    assert dict((c.name, c.dataType) for c in spark.catalog.listColumns(f"{database}.tmdb"))["tmdb_id"] == "bigint"
    assert rows() == [(HISTORY[0], 1, "a", None), (HISTORY[1], 2, "b", 1.5), (HISTORY[2], 3, "c", 2.5)]
