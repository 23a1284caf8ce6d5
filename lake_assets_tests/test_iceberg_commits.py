"""Iceberg commits under concurrency and failure: every reader sees exactly one committed version.

- A reader polls the table every ~100 ms, through plain pyiceberg and through the project's DuckDB
  views, while a 10-day backfill republishes every day with other row counts: each read is the
  old version of all ten days or the new one, never a mix and never a sum.
- Writers of one day race on the SQLite and on the PostgreSQL catalog: every commit lands, in order.
- A writer SIGKILLed between its data files and its commit changes nothing a reader sees, and
  maintenance later removes its files.
"""

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import materialize
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import EqualTo

from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.resources import LakeResource
from lake_assets.lib.tables import iceberg, maintenance
from lake_assets.lib.tables.catalog import CATALOG_NAME, catalog_properties
from lake_assets_tests.readback import Lake, lake_resources
from lake_tools.duckdb_lake import open_lake
from lake_tools.processes import kill_process, start_process
from lake_tools.seed_history import seed, snapshot_records

DAYS = [f"2024-02-{day:02d}" for day in range(1, 11)]
RANGE_TAGS = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}


def _backfill(lake, spark_resource):
    return materialize(
        [raw.tmdb_json, trusted.tmdb],
        selection=[trusted.tmdb.key],
        resources=lake_resources(lake, spark_resource),
        tags=RANGE_TAGS,
    )


def test_readers_see_one_committed_version_while_a_backfill_republishes(tmp_path, spark_resource):
    lake = LakeResource(root=str(tmp_path / "lake"))
    records = snapshot_records()
    first = seed(lake, dt.date.fromisoformat(DAYS[0]), len(DAYS), records)
    assert _backfill(lake, spark_resource).success
    second = seed(lake, dt.date.fromisoformat(DAYS[0]), len(DAYS), records[: len(records) // 2])
    versions = [tuple(first[d] for d in DAYS), tuple(second[d] for d in DAYS)]
    assert versions[0] != versions[1]

    catalog = load_catalog(CATALOG_NAME, **catalog_properties(lake))
    seen: list[tuple] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def read_loop():
        connection = open_lake(lake)  # views planned once: they stay on the snapshot they planned
        try:
            while not stop.is_set():
                rows = catalog.load_table("trusted.tmdb").scan(selected_fields=("dt",)).to_arrow().column("dt").to_pylist()
                counts = tuple(rows.count(day) for day in DAYS)
                fresh = open_lake(lake)
                duck = dict(fresh.sql("select dt, count(*) from tmdb group by dt").fetchall())
                seen.append((counts, tuple(duck.get(day, 0) for day in DAYS)))
                time.sleep(0.1)
            (pinned,) = connection.sql("select count(*) from tmdb").fetchall()[0]
            assert pinned == sum(versions[0])  # planned before the commit: still the first version
        except BaseException as error:  # surfaced by the main thread
            failures.append(error)

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        assert _backfill(lake, spark_resource).success
        time.sleep(0.3)
    finally:
        stop.set()
        reader.join()
    assert not failures, failures
    assert len(seen) >= 5
    for counts, duck in seen:
        assert counts in versions and duck in versions, (counts, duck)
    assert seen[-1][0] == versions[1]
    # One run, one commit: a delete and an append snapshot for all ten days at once.
    table = catalog.load_table("trusted.tmdb")
    assert len(table.snapshots()) == 3  # the first backfill's append, then this run's delete + append
    assert table.current_snapshot().summary["lake.partitions"] == ",".join(DAYS)


# --- racing writers -------------------------------------------------------------------------------


def _write_files(root: Path, writer: str, rows: int) -> list[str]:
    key = f"trusted/tmdb/dt={DAYS[0]}/{writer}/part-0.parquet"
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"tmdb_id": pa.array(range(rows), pa.int64()), "writer": [writer] * rows, "dt": [DAYS[0]] * rows})
    pq.write_table(table, root / key)
    return [key]


def _race(root: str, writer: str, rows: int, barrier, environment: dict) -> str:
    """One writer process: its own files, then a commit at the same moment as the others."""
    os.environ.update(environment)
    lake = LakeResource(root=root)
    keys = _write_files(Path(root), writer, rows)
    catalog = lake.iceberg_catalog()
    storage = lake.storage("trusted")
    schema = pq.read_schema(Path(root) / keys[0])
    barrier.wait()
    try:
        iceberg.replace(catalog, storage, "trusted/tmdb", schema, keys, [DAYS[0]], "dt", run_id=writer)
        return "committed"
    except iceberg.CommitConflict as error:
        return f"conflict: {error}"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_writers_racing_on_one_day_all_commit_in_order(tmp_path, request, backend):
    environment = {}
    if backend == "postgres":
        database = request.getfixturevalue("postgres")
        environment["PYICEBERG_CATALOG__LAKE__URI"] = database.uri()
    root = tmp_path / "lake"
    lake = LakeResource(root=str(root))
    # The table exists before the race, as it does after a lake's first run.
    keys = _write_files(root, "first", 3)
    os.environ.update(environment)
    try:
        iceberg.replace(
            lake.iceberg_catalog(), lake.storage("trusted"), "trusted/tmdb", pq.read_schema(root / keys[0]), keys, [DAYS[0]], "dt"
        )
        writers = [f"writer-{n}" for n in range(4)]
        # Fresh processes, forked from a server that imported this module once (spawned ones would
        # each import it again: ~3 s of CPU apiece, Dagster and lake_assets' resources). They have
        # that server's environment, not this test's: `environment` goes to each explicitly.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        barrier = context.Manager().Barrier(len(writers))
        with context.Pool(len(writers)) as pool:
            outcomes = pool.starmap(_race, [(str(root), w, 10 + n, barrier, environment) for n, w in enumerate(writers)])
        assert outcomes == ["committed"] * len(writers), outcomes

        catalog = load_catalog(CATALOG_NAME, **catalog_properties(lake))
        table = catalog.load_table("trusted.tmdb")
        committed = [s.summary["lake.run-id"] for s in table.snapshots() if s.summary.get("lake.run-id", "").startswith("writer")]
        assert sorted(set(committed)) == writers  # no commit lost: each writer's delete and append are in the history
        current = table.scan(row_filter=EqualTo("dt", DAYS[0])).to_arrow()
        last = committed[-1]
        assert set(current.column("writer").to_pylist()) == {last}  # exactly the last commit's files
        assert current.num_rows == 10 + writers.index(last)
        for snapshot in table.snapshots():  # every file a snapshot names still exists
            for task in table.scan(snapshot_id=snapshot.snapshot_id).plan_files():
                assert Path(task.file.file_path.removeprefix("file://")).exists()
    finally:
        for name in environment:
            os.environ.pop(name, None)


# --- a writer killed before its commit ------------------------------------------------------------

_KILLED_WRITER = """
import sys, time
from pyiceberg.catalog.sql import SqlCatalog
import pyarrow.parquet as pq
from lake_assets.defs.resources import LakeResource
from lake_assets.lib.tables import iceberg, maintenance

def stall(self, *args, **kwargs):
    print("at-commit", flush=True)
    time.sleep(600)

SqlCatalog.commit_table = stall
root, key = sys.argv[1], sys.argv[2]
lake = LakeResource(root=root)
iceberg.replace(lake.iceberg_catalog(), lake.storage("trusted"), "trusted/tmdb", pq.read_schema(f"{root}/{key}"), [key], ["2024-02-01"], "dt")
"""


def test_a_writer_killed_before_its_commit_changes_nothing_readers_see(tmp_path):
    root = tmp_path / "lake"
    lake = LakeResource(root=str(root))
    keys = _write_files(root, "committed", 5)
    iceberg.replace(
        lake.iceberg_catalog(), lake.storage("trusted"), "trusted/tmdb", pq.read_schema(root / keys[0]), keys, [DAYS[0]], "dt"
    )
    before = Lake(lake).table(f"trusted/tmdb/dt={DAYS[0]}/")

    (dead,) = _write_files(root, f"killed-{uuid.uuid4().hex[:6]}", 50)
    writer = start_process(
        [sys.executable, "-c", _KILLED_WRITER, str(root), dead], output=subprocess.PIPE, stderr=None, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "at-commit"
    finally:
        kill_process(writer)
    assert (root / dead).exists()  # its data file is there, named by no snapshot
    read = Lake(lake)
    assert read.current_keys(f"trusted/tmdb/dt={DAYS[0]}/") == keys
    assert read.table(f"trusted/tmdb/dt={DAYS[0]}/").equals(before)
    (rows,) = open_lake(lake).sql("select count(*) from tmdb").fetchall()[0]
    assert rows == 5
    # Maintenance removes the dead writer's file once it is older than the grace period.
    table = lake.iceberg_catalog().load_table("trusted.tmdb")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    report = maintenance.expire(table, lake.storage("trusted"), older_than=later - dt.timedelta(days=7), now=later)
    assert dead in report.deleted and not (root / dead).exists()
    assert read.current_keys(f"trusted/tmdb/dt={DAYS[0]}/") == keys and all((root / key).exists() for key in keys)


# --- a configured catalog -------------------------------------------------------------------------


def test_a_configured_postgres_catalog_holds_the_tables_and_no_sqlite_file_appears(
    tmp_path, spark_resource, postgres, monkeypatch
):
    import psycopg

    from lake_tools.sample_filmes import write_filmes_csv

    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__URI", postgres.uri())
    lake = LakeResource(root=str(tmp_path / "lake"))
    csv = write_filmes_csv(tmp_path / "filmes.csv", 40, seed=3)
    result = materialize(
        [raw.filmes_csv, trusted.filmes],
        resources=lake_resources(lake, spark_resource),
        run_config={"ops": {"raw__filmes_csv": {"config": {"source_path": str(csv)}}}},
    )
    assert result.success
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == trusted.filmes.key]
    published = event.materialization.metadata["dagster/row_count"].value
    with psycopg.connect(postgres.uri(driver="postgresql")) as connection:
        names = connection.execute("select table_namespace, table_name from iceberg_tables").fetchall()
    assert ("trusted", "filmes") in names
    assert not (tmp_path / "lake" / "_catalog").exists()
    assert Lake(lake).table("trusted/filmes/").num_rows == published > 0  # read back through the configured catalog
