"""The raw-arrival sensor evaluated against a real lake (a local folder and a bucket on the test S3)
and a real, persistent Dagster instance. `Daemon` does with each tick's result what the sensor
daemon does: stores the asset events, keeps the cursor, and skips run requests whose run key it has
already launched."""

import datetime as dt
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    SensorResult,
    build_sensor_context,
    materialize,
)

from lake_assets.defs import sensors
from lake_assets.defs.assets import raw
from lake_assets.defs.io_managers.raw import RawZoneIOManager
from lake_assets.defs.resources.lake import LakeResource
from lake_assets.defs.resources.tmdb import TMDBResource
from lake_assets.defs.sensors import raw_arrivals_sensor
from lake_assets.lib.raw_listing import NEW_FOLDER_WATCH_S, RESCAN_INTERVAL_S
from lake_assets.lib.storage.s3 import S3Storage
from lake_tools.seed_history import seed

RAW_TMDB, RAW_FILMES = AssetKey(["raw", "tmdb_json"]), AssetKey(["raw", "filmes_csv"])
TRUSTED_TMDB = AssetKey(["trusted", "tmdb"])
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
RECORDS = [{"id": i, "title": f"movie {i}"} for i in range(1, 41)]


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path) -> LakeResource:
    if request.param == "local":
        return LakeResource(root=str(tmp_path / "lake"))
    root = request.getfixturevalue("s3_lake_root")
    return LakeResource(
        root=root, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"], s3_path_style=True
    )


@pytest.fixture(autouse=True)
def local_time_resolution(request, monkeypatch):
    """S3's LastModified has whole seconds, hence the sensor's one-second margin; a local lake's mtimes
    are exact to a few milliseconds. On a local lake the margin, and what settle() waits, is 0.1 s:
    the unit tier then sleeps ~3 s instead of ~30 s. The S3 cases keep the sensor's own margin."""
    if getattr(request.node, "callspec", None) is None or request.node.callspec.params.get("lake") != "s3":
        monkeypatch.setattr(sensors, "MODIFIED_RESOLUTION_S", 0.1)


class Daemon:
    def __init__(self, instance: DagsterInstance, lake: LakeResource, queue=None, log=None):
        self.instance, self.lake, self.queue, self.log = instance, lake, queue, log
        self.cursor: str | None = None
        self.launched: dict[str, object] = {}  # run key -> request

    def evaluate(self, cursor: str | None = None) -> SensorResult:
        context = build_sensor_context(
            instance=self.instance, cursor=cursor, resources={"lake": self.lake}, sensor_name=sensors.SENSOR_NAME
        )
        return raw_arrivals_sensor(context)

    def tick(self, now: float | None = None) -> tuple[list, list]:
        """(asset events stored, run requests launched) by one tick (at `now`, default the real clock)."""
        if now is None and self.queue is None and self.log is None:
            result = self.evaluate(self.cursor)
        else:
            context = build_sensor_context(
                instance=self.instance, cursor=self.cursor, resources={"lake": self.lake}, sensor_name=sensors.SENSOR_NAME
            )
            if self.log is not None:
                context._logger = self.log  # the tick's log, where the UI shows it, made readable here
            result = sensors.evaluate(context, self.lake, now=time.time() if now is None else now, queue=self.queue)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = result.cursor
        launched = [r for r in result.run_requests or [] if r.run_key not in self.launched]
        self.launched.update((r.run_key, r) for r in launched)
        return list(result.asset_events), launched


def settle():
    """Wait until what was just written is old enough to register (see MODIFIED_RESOLUTION_S)."""
    time.sleep(sensors.MODIFIED_RESOLUTION_S)


def _partitions(events, key=RAW_TMDB):
    return sorted(e.partition for e in events if e.asset_key == key)


def _targets(requests):
    """Each request as (asset, partition or 'start...end' or None)."""
    out = []
    for r in requests:
        (key,) = r.asset_selection
        span = r.partition_key or (
            f"{r.tags[sensors.RANGE_START_TAG]}...{r.tags[sensors.RANGE_END_TAG]}" if sensors.RANGE_START_TAG in r.tags else None
        )
        out.append((key.to_user_string(), span))
    return sorted(out, key=str)


def _own_raw_tmdb_run(instance, lake, partition, io_manager=None):
    """raw/tmdb_json materialised by the project itself (the offline snapshot, no Spark)."""
    return materialize(
        [raw.tmdb_json],
        partition_key=partition,
        instance=instance,
        resources={"lake": lake, "tmdb": TMDBResource(), "raw_io_manager": io_manager or RawZoneIOManager(lake=lake)},
        run_config={"ops": {"raw__tmdb_json": {"config": {"allow_past_date": True}}}},
    )


def test_external_history_registers_each_date_and_requests_contiguous_ranges(lake, instance):
    seed(lake, dt.date(2024, 1, 1), 3, RECORDS)
    seed(lake, dt.date(2024, 1, 5), 1, RECORDS)
    settle()
    daemon = Daemon(instance, lake)

    events, requests = daemon.tick()

    assert _partitions(events) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05"]
    # The gap at 01-04 splits the range: a range run fails on a date without raw files.
    assert _targets(requests) == [("trusted/tmdb", "2024-01-01...2024-01-03"), ("trusted/tmdb", "2024-01-05")]
    metadata = {e.partition: e.metadata for e in events}
    assert metadata["2024-01-05"]["files"].value == 1  # 40 records, one JSONL file; the manifest is not data
    assert metadata["2024-01-05"]["path"].value.endswith("raw/tmdb/dt=2024-01-05")
    assert daemon.tick() == ([], [])

    seed(lake, dt.date(2024, 1, 6), 1, RECORDS)  # beyond the high-water mark
    settle()
    events, requests = daemon.tick()
    assert _partitions(events) == ["2024-01-06"]
    assert _targets(requests) == [("trusted/tmdb", "2024-01-06")]


def test_files_younger_than_the_time_resolution_wait_one_tick(lake, instance):
    lake.storage("raw").put_bytes(b'{"id": 1}\n', "raw/tmdb/dt=2024-01-01/a.jsonl")
    (obj,) = lake.storage("raw").list("raw/tmdb/")
    context = build_sensor_context(instance=instance, resources={"lake": lake})

    young = sensors.evaluate(context, lake, now=obj.modified + sensors.MODIFIED_RESOLUTION_S / 2)
    assert young.asset_events == [] and json.loads(young.cursor)["pending"][0] == obj.key

    context = build_sensor_context(instance=instance, resources={"lake": lake}, cursor=young.cursor)
    settled = sensors.evaluate(context, lake, now=obj.modified + sensors.MODIFIED_RESOLUTION_S)
    assert _partitions(settled.asset_events) == ["2024-01-01"] and len(settled.run_requests) == 1
    assert json.loads(settled.cursor)["pending"] == []


def test_filmes_csv_new_and_replaced(lake, instance):
    storage = lake.storage("raw")
    daemon = Daemon(instance, lake)
    assert daemon.tick() == ([], [])

    storage.put_bytes(b"id,titulo\n1,a\n", "raw/filmes/filmes.csv")
    storage.put_bytes(b"not watched", "raw/filmes/filmes.csv.bak")
    settle()
    events, requests = daemon.tick()
    assert [(e.asset_key, e.partition) for e in events] == [(RAW_FILMES, None)]
    assert _targets(requests) == [("trusted/filmes", None)]
    assert daemon.tick() == ([], [])

    storage.put_bytes(b"id,titulo\n1,b\n", "raw/filmes/filmes.csv")  # same key, same size, new content
    settle()
    events, requests = daemon.tick()
    assert [(e.asset_key, e.partition) for e in events] == [(RAW_FILMES, None)]
    assert _targets(requests) == [("trusted/filmes", None)]
    assert daemon.tick() == ([], [])


def test_replaced_and_added_files_in_todays_partition(lake, instance):
    storage = lake.storage("raw")
    folder = f"raw/tmdb/dt={TODAY}"
    storage.put_bytes(b'{"id": 1}\n', f"{folder}/b.jsonl")
    settle()
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    assert _partitions(events) == [TODAY] and _targets(requests) == [("trusted/tmdb", TODAY)]

    storage.put_bytes(b'{"id": 2}\n', f"{folder}/b.jsonl")  # replaced: same key and size
    settle()
    events, requests = daemon.tick()
    assert _partitions(events) == [TODAY] and _targets(requests) == [("trusted/tmdb", TODAY)]

    storage.put_bytes(b'{"id": 3}\n', f"{folder}/a.jsonl")  # sorts below the high-water mark
    storage.put_bytes(b"{}", f"{folder}/_manifest.json")  # `_` names are never data
    settle()
    events, requests = daemon.tick()
    assert _partitions(events) == [TODAY]
    assert events[0].metadata["landed_files"].value == ["a.jsonl", "b.jsonl"]
    assert daemon.tick() == ([], [])
    assert len(daemon.launched) == 3


def test_files_below_the_high_water_mark_are_found_by_the_hourly_rescan(lake, instance):
    seed(lake, dt.date(2024, 1, 1), 1, RECORDS)
    seed(lake, dt.date(2024, 1, 10), 1, RECORDS)
    settle()
    daemon = Daemon(instance, lake)
    daemon.tick()
    storage = lake.storage("raw")
    storage.put_bytes(b'{"id": 7}\n', "raw/tmdb/dt=2024-01-05/late.jsonl")  # an older date: below the mark
    storage.put_bytes(b'{"id": 8}\n', "raw/tmdb/dt=2024-01-01/part-00000-late.jsonl")

    assert daemon.tick() == ([], [])  # incremental: not seen yet

    settle()
    cursor = json.loads(daemon.cursor)
    cursor["rescanned_at"] -= RESCAN_INTERVAL_S
    daemon.cursor = json.dumps(cursor)
    events, requests = daemon.tick()
    assert _partitions(events) == ["2024-01-01", "2024-01-05"]
    assert _targets(requests) == [("trusted/tmdb", "2024-01-01"), ("trusted/tmdb", "2024-01-05")]
    assert daemon.tick() == ([], [])


def test_own_runs_do_not_trigger_even_mid_run(lake, instance):
    """The project's own raw run: files written, then the materialisation recorded. A tick in between
    defers them; ticks after it ignore them, on the first tick and after re-materialisation alike."""
    daemon = Daemon(instance, lake)
    mid_run = []

    class TickAfterWrite(RawZoneIOManager):
        def handle_output(self, context, obj):
            super().handle_output(context, obj)
            mid_run.append(daemon.tick())

    assert _own_raw_tmdb_run(instance, lake, TODAY, TickAfterWrite(lake=lake)).success
    assert mid_run == [([], [])]
    assert json.loads(daemon.cursor)["pending"]  # written, deferred behind the running run
    assert daemon.tick() == ([], [])
    assert json.loads(daemon.cursor)["pending"] == []

    assert _own_raw_tmdb_run(instance, lake, TODAY).success  # replaces today's files
    assert _own_raw_tmdb_run(instance, lake, "2024-02-01").success  # beyond the high-water mark
    assert daemon.tick() == ([], [])
    assert Daemon(instance, lake).tick() == ([], [])  # a fresh cursor lists all: the data versions are the same

    lake.storage("raw").put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={TODAY}/extra.jsonl")  # someone else's file
    settle()
    events, requests = daemon.tick()
    assert _partitions(events) == [TODAY] and _targets(requests) == [("trusted/tmdb", TODAY)]


def test_run_keys_make_a_repeated_tick_idempotent(lake, instance):
    seed(lake, dt.date(2024, 1, 1), 2, RECORDS)
    settle()
    daemon = Daemon(instance, lake)
    first = daemon.evaluate(None)
    again = daemon.evaluate(None)
    assert len(first.run_requests) == 1
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in again.run_requests]

    # The daemon launched the first result's runs, then died before storing its events and cursor:
    # the next tick registers the partitions, and its run request is the one already launched.
    daemon.launched = {r.run_key: r for r in first.run_requests}
    events, launched = daemon.tick()
    assert _partitions(events) == ["2024-01-01", "2024-01-02"] and launched == []


def test_reset_or_unreadable_cursor_registers_nothing_twice(lake, instance):
    seed(lake, dt.date(2024, 1, 1), 2, RECORDS)
    lake.storage("raw").put_bytes(b"id\n1\n", "raw/filmes/filmes.csv")
    settle()
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    assert len(events) == 3 and len(requests) == 2

    for cursor in (None, "not json", '{"v": 1}'):
        daemon.cursor = cursor
        assert daemon.tick() == ([], [])
    # and the state it rebuilt still sees the next arrival
    seed(lake, dt.date(2024, 1, 3), 1, RECORDS)
    settle()
    events, _ = daemon.tick()
    assert _partitions(events) == ["2024-01-03"]


def test_a_backfill_before_the_days_were_registered_is_rebuilt_once(lake, instance):
    """History seeded, trusted/tmdb backfilled from the UI, then the sensor turned on: Dagster had no
    record of the raw days the backfill read, so it shows them stale once registered; the sensor
    requests them once, and the UI's lineage is then true."""
    from dagster import BackfillPolicy, asset

    from lake_assets.defs.partitions import daily_partitions

    seed(lake, dt.date(2024, 1, 1), 3, RECORDS)

    @asset(key=TRUSTED_TMDB, partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run())
    def stand_in_for_trusted_tmdb() -> None:  # records materialisations without Spark
        return None

    settle()
    materialize(
        [stand_in_for_trusted_tmdb],
        instance=instance,
        tags={sensors.RANGE_START_TAG: "2024-01-01", sensors.RANGE_END_TAG: "2024-01-02"},
    )
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    assert _partitions(events) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert _targets(requests) == [("trusted/tmdb", "2024-01-01...2024-01-03")]
    assert daemon.tick() == ([], [])


def _fill(storage, days: int, per_day: int) -> None:
    start = dt.date(2024, 1, 1)
    keys = [
        f"raw/tmdb/dt={(start + dt.timedelta(days=d)).isoformat()}/part-{n:05d}.jsonl"
        for d in range(days)
        for n in range(per_day)
    ]
    with ThreadPoolExecutor(16 if isinstance(storage, S3Storage) else 1) as pool:
        list(pool.map(lambda key: storage.put_bytes(b'{"id": 1}\n', key), keys))


def test_a_tick_after_the_first_reads_only_new_objects(lake, instance, listings):
    """2,000 objects on either backend, twice what a tick counts rows of: more only cost time (20,000
    local objects took 10 s of the unit tier; this S3 server takes ~80 s to take 20,000 PUTs on two
    cores). bench/bench_backfill_sensor.py times ticks on 20,000 S3 objects."""
    days = 20
    storage = lake.storage("raw")
    _fill(storage, days=days, per_day=100)
    settle()
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    last_day = (dt.date(2024, 1, 1) + dt.timedelta(days=days - 1)).isoformat()
    assert len(events) == days and _targets(requests) == [("trusted/tmdb", f"2024-01-01...{last_day}")]
    # The row counts list the registered days' folders again, until the tick's budget is spent.
    counted = [c for c in listings if c["prefix"].startswith("raw/tmdb/dt=2024-")]
    assert sum(c["objects"] for c in listings if c not in counted) == days * 100
    assert len(counted) <= sensors.ROW_COUNT_FILES_PER_TICK // 100 + 1
    assert sum(e.metadata.get("dagster/row_count") is not None for e in events) == min(
        days, sensors.ROW_COUNT_FILES_PER_TICK // 100
    )

    listings.clear()
    new_day = (dt.date(2024, 1, 1) + dt.timedelta(days=days)).isoformat()
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={new_day}/a.jsonl")
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={new_day}/b.jsonl")
    settle()
    events, requests = daemon.tick()
    assert _partitions(events) == [new_day] and _targets(requests) == [("trusted/tmdb", new_day)]
    # one delimiter listing of the dt= folders, one incremental listing of raw/tmdb/, the filmes key,
    # today's and yesterday's folders, the new folder (watched for a few minutes: see the sensor), and
    # the new folder again for its row count
    assert [c["prefix"] for c in listings if c.get("folders")] == ["raw/tmdb/"]
    objects = [c for c in listings if not c.get("folders")]
    assert len(objects) == 6
    assert sum(c["objects"] for c in objects) == 6  # the 2 new objects, each seen by three listings
    assert events[0].metadata["dagster/row_count"].value == 2
    (incremental,) = [c for c in objects if c["prefix"] == "raw/tmdb/"]
    assert incremental["start_after"] == f"raw/tmdb/dt={last_day}/part-00099.jsonl"

    listings.clear()
    assert daemon.tick() == ([], [])
    assert sum(c["objects"] for c in listings) == 2  # the watched new folder: its ETags, unchanged
    assert len([c for c in listings if c.get("folders")]) == 1


def test_the_seed_layout_is_read_through_the_same_dt_rule(tmp_path, instance):
    """LAKE_DT_LAYOUT=seed lands `dt=2024/01/05/`: the sensor maps folders to partitions with the
    project's one dt= rule, so it registers the same partitions."""
    lake = LakeResource(root=str(tmp_path / "lake"), dt_layout="seed")
    seed(lake, dt.date(2024, 1, 5), 2, RECORDS)
    assert (tmp_path / "lake" / "raw" / "tmdb" / "dt=2024" / "01" / "05").is_dir()
    settle()
    daemon = Daemon(instance, lake)
    events, requests = daemon.tick()
    assert _partitions(events) == ["2024-01-05", "2024-01-06"]
    assert _targets(requests) == [("trusted/tmdb", "2024-01-05...2024-01-06")]

    seed(lake, dt.date(2024, 1, 2), 1, RECORDS)  # an older day, three folder levels down
    settle()
    events, _ = daemon.tick()
    assert _partitions(events) == ["2024-01-02"]


def test_older_date_folders_landed_after_today_are_requested_on_the_next_tick(lake, instance, listings):
    """A history drop below the high-water mark: the incremental listing cannot see it, the per-tick
    delimiter listing of the dt= folders does."""
    storage = lake.storage("raw")
    storage.put_bytes(b'{"id": 1}\n', f"raw/tmdb/dt={TODAY}/part-00000.jsonl")
    settle()
    daemon = Daemon(instance, lake)
    events, _ = daemon.tick()
    assert _partitions(events) == [TODAY]

    older = ["2024-01-05", "2024-01-06", "2024-01-09"]
    for day in older:
        seed(lake, dt.date.fromisoformat(day), 1, RECORDS)
    settle()
    listings.clear()
    events, requests = daemon.tick()
    assert _partitions(events) == older  # all three on the first tick after they landed
    assert _targets(requests) == [("trusted/tmdb", "2024-01-05...2024-01-06"), ("trusted/tmdb", "2024-01-09")]
    assert [c["prefix"] for c in listings if c.get("folders")] == ["raw/tmdb/"]  # one request for all folders
    assert {c["prefix"] for c in listings if not c.get("folders")} >= {f"raw/tmdb/dt={day}/" for day in older}
    assert daemon.tick() == ([], [])


def test_a_new_folder_is_watched_while_it_fills_then_left_to_the_hourly_rescan(lake, instance):
    storage = lake.storage("raw")
    seed(lake, dt.date(2024, 1, 20), 1, RECORDS)
    settle()
    daemon = Daemon(instance, lake)
    first = time.time()
    daemon.tick(first)

    storage.put_bytes(b'{"id": 1}\n', "raw/tmdb/dt=2024-01-10/part-00000.jsonl")  # an upload starts below the mark
    settle()
    appeared = time.time()
    events, _ = daemon.tick(appeared)
    assert _partitions(events) == ["2024-01-10"]
    storage.put_bytes(b'{"id": 2}\n', "raw/tmdb/dt=2024-01-10/part-00001.jsonl")  # ... and goes on
    settle()
    events, requests = daemon.tick(time.time())
    assert _partitions(events) == ["2024-01-10"] and events[0].metadata["files"].value == 2
    assert len(requests) == 1

    # Once the folder is no longer new, a file added to it waits for the hourly rescan.
    storage.put_bytes(b'{"id": 3}\n', "raw/tmdb/dt=2024-01-10/part-00002.jsonl")
    settle()
    assert daemon.tick(appeared + NEW_FOLDER_WATCH_S + 1) == ([], [])
    events, _ = daemon.tick(first + RESCAN_INTERVAL_S + 1)
    assert _partitions(events) == ["2024-01-10"] and events[0].metadata["files"].value == 3


def test_a_cursor_from_before_folder_tracking_treats_no_folder_as_new(lake, instance, listings):
    seed(lake, dt.date(2024, 1, 1), 3, RECORDS)
    settle()
    daemon = Daemon(instance, lake)
    daemon.tick()
    old = json.loads(daemon.cursor)
    del old["folders"], old["new_folders"]
    daemon.cursor = json.dumps(old)
    listings.clear()
    assert daemon.tick() == ([], [])
    assert not [c for c in listings if c["prefix"].startswith("raw/tmdb/dt=2024-01-0")]  # no folder listed in full
    assert json.loads(daemon.cursor)["folders"] == [["2024-01-01", "2024-01-03"]]


def _landed_records(lake: LakeResource, folder: str) -> int:
    """Non-blank lines of the data files in a raw folder, read with boto3 or from disk, not through the lake code."""
    if lake.root.startswith("s3://"):
        import boto3

        bucket, prefix = lake.root.removeprefix("s3://").split("/", 1)
        client = boto3.client("s3", endpoint_url=lake.endpoint_url, region_name=lake.region_name)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/{folder}/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].rsplit("/", 1)[1].startswith("_")]
        texts = [client.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys]
    else:
        texts = [p.read_text() for p in (Path(lake.root) / folder).glob("*") if not p.name.startswith("_")]
    return sum(1 for text in texts for line in text.splitlines() if line.strip())


def _registered_row_count(instance, partition):
    (record,) = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=RAW_TMDB, asset_partitions=[partition]), limit=1
    ).records
    entry = record.asset_materialization.metadata.get("dagster/row_count")
    return entry.value if entry is not None else None


def test_a_registered_day_has_the_row_count_of_all_its_files(lake, instance):
    storage = lake.storage("raw")
    seed(lake, dt.date(2024, 1, 1), 1, RECORDS)
    storage.put_bytes(b'{"id": 1}\n\n{"id": 2}\n  \n{"id": 3}', "raw/tmdb/dt=2024-01-02/a.jsonl")  # blank lines are no records
    storage.put_bytes(b'{"files": []}\n', "raw/tmdb/dt=2024-01-02/_manifest.json")
    settle()
    daemon = Daemon(instance, lake)
    daemon.tick()
    assert _registered_row_count(instance, "2024-01-01") == _landed_records(lake, "raw/tmdb/dt=2024-01-01")
    assert _registered_row_count(instance, "2024-01-02") == _landed_records(lake, "raw/tmdb/dt=2024-01-02") == 3

    storage.put_bytes(b'{"id": 4}\n{"id": 5}\n', "raw/tmdb/dt=2024-01-02/b.jsonl")  # arrives later: counted with a.jsonl
    settle()
    events, _ = daemon.tick()
    assert [e.metadata["files"].value for e in events] == [2]
    assert _registered_row_count(instance, "2024-01-02") == _landed_records(lake, "raw/tmdb/dt=2024-01-02") == 5


def test_days_past_the_tick_s_reading_budget_are_registered_without_a_count(lake, instance, monkeypatch):
    storage = lake.storage("raw")
    storage.put_bytes(b'{"id": 1}\n', "raw/tmdb/dt=2024-01-01/a.jsonl")
    storage.put_bytes(b'{"id": 2}\n{"id": 3}\n', "raw/tmdb/dt=2024-01-02/a.jsonl")
    monkeypatch.setattr(sensors, "ROW_COUNT_BYTES_PER_TICK", 15)  # the first day's 10 bytes, not the second's 20
    settle()
    events, requests = Daemon(instance, lake).tick()
    assert _partitions(events) == ["2024-01-01", "2024-01-02"] and len(requests) == 1
    assert _registered_row_count(instance, "2024-01-01") == 1
    assert _registered_row_count(instance, "2024-01-02") is None
