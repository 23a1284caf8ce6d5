"""Retention and rollback of the trusted Iceberg tables (lake_assets/lib/tables/maintenance.py), on a local
lake with the default SQLite catalog. Data files are written with pyarrow where the pipeline puts
them and committed with `iceberg.replace`; what the table says is checked against the files read
back with pyarrow."""

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_assets.defs.resources import LakeResource
from lake_assets.lib.tables import iceberg
from lake_assets.lib.tables.catalog import open_catalog
from lake_assets.lib.tables.maintenance import expire, rollback

TMDB = "trusted/tmdb"
FILMES = "trusted/filmes"
SCHEMA = pa.schema([("id", pa.int64()), ("title", pa.string()), ("dt", pa.string())])
FILMES_SCHEMA = pa.schema([("id", pa.int64()), ("title", pa.string())])
HOUR = 3600


class Lake:
    """A local lake and its catalog, and commits the way the trusted IO manager makes them."""

    def __init__(self, root: Path):
        self.root = root
        resource = LakeResource(root=str(root))
        self.catalog = open_catalog(resource)
        self.storage = resource.storage("trusted")

    def write(self, path: str, rows: list[int], day: str | None = None, *, rejected: bool = True) -> list[str]:
        """A write's files (one data file, one `_rejected/` file) in a folder of its own; returns the
        data file's key."""
        folder = f"{path}/dt={day}/{uuid.uuid4().hex[:8]}" if day else f"{path}/{uuid.uuid4().hex[:8]}"
        data = {"id": rows, "title": [f"t{r}" for r in rows]}
        if day:
            data["dt"] = [day] * len(rows)
        key = f"{folder}/part-00000.parquet"
        self._put(key, pa.table(data, schema=SCHEMA if day else FILMES_SCHEMA))
        if rejected:
            self._put(f"{folder}/_rejected/part-00000.parquet", pa.table({"id": [-1]}))
        return [key]

    def commit(self, path: str, rows: list[int], day: str | None = None) -> int:
        keys = self.write(path, rows, day)
        time.sleep(0.005)  # distinct snapshot timestamps, for `as_of`
        return iceberg.replace(
            self.catalog, self.storage, path, SCHEMA if day else FILMES_SCHEMA, keys, [day], "dt" if day else None
        )

    def table(self, path: str = TMDB):
        return iceberg.load(self.catalog, path)

    def files(self, path: str = TMDB, snapshot_id: int | None = None) -> dict:
        return iceberg.current_files(self.table(path), self.storage, snapshot_id=snapshot_id)

    def keys(self, path: str = TMDB, snapshot_id: int | None = None) -> set[str]:
        return {f.key for data in self.files(path, snapshot_id).values() for f in data}

    def read_files(self, keys) -> list[dict]:
        """Rows of these Parquet files, read with pyarrow alone (no Iceberg)."""
        return _rows(pa.concat_tables([pq.read_table(self.root / key) for key in sorted(keys)]))

    def on_disk(self, path: str = TMDB) -> set[str]:
        return {obj.key for obj in self.storage.list(f"{path}/")}

    def age(self, path: str = TMDB, seconds: int = 2 * HOUR) -> None:
        """Make every file of `path` look `seconds` old."""
        then = time.time() - seconds
        for key in self.on_disk(path):
            os.utime(self.root / key, (then, then))

    def _put(self, key: str, table: pa.Table) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, self.root / key)


def _rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: tuple(str(v) for v in row.values()))


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def test_expire_keeps_the_last_snapshots_and_deletes_only_old_unnamed_files(lake):
    day = "2024-03-01"
    lake.commit(TMDB, [100], "2024-02-29")  # another day, committed once: named by every snapshot
    writes = [lake.write(TMDB, [i, i + 1], day) for i in range(6)]
    for keys in writes:
        iceberg.replace(lake.catalog, lake.storage, TMDB, SCHEMA, keys, [day], "dt")
    table = lake.table()
    ordered = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    assert len(ordered) == 12  # the first commit of a day appends; each later one deletes, then appends
    keep_last = 4
    retained, dropped = ordered[-keep_last:], ordered[:-keep_last]
    named_by_retained = set().union(*(lake.keys(snapshot_id=s.snapshot_id) for s in retained))
    before = _rows(table.scan().to_arrow())

    old_orphan = lake.write(TMDB, [7], day)[0]  # writers killed between upload and commit
    lake.age()
    young_orphan = lake.write(TMDB, [8], day)[0]
    young_write = writes[1][0]  # an expired write uploaded less than the grace period ago: kept this time
    os.utime(lake.root / young_write)
    os.utime(lake.root / young_write.replace("part-", "_rejected/part-"))
    on_disk = lake.on_disk()

    report = expire(lake.table(), lake.storage, older_than=dt.datetime.now(dt.UTC), keep_last=keep_last)

    table = lake.table()
    assert set(report.expired) == {s.snapshot_id for s in dropped}
    assert set(report.kept) == {s.snapshot_id for s in retained} == {s.snapshot_id for s in table.snapshots()}
    assert table.current_snapshot().snapshot_id == ordered[-1].snapshot_id
    gone_data = {key for write in (writes[0], writes[2], writes[3], [old_orphan]) for key in write}
    gone_data |= {key.replace("part-", "_rejected/part-") for key in gone_data}
    gone_lists = {lake.storage.key_of(s.manifest_list) for s in dropped}
    deleted = set(report.deleted)
    assert {key for key in deleted if "/metadata/" not in key} == gone_data
    assert gone_lists <= deleted
    assert deleted == on_disk - lake.on_disk()
    assert not deleted & named_by_retained
    for key in (young_write, young_orphan, *named_by_retained):
        assert (lake.root / key).exists(), key
    for key in named_by_retained:  # a retained write's rejected rows stay with it
        assert (lake.root / key.replace("part-", "_rejected/part-")).exists()
    assert report.bytes_freed > 0 and report.metadata_bytes_after < report.metadata_bytes_before
    assert report.summary().startswith("trusted.tmdb: expired 8 snapshot(s), kept 4; deleted ")
    assert _rows(table.scan().to_arrow()) == before
    for snapshot in retained:  # every retained snapshot still reads: its manifests and files are there
        assert _rows(table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()) == lake.read_files(
            lake.keys(snapshot_id=snapshot.snapshot_id)
        )

    # keep_last=0 still keeps the current snapshot; the files it names survive any grace period
    report = expire(lake.table(), lake.storage, older_than=dt.datetime.now(dt.UTC), keep_last=0, grace_s=0)
    assert report.kept == (ordered[-1].snapshot_id,)
    assert _rows(lake.table().scan().to_arrow()) == before


def test_rollback_of_one_day_then_of_the_whole_table(lake):
    x, y, z = "2024-03-01", "2024-03-02", "2024-03-03"
    lake.commit(TMDB, [1, 2], x)
    a = lake.commit(TMDB, [3], y)  # A: x1, y1
    b = lake.commit(TMDB, [4, 5], z)  # B: x1, y1, z1
    lake.commit(TMDB, [6], x)
    lake.commit(TMDB, [7, 8, 9], y)  # now: x2, y2, z1
    files_a = lake.files(snapshot_id=a)
    before = lake.files()
    history = len(lake.table().history())

    result = rollback(lake.catalog, lake.storage, TMDB, snapshot_id=a, partition=x, run_id="r1")

    table = lake.table()
    assert result.snapshot_id == table.current_snapshot().snapshot_id and result.rolled_back_to == a
    assert result.partitions == {x: 2}
    assert len(table.history()) > history  # a new commit; nothing was rewound
    now = lake.files()
    assert {f.key for f in now[x]} == {f.key for f in files_a[x]}
    assert {p: {f.key for f in now[p]} for p in (y, z)} == {p: {f.key for f in before[p]} for p in (y, z)}  # untouched
    assert _rows(table.scan(row_filter=f"dt = '{x}'").to_arrow()) == lake.read_files(f.key for f in files_a[x])
    assert table.current_snapshot().summary.additional_properties[iceberg.RUN_ID_PROPERTY] == "r1"

    # The whole table, back to B by time: only y differs (x already is B's)
    as_of = dt.datetime.fromtimestamp((table.snapshot_by_id(b).timestamp_ms + 1) / 1000, dt.UTC)
    result = rollback(lake.catalog, lake.storage, TMDB, as_of=as_of)
    assert result.rolled_back_to == b and result.partitions == {y: 1}
    assert lake.keys() == lake.keys(snapshot_id=b)

    # ... and back to A: z, which A lacks, is emptied (a commit that only deletes)
    result = rollback(lake.catalog, lake.storage, TMDB, snapshot_id=a)
    assert result.partitions == {z: 0}
    assert set(lake.files()) == {x, y}
    assert _rows(lake.table().scan().to_arrow()) == lake.read_files(lake.keys(snapshot_id=a))

    # nothing differs: no commit
    current = lake.table().current_snapshot().snapshot_id
    assert rollback(lake.catalog, lake.storage, TMDB, snapshot_id=a).snapshot_id == current

    with pytest.raises(ValueError, match="no snapshot 42"):
        rollback(lake.catalog, lake.storage, TMDB, snapshot_id=42)
    with pytest.raises(ValueError, match=f"snapshot {a} has no partition dt={z}"):
        rollback(lake.catalog, lake.storage, TMDB, snapshot_id=a, partition=z)
    with pytest.raises(ValueError, match="had no snapshot"):
        rollback(lake.catalog, lake.storage, TMDB, as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


def test_rollback_and_expire_of_an_unpartitioned_table(lake):
    first = lake.commit(FILMES, [1, 2, 3])
    second = lake.commit(FILMES, [4])
    result = rollback(lake.catalog, lake.storage, FILMES, snapshot_id=first)
    assert result.partitions == {None: 3}
    assert _rows(lake.table(FILMES).scan().to_arrow()) == lake.read_files(lake.keys(FILMES, first))
    with pytest.raises(ValueError, match="not partitioned"):
        rollback(lake.catalog, lake.storage, FILMES, snapshot_id=first, partition="2024-03-01")

    first_write = lake.keys(FILMES, first)
    second_write = lake.keys(FILMES, second) - first_write
    lake.age(FILMES)
    report = expire(lake.table(FILMES), lake.storage, older_than=dt.datetime.now(dt.UTC), keep_last=1)
    # only the current snapshot is left, and it names the first write again: the second write goes
    gone = second_write | {key.replace("part-", "_rejected/part-") for key in second_write}
    assert {key for key in report.deleted if "/metadata/" not in key} == gone
    assert lake.keys(FILMES) == first_write
    assert _rows(lake.table(FILMES).scan().to_arrow()) == lake.read_files(first_write)


def test_time_travel_reads_the_files_a_snapshot_names(lake):
    snapshots = [lake.commit(TMDB, rows, day) for rows, day in (([1], "2024-03-01"), ([2, 3], "2024-03-02"), ([4], "2024-03-01"))]
    table = lake.table()
    for snapshot_id in [*snapshots, *(s.snapshot_id for s in table.snapshots())]:
        assert _rows(table.scan(snapshot_id=snapshot_id).to_arrow()) == lake.read_files(lake.keys(snapshot_id=snapshot_id))
