"""The migration of a manifest-published trusted zone to the Iceberg tables (lake_assets/lib/tables/migrate.py).

A lake is published the old way (the manifest protocol, files without a `dt` column, a rejected-rows
file in one manifest); after the migration, plain pyiceberg reads the same rows with `dt` filled in
from each file's folder, no object of the lake changed, and a second run commits nothing. Days an
Iceberg commit already holds stay as they are, and a later publish replaces a migrated day.
No Spark and no server: a local lake with its SQLite catalog.
"""

import datetime as dt
import hashlib
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import load_catalog

from lake_assets.cli import migrate as migrate_cli
from lake_assets.defs.resources import LakeResource
from lake_assets.lib.partitions import dt_path, partition_key_from_path
from lake_assets.lib.storage.publish import committed_keys, publish
from lake_assets.lib.tables import iceberg, migrate
from lake_assets.lib.tables.catalog import CATALOG_NAME, catalog_properties

TABLES = {"trusted/filmes": None, "trusted/tmdb": "dt"}
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]


def _tmdb_rows(day: str, first: int, count: int, with_status: bool = False) -> pa.Table:
    ids = list(range(first, first + count))
    columns = {
        "tmdb_id": pa.array(ids, pa.int64()),
        "titulo": [f"filme {i} de {day}" for i in ids],
        "data_de_lancamento": pa.array([dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in ids], pa.date32()),
        "popularidade": [i / 3 for i in ids],
        "generos": pa.array([["Drama"] if i % 2 else ["Drama", "Romance"] for i in ids], pa.list_(pa.string())),
    }
    if with_status:  # a column added after the first days
        columns["status"] = ["Released"] * count
    return pa.table(columns)


def _write(folder: Path, table: pa.Table) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.parquet"
    pq.write_table(table, path)  # as Spark's partitionBy left them: no `dt` column
    return path


def _old_lake(tmp_path: Path, layout: str = "hive") -> LakeResource:
    """A trusted zone as the manifest protocol published it: three tmdb days (the last with a column
    the others lack, the second with a rejected-rows file) and filmes in two files."""
    lake = LakeResource(root=str(tmp_path / "lake"), dt_layout=layout)
    storage = lake.storage("trusted")
    local = tmp_path / "files"
    for n, day in enumerate(DAYS):
        late = day == DAYS[-1]
        files = {
            "part-00000.snappy.parquet": _write(local / day, _tmdb_rows(day, 10 * n, 3, late)),
            "part-00001.snappy.parquet": _write(local / day, _tmdb_rows(day, 10 * n + 3, 2, late)),
        }
        if day == DAYS[1]:
            rejected = pa.table({"tmdb_id": pa.array([None], pa.int64()), "_reject_reason": ["tmdb_id is null"]})
            files["_rejected/part-00000.snappy.parquet"] = _write(local / "rejected", rejected)
        publish(storage, f"trusted/tmdb/{dt_path(day, layout)}", files)
    filmes = [pa.table({"titulo": ["Central do Brasil", "Cidade de Deus"], "ano": pa.array([1998, 2002], pa.int32())})]
    filmes.append(pa.table({"titulo": ["Bacurau"], "ano": pa.array([2019], pa.int32())}))
    publish(storage, "trusted/filmes", {f"part-{i:05d}.parquet": _write(local / "filmes", t) for i, t in enumerate(filmes)})
    return lake


def _rows_before(lake: LakeResource, path: str) -> list[dict]:
    """Every committed row, read with pyarrow from the manifests, each day from its folder."""
    storage = lake.storage("trusted")
    if path == "trusted/filmes":
        folders = {None: path}
    else:
        folders = {day: f"{path}/{dt_path(day, lake.layout)}" for day in DAYS}
    tables = []
    for day, folder in folders.items():
        for key in committed_keys(storage, folder):
            if "/_rejected/" in key:
                continue
            table = pq.read_table(storage.uri(key))
            if day is not None:
                assert partition_key_from_path(key[len(path) + 1 :], lake.layout) == day
                table = table.append_column("dt", pa.array([day] * len(table), pa.string()))
            tables.append(table)
    return _sorted(pa.concat_tables(tables, promote_options="default").to_pylist())


def _rows_after(lake: LakeResource, path: str) -> list[dict]:
    """Every row of the table's current snapshot, through plain pyiceberg."""
    catalog = load_catalog(CATALOG_NAME, **catalog_properties(lake))
    return _sorted(catalog.load_table(path.replace("/", ".")).scan().to_arrow().to_pylist())


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row.get("dt") or "", row.get("tmdb_id") or 0, row.get("titulo")))


def _objects(lake: LakeResource) -> dict[str, tuple[str, str]]:
    """Every object of the lake: its tag (a local lake's changes with any write) and a hash of its bytes."""
    storage = lake.storage("trusted")
    return {obj.key: (obj.etag, hashlib.sha256(storage.get_bytes(obj.key)).hexdigest()) for obj in storage.list("")}


@pytest.mark.parametrize("layout", ["hive", "seed"])
def test_migration_registers_the_committed_files_in_place(tmp_path, layout):
    lake = _old_lake(tmp_path, layout)
    before = {path: _rows_before(lake, path) for path in TABLES}
    objects = _objects(lake)

    report = migrate.migrate(lake, tables=TABLES)

    assert {path: _rows_after(lake, path) for path in TABLES} == before
    assert all(row["dt"] in DAYS for row in before["trusted/tmdb"])
    assert [row["status"] for row in before["trusted/tmdb"]].count(None) == 10  # the days without the column
    # Not one object of the lake changed: the tables' metadata and the catalog were only added.
    after = _objects(lake)
    assert {key: after.get(key) for key in objects} == objects
    assert all(
        key.startswith(("trusted/tmdb/metadata/", "trusted/filmes/metadata/", "_catalog/")) for key in set(after) - set(objects)
    )
    by_path = {t.path: t for t in report.tables}
    assert (by_path["trusted/tmdb"].partitions, by_path["trusted/tmdb"].files, by_path["trusted/tmdb"].rows) == (DAYS, 6, 15)
    assert (by_path["trusted/filmes"].files, by_path["trusted/filmes"].rows) == (2, 3)
    assert "3 partition(s), 6 file(s), 15 row(s) committed in snapshot" in by_path["trusted/tmdb"].summary()

    snapshots = {
        path: lake.iceberg_catalog().load_table(path.replace("/", ".")).current_snapshot().snapshot_id for path in TABLES
    }
    again = migrate.migrate(lake, tables=TABLES)
    assert not again.changed
    assert all("nothing migrated (migrated on " in line for line in again.lines())
    catalog = load_catalog(CATALOG_NAME, **catalog_properties(lake))
    assert {path: catalog.load_table(path.replace("/", ".")).current_snapshot().snapshot_id for path in TABLES} == snapshots
    assert _objects(lake) == after


def test_current_files_name_each_migrated_day(tmp_path):
    lake = _old_lake(tmp_path)
    migrate.migrate(lake, tables=TABLES)
    storage = lake.storage("trusted")
    table = iceberg.load(lake.iceberg_catalog(), "trusted/tmdb")

    files = iceberg.current_files(table, storage)
    assert sorted(files) == DAYS
    for day in DAYS:
        data = [key for key in committed_keys(storage, f"trusted/tmdb/dt={day}") if "/_rejected/" not in key]
        assert sorted(f.key for f in files[day]) == sorted(data)
        assert {f.partition for f in files[day]} == {day}
    assert iceberg.rows_by_partition(files) == {day: 5 for day in DAYS}
    assert list(iceberg.current_files(table, storage, [DAYS[1]])) == [DAYS[1]]  # pruned on the partition value
    filmes = iceberg.current_files(iceberg.load(lake.iceberg_catalog(), "trusted/filmes"), storage)
    assert list(filmes) == [None] and sum(f.rows for f in filmes[None]) == 3


def _iceberg_publish(lake: LakeResource, day: str, ids: list[int]) -> list[str]:
    """A day as the pipeline publishes it since the switch: its own write folder, `dt` in the file."""
    storage = lake.storage("trusted")
    key = f"trusted/tmdb/{dt_path(day)}/{uuid.uuid4().hex[:8]}/part-00000.parquet"
    rows = _tmdb_rows(day, ids[0], len(ids))
    rows = rows.append_column("dt", pa.array([day] * len(rows), pa.string()))
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink)
    storage.put_bytes(sink.getvalue().to_pybytes(), key)
    iceberg.replace(lake.iceberg_catalog(), storage, "trusted/tmdb", rows.schema, [key], [day], "dt", run_id="after-switch")
    return [key]


def test_days_already_in_iceberg_are_left_alone(tmp_path):
    lake = _old_lake(tmp_path)
    # After the switch, the pipeline republished one manifest day and published a new one.
    republished = _iceberg_publish(lake, DAYS[1], [100, 101])
    new_day = _iceberg_publish(lake, "2024-03-04", [200])

    report = migrate.migrate(lake, tables={"trusted/tmdb": "dt"})

    (tmdb,) = report.tables
    assert tmdb.partitions == [DAYS[0], DAYS[2]] and tmdb.already_in_iceberg == [DAYS[1]]
    files = iceberg.current_files(iceberg.load(lake.iceberg_catalog(), "trusted/tmdb"), lake.storage("trusted"))
    assert [f.key for f in files[DAYS[1]]] == republished and [f.key for f in files["2024-03-04"]] == new_day
    rows = _rows_after(lake, "trusted/tmdb")
    assert sorted({row["dt"] for row in rows}) == [*DAYS, "2024-03-04"]
    assert sorted(row["tmdb_id"] for row in rows if row["dt"] == DAYS[1]) == [100, 101]
    assert len([row for row in rows if row["dt"] in (DAYS[0], DAYS[2])]) == 10


def test_a_later_publish_replaces_a_migrated_day(tmp_path):
    lake = _old_lake(tmp_path)
    migrate.migrate(lake, tables=TABLES)
    old_keys = committed_keys(lake.storage("trusted"), f"trusted/tmdb/dt={DAYS[0]}")
    objects = _objects(lake)

    new = _iceberg_publish(lake, DAYS[0], [500, 501, 502])

    rows = _rows_after(lake, "trusted/tmdb")
    assert sorted(row["tmdb_id"] for row in rows if row["dt"] == DAYS[0]) == [500, 501, 502]
    assert len(rows) == 13
    files = iceberg.current_files(iceberg.load(lake.iceberg_catalog(), "trusted/tmdb"), lake.storage("trusted"))
    assert [f.key for f in files[DAYS[0]]] == new
    # The migrated files were dropped from the table whole, not rewritten: they are still there, unchanged.
    after = _objects(lake)
    assert {key: after.get(key) for key in old_keys} == {key: objects[key] for key in old_keys}


def test_the_command_line_prints_a_line_per_table_and_fails_in_one_line(tmp_path, monkeypatch, capsys):
    lake = _old_lake(tmp_path)
    monkeypatch.setenv("LAKE_ROOT", lake.root)
    for name in ("LAKE_RAW_ROOT", "LAKE_TRUSTED_ROOT", "LAKE_DT_LAYOUT"):
        monkeypatch.delenv(name, raising=False)

    assert migrate_cli.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("trusted.tmdb: 3 partition(s), 6 file(s), 15 row(s) committed in snapshot ") for line in lines)
    assert any(line.startswith("trusted.filmes: 2 file(s), 3 row(s) committed in snapshot ") for line in lines)

    broken = LakeResource(root=str(tmp_path / "broken"))
    storage = broken.storage("trusted")
    filmes = pa.table({"titulo": ["Bacurau"], "ano": pa.array([2019], pa.int32())})
    publish(storage, "trusted/filmes", {"part-0.parquet": _write(tmp_path / "b", filmes)})
    publish(storage, "trusted/tmdb/dt=2024-03-01", {"part-0.parquet": _write(tmp_path / "b", _tmdb_rows(DAYS[0], 0, 1))})
    storage.delete(["trusted/tmdb/dt=2024-03-01/part-0.parquet"])  # a manifest naming a file that is gone
    monkeypatch.setenv("LAKE_ROOT", broken.root)
    assert migrate_cli.main([]) == 1
    captured = capsys.readouterr()
    (done,) = captured.out.splitlines()  # the table migrated before the failure stays migrated: it is said
    assert done.startswith("trusted.filmes: 1 file(s), 1 row(s) committed in snapshot ")
    (error,) = captured.err.splitlines()
    assert error.startswith("migrate: MigrationError: migrating trusted/tmdb to trusted.tmdb: FileNotFoundError: ")
    assert error.endswith("; nothing of this table was committed")
    tmdb = iceberg.load(broken.iceberg_catalog(), "trusted/tmdb")
    assert tmdb is None or tmdb.current_snapshot() is None


@pytest.mark.parametrize("day", [DAYS[0], "2024-03-04"])
def test_a_commit_that_lands_during_the_migration_wins_its_day(tmp_path, monkeypatch, day):
    """Between the migration's plan and its commit, the pipeline publishes a day: one the migration is
    adding (the pipeline's version wins, the migration plans again without it) or another one."""
    lake = _old_lake(tmp_path)
    describe = migrate._data_files
    calls = []

    def with_a_concurrent_publish(*args):
        calls.append(args)
        if len(calls) == 1:
            _iceberg_publish(lake, day, [700])
        return describe(*args)

    monkeypatch.setattr(migrate, "_data_files", with_a_concurrent_publish)
    (tmdb,) = migrate.migrate(lake, tables={"trusted/tmdb": "dt"}).tables

    rows = _rows_after(lake, "trusted/tmdb")
    assert [row["tmdb_id"] for row in rows if row["dt"] == day] == [700]
    if day in DAYS:
        assert len(calls) == 2  # the first commit lost the race; the second was planned on top of the winner
        assert tmdb.partitions == DAYS[1:] and tmdb.already_in_iceberg == [day]
        assert len(rows) == 11
    else:
        assert tmdb.partitions == DAYS and tmdb.already_in_iceberg == []
        assert len(rows) == 16
