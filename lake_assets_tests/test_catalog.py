"""The trusted tables by name: the Glue Data Catalog (a real moto server), Athena DDL, the Spark catalog
of a Spark Connect server with Hive support, and DuckDB views.

Assets are materialised with Dagster into a SeaweedFS or local lake; what the catalogs say is checked
against the lake read back independently (boto3 listings, pyarrow reading the Parquet files)."""

import datetime as dt
import io
import logging
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, MaterializeResult, ResourceParam, materialize
from dagster import asset as dagster_asset
from pyspark.sql import functions as F

from lake_assets import catalog
from lake_assets.assets import raw, trusted
from lake_assets.catalog import (
    SparkTable,
    TableSpec,
    columns_of,
    hive_type,
    merge_columns,
    spark_partition_statements,
    spark_table_statements,
)
from lake_assets.contracts.rules import Contract
from lake_assets.io_managers import LAKE_PATH, RawZoneIOManager, TrustedParquetIOManager
from lake_assets.partitions import daily_partitions
from lake_assets.resources import CatalogResource, LakeResource
from lake_assets.resources.tmdb import TMDBResource
from lake_assets.storage import LocalStorage
from lake_assets.storage.publish import StoredFile, committed_files, publish
from lake_assets.transforms.columns import RAW, REJECT_REASON
from lake_assets_tests.conftest import _FOREIGN_AWS_VARS, glue_variables
from lake_tools.devserver import SparkConnectServer
from lake_tools.duckdb_lake import open_lake
from lake_tools.processes import free_port, reap, start_watchdog
from lake_tools.seed_history import seed, snapshot_records

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DDL = Path(__file__).resolve().parent / "data" / "athena_ddl.sql"
GOLDEN_BUCKET = "lake-catalog-golden"  # a fixed name: the golden DDL names its locations
HISTORY = ["2024-01-01", "2024-01-02", "2024-01-03"]
RANGE_TAGS = {"dagster/asset_partition_range_start": HISTORY[0], "dagster/asset_partition_range_end": HISTORY[-1]}

# The few Parquet types the trusted tables hold, as Glue names them: written out here rather than
# taken from the code under test.
GLUE_TYPES = {pa.int64(): "bigint", pa.int32(): "int", pa.string(): "string", pa.float64(): "double", pa.date32(): "date"}


def _glue_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"array<{_glue_type(arrow_type.value_type)}>"
    return GLUE_TYPES[arrow_type]


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _resources(lake, spark_resource, catalog_resource):
    return {
        "lake": lake,
        "spark": spark_resource,
        "tmdb": TMDBResource(),  # the bundled offline snapshot
        "raw_io_manager": RawZoneIOManager(lake=lake),
        "parquet_io_manager": TrustedParquetIOManager(lake=lake, spark=spark_resource, catalog=catalog_resource),
    }


def _metadata(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: getattr(v, "value", v) for k, v in events[-1].materialization.metadata.items()}


def _partitions(glue_client, database: str, table: str) -> dict[str, dict]:
    pages = glue_client.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    found = [p for page in pages for p in page["Partitions"]]
    assert len({tuple(p["Values"]) for p in found}) == len(found)  # never a duplicate
    return {p["Values"][0]: p for p in found}


def _columns(descriptor: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in descriptor["Columns"]]


# --- pure helpers ----------------------------------------------------------------------------------


def test_glue_types_of_what_spark_writes():
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
    assert hive_type(pa.list_(pa.struct([("a", pa.large_string())]))) == "array<struct<a:string>>"


def test_merged_columns_keep_their_order_take_new_types_and_keep_what_older_partitions_hold():
    current = (("tmdb_id", "bigint"), ("titulo", "string"), ("votos", "int"))
    written = (("tmdb_id", "bigint"), ("nova", "string"), ("votos", "bigint"))
    assert merge_columns(current, written) == (
        ("tmdb_id", "bigint"),
        ("titulo", "string"),
        ("votos", "bigint"),
        ("nova", "string"),
    )
    assert merge_columns((), written) == written
    assert merge_columns(written, written) == written


def test_spark_statements_create_add_columns_or_recreate():
    spec = TableSpec("trusted", "tmdb", "/lake/trusted/tmdb", (("tmdb_id", "bigint"), ("nova", "string")), True)
    statements, created = spark_table_statements(spec, None)
    assert created and statements == [
        "CREATE TABLE IF NOT EXISTS `trusted`.`tmdb` (`tmdb_id` bigint, `nova` string, `dt` string) USING parquet "
        "PARTITIONED BY (`dt`) LOCATION '/lake/trusted/tmdb'"
    ]
    older = SparkTable((("tmdb_id", "bigint"),), "file:/lake/trusted/tmdb", ("2024-01-01",))
    assert spark_table_statements(spec, older) == (["ALTER TABLE `trusted`.`tmdb` ADD COLUMNS (`nova` string)"], False)
    same = SparkTable(spec.columns, "file:/lake/trusted/tmdb/", ())
    assert spark_table_statements(spec, same) == ([], False)
    retyped = SparkTable((("tmdb_id", "int"), ("nova", "string")), "file:/lake/trusted/tmdb", ())
    moved = SparkTable(spec.columns, "file:/elsewhere/trusted/tmdb", ())
    for current in (retyped, moved):
        statements, created = spark_table_statements(spec, current)
        assert created and statements[0] == "DROP TABLE IF EXISTS `trusted`.`tmdb`" and statements[1].startswith("CREATE TABLE")
    many = [(f"k{i:03d}", f"/lake/trusted/tmdb/dt=k{i:03d}") for i in range(250)]
    batches = spark_partition_statements(spec, many)
    assert len(batches) == 3 and sum(b.count(" PARTITION (") for b in batches) == 250
    assert batches[0].startswith("ALTER TABLE `trusted`.`tmdb` ADD IF NOT EXISTS PARTITION (`dt`='k000') LOCATION '/lake/")


def test_the_written_schema_comes_from_the_footer_small_or_large(tmp_path):
    storage = LocalStorage(tmp_path)
    for name, table in (
        ("small.parquet", pa.table({"tmdb_id": [1, 2], "titulo": ["a", "b"]})),
        ("wide.parquet", pa.table({f"coluna_{i:04d}_{'x' * 40}": [i] for i in range(2000)})),  # a footer > 64 KB
    ):
        pq.write_table(table, tmp_path / name)
        assert catalog.parquet_schema(storage, StoredFile(name, (tmp_path / name).stat().st_size)).equals(table.schema)
    (tmp_path / "not.parquet").write_bytes(b"{}")
    with pytest.raises(catalog.CatalogError, match="not.parquet is not a Parquet file"):
        catalog.parquet_schema(storage, StoredFile("not.parquet", 2))


def test_database_names_are_checked_when_the_resource_is_built():
    with pytest.raises(ValueError, match="1-255 lower-case letters, digits or _"):
        CatalogResource(glue_database="Trusted-Zone")


# --- Glue on an S3 lake ----------------------------------------------------------------------------


@dataclass
class Published:
    lake: LakeResource
    database: str
    today: str
    results: dict


@pytest.fixture(scope="module")
def s3_published(s3_server, moto_glue, spark_resource):
    """The `make run` materialisations (filmes, today's tmdb) and a 3-day backfill of tmdb on an S3
    lake, each published and registered in Glue by the run itself."""
    s3_server.create_bucket(GOLDEN_BUCKET)
    database = f"trusted_{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as env:
        for name in _FOREIGN_AWS_VARS:
            env.delenv(name, raising=False)
        for name, value in {**s3_server.env(), "LAKE_S3_PATH_STYLE": "1"}.items():
            env.setenv(name, value)
        for name, value in glue_variables(moto_glue).items():
            env.setenv(name, value)
        lake = LakeResource(
            root=f"s3://{GOLDEN_BUCKET}/lake", endpoint_url=s3_server.endpoint_url, region_name="us-east-1", s3_path_style=True
        )
        resources = _resources(lake, spark_resource, CatalogResource(glue_database=database, region_name="us-east-1"))
        today = _today()
        results = {
            "filmes": materialize([raw.filmes_csv, trusted.filmes], resources=resources),
            "today": materialize([raw.tmdb_json, trusted.tmdb], resources=resources, partition_key=today),
        }
        seed(lake, dt.date.fromisoformat(HISTORY[0]), len(HISTORY), snapshot_records())
        results["backfill"] = materialize(
            [raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, tags=RANGE_TAGS
        )
        assert all(result.success for result in results.values())
        yield Published(lake, database, today, results)
    s3_server.delete_bucket(GOLDEN_BUCKET)


def _parquet_files(s3_server, prefix: str) -> list[str]:
    """The data files directly in a folder of the bucket (not `_rejected/`), listed with boto3."""
    client = s3_server.boto3_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=GOLDEN_BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return [k for k in keys if k.endswith(".parquet") and "/" not in k[len(prefix) :]]


def _read(s3_server, key: str) -> pa.Table:
    body = s3_server.boto3_client().get_object(Bucket=GOLDEN_BUCKET, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def test_glue_holds_both_tables_and_exactly_the_published_partitions(s3_published, s3_server, moto_glue):
    glue_client, database = moto_glue.client(), s3_published.database
    base = f"s3://{GOLDEN_BUCKET}/lake/trusted"
    for name, partitioned in (("filmes", False), ("tmdb", True)):
        table = glue_client.get_table(DatabaseName=database, Name=name)["Table"]
        descriptor = table["StorageDescriptor"]
        assert table["TableType"] == "EXTERNAL_TABLE" and table["Parameters"]["classification"] == "parquet"
        assert descriptor["Location"] == f"{base}/{name}/"
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        assert descriptor["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
        assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == ([("dt", "string")] if partitioned else [])
        folder = f"lake/trusted/{name}/" + (f"dt={HISTORY[0]}/" if partitioned else "")
        written = _read(s3_server, _parquet_files(s3_server, folder)[0]).schema
        assert _columns(descriptor) == [(f.name, _glue_type(f.type)) for f in written]
        assert ("dt", "string") not in _columns(descriptor)  # the partition key is not a data column

    partitions = _partitions(glue_client, database, "tmdb")
    assert sorted(partitions) == sorted([*HISTORY, s3_published.today])
    for day, partition in partitions.items():
        assert partition["StorageDescriptor"]["Location"] == f"{base}/tmdb/dt={day}/"
        assert _parquet_files(s3_server, f"lake/trusted/tmdb/dt={day}/")  # the location holds the data
        assert _columns(partition["StorageDescriptor"]) == _columns(
            glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]["StorageDescriptor"]
        )
    backfill = _metadata(s3_published.results["backfill"], "trusted/tmdb")
    assert backfill["catalog/glue"] == f"{database}.tmdb unchanged; partitions: 3 created, 0 updated"
    assert "catalog/spark" not in backfill  # a classic session's catalog is in memory: nothing registered


def test_rematerialising_a_day_leaves_one_partition(s3_published, s3_server, moto_glue, spark_resource, monkeypatch):
    glue_client, database = moto_glue.client(), s3_published.database
    before = _partitions(glue_client, database, "tmdb")
    files_before = _parquet_files(s3_server, f"lake/trusted/tmdb/dt={HISTORY[1]}/")
    version = glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]["VersionId"]
    resources = _resources(s3_published.lake, spark_resource, CatalogResource(glue_database=database, region_name="us-east-1"))
    result = materialize(
        [raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=resources, partition_key=HISTORY[1]
    )
    assert result.success
    assert _metadata(result, "trusted/tmdb")["catalog/glue"] == f"{database}.tmdb unchanged; partitions: 0 created, 1 updated"
    after = _partitions(glue_client, database, "tmdb")
    assert sorted(after) == sorted(before)
    assert after[HISTORY[1]]["StorageDescriptor"]["Location"] == before[HISTORY[1]]["StorageDescriptor"]["Location"]
    assert not set(files_before) & set(_parquet_files(s3_server, f"lake/trusted/tmdb/dt={HISTORY[1]}/"))  # new files
    assert glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]["VersionId"] == version  # no needless update


def _ddl_environment(monkeypatch, s3_server):
    for name, value in {**s3_server.env(), "LAKE_ROOT": f"s3://{GOLDEN_BUCKET}/lake", "LAKE_S3_PATH_STYLE": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("LAKE_TRUSTED_ROOT", "LAKE_DT_LAYOUT", "LAKE_GLUE_DATABASE"):
        monkeypatch.delenv(name, raising=False)


def test_athena_ddl_matches_the_golden_file_and_the_glue_tables(s3_published, s3_server, moto_glue, monkeypatch, capsys):
    _ddl_environment(monkeypatch, s3_server)
    assert catalog.main(["ddl"]) == 0
    printed = capsys.readouterr().out
    if os.environ.get("LAKE_UPDATE_GOLDEN"):
        GOLDEN_DDL.write_text(printed)
    assert printed == GOLDEN_DDL.read_text()

    statements = [s.strip() for s in printed.split(";") if s.strip() and not s.strip().startswith("--")]
    tables = {re.search(r"`trusted`\.`(\w+)`", s).group(1): s for s in statements if s.startswith("CREATE EXTERNAL TABLE")}
    assert set(tables) == {"filmes", "tmdb"}
    assert printed.count("PARTITIONED BY") == 1 and "PARTITIONED BY (`dt` string)" in tables["tmdb"]
    assert f"LOCATION 's3://{GOLDEN_BUCKET}/lake/trusted/tmdb/'" in tables["tmdb"]
    properties = dict(re.findall(r"'([\w.]+)'='([^']*)'", tables["tmdb"]))
    assert properties == {
        "classification": "parquet",
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": f"{daily_partitions.get_first_partition_key()},NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
    }
    assert "projection" not in tables["filmes"]
    glue_client = moto_glue.client()
    for name, statement in tables.items():
        body = statement.split("(", 1)[1].split("\n)", 1)[0]
        columns = [tuple(line.strip().rstrip(",").split(" ", 1)) for line in body.strip().splitlines()]
        glue_columns = _columns(
            glue_client.get_table(DatabaseName=s3_published.database, Name=name)["Table"]["StorageDescriptor"]
        )
        assert [(n.strip("`"), t) for n, t in columns] == glue_columns


def test_athena_ddl_of_a_local_lake_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.delenv("LAKE_TRUSTED_ROOT", raising=False)
    assert catalog.main(["ddl"]) == 1
    error = capsys.readouterr().err.strip()
    assert (
        error
        == f"lake_assets.catalog: Athena reads tables from S3 only; the trusted zone is the local folder {tmp_path / 'lake'} (set LAKE_ROOT=s3://...)"
    )


def test_sync_registers_the_lake_with_partition_projection(s3_published, s3_server, moto_glue, monkeypatch):
    _ddl_environment(monkeypatch, s3_server)
    database = f"projected_{uuid.uuid4().hex[:8]}"
    for name, value in {**glue_variables(moto_glue), "LAKE_GLUE_DATABASE": database, "LAKE_GLUE_PROJECTION": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    assert catalog.main(["sync"]) == 0
    glue_client = moto_glue.client()
    parameters = glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]["Parameters"]
    assert parameters["projection.enabled"] == "true" and parameters["projection.dt.range"] == "2024-01-01,NOW"
    assert "projection.enabled" not in glue_client.get_table(DatabaseName=database, Name="filmes")["Table"]["Parameters"]
    # Athena needs no partitions with projection; other engines still find them.
    assert sorted(_partitions(glue_client, database, "tmdb")) == sorted([*HISTORY, s3_published.today])


def test_duckdb_views_answer_the_seeds_two_summaries_on_s3(s3_published, s3_server, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    day = HISTORY[1]
    duck = open_lake(s3_published.lake)
    by_company = duck.sql(
        f"""select produtora, count(*) as filmes, list(titulo order by titulo) as titulos
            from (select unnest(produtoras) as produtora, titulo from tmdb where dt = '{day}')
            group by produtora order by filmes desc, produtora"""
    ).fetchall()
    by_language = duck.sql(
        f"select idioma_original, count(*) as filmes from tmdb where dt = '{day}' group by 1 order by 2 desc, 1"
    ).fetchall()

    rows = pa.concat_tables([_read(s3_server, k) for k in _parquet_files(s3_server, f"lake/trusted/tmdb/dt={day}/")]).to_pylist()
    companies = Counter(c for r in rows for c in r["produtoras"])
    assert {name: count for name, count, _ in by_company} == companies and len(companies) > 20
    assert by_company[0][1] == max(companies.values())
    titles = {name: sorted(r["titulo"] for r in rows if name in r["produtoras"]) for name in companies}
    assert all(list(found) == titles[name] for name, _, found in by_company)
    assert dict(by_language) == Counter(r["idioma_original"] for r in rows)
    every_day = dict(duck.sql("select dt, count(*) from tmdb group by dt").fetchall())
    assert every_day == {
        d: sum(_read(s3_server, k).num_rows for k in _parquet_files(s3_server, f"lake/trusted/tmdb/dt={d}/"))
        for d in [*HISTORY, s3_published.today]
    }
    assert duck.sql("select count(*) from filmes").fetchall() == [(1998,)]


# --- schema changes, failures, a local lake --------------------------------------------------------


def _publish_day(lake, spark_resource, catalog_resource, day: str, rows: list[tuple], schema: str, raise_on_error=True):
    """Publish one day of a tmdb-like table through the trusted IO manager (and its catalog hook),
    under a contract whose only promise is `schema`: a contract that adds a column."""
    columns = dict(column.strip().split(" ", 1) for column in schema.split(","))
    contract = Contract(table="trusted/tmdb", layouts={"test": columns}, rules=[], partition_column="dt")

    @dagster_asset(key=AssetKey(["trusted", "tmdb"]), partitions_def=daily_partitions, metadata={LAKE_PATH: "trusted/tmdb"})
    def tmdb_like(context, parquet_io_manager: ResourceParam[TrustedParquetIOManager]):
        df = spark_resource.spark_session.createDataFrame(rows, schema).withColumn("dt", F.lit(context.partition_key))
        df = df.withColumn(RAW, F.struct(*[F.col(c).cast("string") for c in columns]))
        flagged = contract.apply(df.withColumn(REJECT_REASON, F.lit(None).cast("string")), "test")
        (outcome,) = parquet_io_manager.publish(context, flagged, contract, "test").outcomes
        return MaterializeResult(metadata=outcome.metadata())

    io_manager = TrustedParquetIOManager(lake=lake, spark=spark_resource, catalog=catalog_resource)
    return materialize(
        [tmdb_like], resources={"parquet_io_manager": io_manager}, partition_key=day, raise_on_error=raise_on_error
    )


def test_a_schema_change_updates_the_columns_and_leaves_older_partitions_as_written(tmp_path, glue, spark_resource):
    glue_client, database = glue
    lake = LakeResource(root=str(tmp_path / "lake"))
    resource = CatalogResource(glue_database=database, region_name="us-east-1")
    _publish_day(lake, spark_resource, resource, HISTORY[0], [(1, "Central do Brasil")], "tmdb_id bigint, titulo string")
    first = glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]
    assert _columns(first["StorageDescriptor"]) == [("tmdb_id", "bigint"), ("titulo", "string")]
    assert first["StorageDescriptor"]["Location"] == f"file://{tmp_path}/lake/trusted/tmdb/"  # a local lake: file://

    # TMDB adds a field, and the contract widens a column.
    _publish_day(
        lake, spark_resource, resource, HISTORY[1], [(2, "Cidade de Deus", 1.5)], "tmdb_id bigint, titulo string, nota double"
    )
    # A day without `titulo`: the table keeps it, older partitions still hold it.
    _publish_day(lake, spark_resource, resource, HISTORY[2], [(3, 2.5)], "tmdb_id bigint, nota double")
    table = glue_client.get_table(DatabaseName=database, Name="tmdb")["Table"]
    assert _columns(table["StorageDescriptor"]) == [("tmdb_id", "bigint"), ("titulo", "string"), ("nota", "double")]
    assert int(table["VersionId"]) > int(first["VersionId"])
    partitions = _partitions(glue_client, database, "tmdb")
    written = {
        day: [
            (f.name, _glue_type(f.type))
            for f in pq.read_schema(next((tmp_path / "lake/trusted/tmdb" / f"dt={day}").glob("*.parquet")))
        ]
        for day in HISTORY
    }
    assert {day: _columns(p["StorageDescriptor"]) for day, p in partitions.items()} == written
    assert written[HISTORY[0]] == [("tmdb_id", "bigint"), ("titulo", "string")]

    # DuckDB reads every day under the merged schema: what a day lacks is null.
    rows = open_lake(lake).sql("select dt, tmdb_id, titulo, nota from tmdb order by dt").fetchall()
    assert rows == [
        (HISTORY[0], 1, "Central do Brasil", None),
        (HISTORY[1], 2, "Cidade de Deus", 1.5),
        (HISTORY[2], 3, None, 2.5),
    ]


def test_a_catalog_failure_fails_the_step_in_one_line_and_a_rerun_registers(tmp_path, glue, spark_resource, monkeypatch):
    glue_client, database = glue
    secret = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    good_endpoint = os.environ["AWS_ENDPOINT_URL_GLUE"]
    closed = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lake = LakeResource(root=str(tmp_path / "lake"))
    resource = CatalogResource(glue_database=database, region_name="us-east-1")

    result = _publish_day(
        lake, spark_resource, resource, HISTORY[0], [(1, "a"), (2, "b")], "tmdb_id bigint, titulo string", False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    assert len(message.splitlines()) == 1 and message.endswith(
        f"Glue get_database of {database} at http://127.0.0.1:{closed} failed: "
        "endpoint unreachable; check AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL and the network"
    )
    assert secret not in str(result.all_events)
    files = committed_files(lake.storage("trusted"), f"trusted/tmdb/dt={HISTORY[0]}")
    assert sum(pq.read_metadata(tmp_path / "lake" / f.key).num_rows for f in files) == 2  # the publish stands

    # Nothing to redo in the lake: `sync` registers what is committed.
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", good_endpoint)
    for name, value in {"LAKE_ROOT": str(tmp_path / "lake"), "LAKE_GLUE_DATABASE": database}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    assert catalog.main(["sync"]) == 0
    assert list(_partitions(glue_client, database, "tmdb")) == [HISTORY[0]]
    # Re-running the step is safe too: the same partition, updated.
    assert _publish_day(lake, spark_resource, resource, HISTORY[0], [(1, "a")], "tmdb_id bigint, titulo string").success
    assert list(_partitions(glue_client, database, "tmdb")) == [HISTORY[0]]


# --- end to end: `make run`, and Spark SQL through a Connect server ----------------------------------


@pytest.mark.e2e
def test_make_run_with_a_glue_database_leaves_both_tables_and_todays_partition(tmp_path, glue):
    from lake_assets_tests.test_quickstart import _quickstart

    glue_client, database = glue
    before = _today()
    glue_env = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL_GLUE", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    done = _quickstart(tmp_path, LAKE_GLUE_DATABASE=database, **glue_env)
    after = _today()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Glue: {database}.filmes created" in done.stdout.splitlines()  # the terminal says what was registered
    assert f"Glue: {database}.tmdb created; partitions: 1 created, 0 updated" in done.stdout.splitlines()
    tables = {t["Name"]: t for t in glue_client.get_tables(DatabaseName=database)["TableList"]}
    assert set(tables) == {"filmes", "tmdb"}
    assert tables["tmdb"]["StorageDescriptor"]["Location"] == f"file://{tmp_path}/lake/trusted/tmdb/"
    (day,) = _partitions(glue_client, database, "tmdb")
    assert day in (before, after)


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


def _cli_materialize(lake_root: Path, remote: str, home: Path, *arguments: str) -> None:
    """`dagster asset materialize` as the README's command-line backfill runs it, on the Connect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_", "DAGSTER_", "SPARK_CONNECT"))}
    env.update(LAKE_ROOT=str(lake_root), SPARK_REMOTE=remote, DAGSTER_HOME=str(home))
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "lake_assets.definitions", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _rows_by_day(lake_root: Path) -> dict[str, int]:
    """pyarrow's row count of each partition folder's data files (the folder's own, not `_rejected/`)."""
    folders = sorted((lake_root / "trusted" / "tmdb").glob("dt=*"))
    return {f.name[3:]: sum(pq.read_metadata(p).num_rows for p in f.glob("*.parquet")) for f in folders}


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
    assert sorted(expected) == HISTORY and len(set(expected.values())) > 1
    assert dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == expected
    (count,) = spark.sql(f"select count(*) from trusted.tmdb where dt = '{HISTORY[1]}'").first()
    assert count == expected[HISTORY[1]]
    filmes = sum(pq.read_metadata(p).num_rows for p in (connect_lake / "trusted" / "filmes").glob("*.parquet"))
    assert spark.sql("select count(*) from trusted.filmes").first()[0] == filmes == 1998
    assert [r[0] for r in spark.sql("show partitions trusted.tmdb").collect()] == [f"dt={d}" for d in HISTORY]

    # Re-materialised by another client: still one partition, and this open session reads the new files.
    _cli_materialize(
        connect_lake, connect_server.remote, tmp_path / "home", "--select", "trusted/tmdb", "--partition", HISTORY[1]
    )
    assert [r[0] for r in spark.sql("show partitions trusted.tmdb").collect()] == [f"dt={d}" for d in HISTORY]
    assert dict(spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()) == _rows_by_day(connect_lake)

    # DuckDB, from the manifests, agrees; so do the README's summaries in both dialects.
    duck = open_lake(LakeResource(root=str(connect_lake)))
    assert dict(duck.sql("select dt, count(*) from tmdb group by dt").fetchall()) == _rows_by_day(connect_lake)
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
def test_the_dev_server_registers_what_classic_runs_published(connect_server, connect_lake, connect_session, monkeypatch):
    spark = connect_session(connect_server.remote)
    spark.sql("drop table trusted.tmdb")  # as if published by `make run`'s classic session: in no Spark catalog
    assert [r.tableName for r in spark.sql("show tables in trusted").collect()] == ["filmes"]
    assert _rows_by_day(connect_lake)  # an external table: dropping it left the data
    monkeypatch.setenv("LAKE_ROOT", str(connect_lake))
    assert connect_server.register_lake() == [
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

    def publish_day(day: str, table: pa.Table) -> dict:
        local = tmp_path / f"{day}-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, local)
        publish(storage, f"trusted/tmdb/dt={day}", {f"part-{uuid.uuid4().hex}.parquet": local})
        return resource.register(lake, "trusted/tmdb", [day], log=logging.getLogger("test"), spark_session=spark)

    def rows() -> list[tuple]:
        found = spark.sql(f"select dt, tmdb_id, titulo, nota from {database}.tmdb order by dt").collect()
        return [tuple(r) for r in found]

    assert publish_day(HISTORY[0], pa.table({"tmdb_id": pa.array([1], pa.int32()), "titulo": ["a"]}))["catalog/spark"] == (
        f"{database}.tmdb created, 1 partition(s) registered"
    )
    # TMDB adds a field: a column is added, the older day reads it as null.
    day2 = pa.table({"tmdb_id": pa.array([2], pa.int32()), "titulo": ["b"], "nota": [1.5]})
    assert publish_day(HISTORY[1], day2)["catalog/spark"] == f"{database}.tmdb updated, 1 partition(s) registered"
    assert rows() == [(HISTORY[0], 1, "a", None), (HISTORY[1], 2, "b", 1.5)]
    # The contract widens a type: the definition is re-created, every partition kept, no data lost.
    day3 = pa.table({"tmdb_id": pa.array([3], pa.int64()), "titulo": ["c"], "nota": [2.5]})
    assert publish_day(HISTORY[2], day3)["catalog/spark"] == f"{database}.tmdb re-created, 3 partition(s) registered"
    assert dict((c.name, c.dataType) for c in spark.catalog.listColumns(f"{database}.tmdb"))["tmdb_id"] == "bigint"
    assert rows() == [(HISTORY[0], 1, "a", None), (HISTORY[1], 2, "b", 1.5), (HISTORY[2], 3, "c", 2.5)]
