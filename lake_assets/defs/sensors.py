"""The raw-arrival sensor: raw files that land from outside Dagster become materialisations of the raw
assets, and runs of the trusted assets that read them.

A tick lists incrementally (`start_after` the last key it saw), lists the `dt=` folders with a
delimiter and watches new ones, today's and yesterday's folders and `filmes.csv` in full with ETags in
the cursor, and the whole prefix once an hour; it ignores bookkeeping names and the project's own
writes, and hashes arriving files into run keys. The design, and why each rule is there: docs/sensor.md.
"""

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    partition_loading_context,
    sensor,
)

from lake_assets.defs.assets import raw, trusted
from lake_assets.defs.automation import SETTINGS
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources import LakeResource
from lake_assets.lib import registry
from lake_assets.lib.partitions import DtLayout, dt_path, partition_key_from_path
from lake_assets.lib.raw_listing import CHANGED, FILMES_KEY, TMDB_PREFIX, UNKNOWN, Cursor, digest, look
from lake_assets.lib.raw_zone import json_lines_records, landed_files
from lake_assets.lib.storage import ObjectInfo, Storage, is_hidden

SENSOR_NAME = "raw_arrivals_sensor"
TICK_INTERVAL_S = 30
# S3 reports LastModified in whole seconds, so a time comparison is only certain beyond this margin.
# The sensor registers an object only once it is this much older than the tick (a younger one waits
# one tick): every object it registered is then older than the registration by the margin, and
# anything that lands after a registration is newer than it minus the margin.
MODIFIED_RESOLUTION_S = 1.0
# Dagster's own tags for a run over a range of partitions (what a single-run backfill sets).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
_ACTIVE_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_MAX_FILES_IN_METADATA = 20
# A registered day's dagster/row_count lists its folder and reads its files: a listing gives sizes, not
# records. Raw TMDB days are a few hundred KB in a few files, but a history drop registers hundreds of
# days in one tick, which must end within the daemon's evaluation timeout (one S3 GET is ~5 ms): past
# either bound in a tick, further days are registered without a count.
ROW_COUNT_BYTES_PER_TICK = 64 * 1024 * 1024
ROW_COUNT_FILES_PER_TICK = 1000


TRUSTED_OF = {AssetKey(source.key): AssetKey(table.key) for source, table in registry.TRUSTED_OF.items()}


@dataclass(frozen=True, order=True)
class Target:
    """One raw asset partition that files land in (partition None: the unpartitioned filmes)."""

    asset_key: AssetKey
    partition: str | None

    @property
    def trusted_key(self) -> AssetKey:
        return TRUSTED_OF[self.asset_key]


@sensor(
    name=SENSOR_NAME,
    target=[trusted.filmes, trusted.tmdb],
    minimum_interval_seconds=TICK_INTERVAL_S,
    default_status=SETTINGS.raw_sensor_default_status,
    description=(
        "Files landed in the raw zone from outside Dagster (raw/filmes/filmes.csv, raw/tmdb/dt=D/) register a "
        "materialisation of raw/filmes_csv or raw/tmdb_json[D] and request trusted/filmes or trusted/tmdb[D] "
        "(contiguous dates as one range run). Files the project's own runs wrote are ignored."
    ),
)
def raw_arrivals_sensor(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult:
    return evaluate(context, lake, now=time.time())


def evaluate(context: SensorEvaluationContext, lake: LakeResource, now: float) -> SensorResult:
    try:
        cursor = Cursor.parse(context.cursor)
    except (ValueError, KeyError, TypeError, IndexError):
        context.log.warning(f"{SENSOR_NAME}: unreadable cursor, starting over with a full listing")
        cursor = Cursor()
    storage = lake.storage("raw")
    found, cursor = look(storage, cursor, lake.layout, now, lambda day: _is_partition(day, now))

    by_target: dict[Target, list[tuple[ObjectInfo, str]]] = defaultdict(list)
    for obj, how in found:
        target = _target(obj.key, lake.layout)
        if target is not None:
            by_target[target].append((obj, how))
    outside = sorted(t.partition for t in by_target if t.partition is not None and not _is_partition(t.partition, now))
    if outside:
        context.log.warning(
            f"{SENSOR_NAME}: ignored files under {TMDB_PREFIX} for dates outside the daily partitions: {outside[:5]}"
        )

    judge = _Judge(context.instance)
    counter = _RecordCounter(storage, ROW_COUNT_BYTES_PER_TICK, ROW_COUNT_FILES_PER_TICK)
    events, requests, deferred, registered_only = [], defaultdict(list), [], []
    for target in sorted(by_target):
        if target.partition in outside:
            continue
        arrivals = judge.arrivals(target, by_target[target])
        if not arrivals:
            continue
        # Still landing (see MODIFIED_RESOLUTION_S), or being written by a run: judged again next tick.
        if any(obj.modified + MODIFIED_RESOLUTION_S > now for obj, _ in arrivals) or judge.in_flight(target):
            deferred.extend(arrivals)
            continue
        objects = [obj for obj, _ in arrivals]
        events.append(_materialization(storage, target, objects, lake.layout, counter))
        if judge.trusted_already_read(target, arrivals):
            registered_only.append(target)
        else:
            requests[target.trusted_key].append((target, objects))
    cursor.pending = deferred

    run_requests = [request for key, items in sorted(requests.items()) for request in _run_requests(key, items)]
    if deferred:
        context.log.info(
            f"{SENSOR_NAME}: {len(deferred)} file(s) deferred to the next tick: still landing, or a run is materialising their raw partition"
        )
    if registered_only:
        context.log.info(
            f"{SENSOR_NAME}: registered {len(registered_only)} raw partition(s) whose trusted partition was computed "
            "after the files landed; no run requested for them"
        )
    if counter.uncounted:
        context.log.warning(
            f"{SENSOR_NAME}: {counter.uncounted} raw partition(s) registered without dagster/row_count: "
            f"more than {ROW_COUNT_FILES_PER_TICK} files or {ROW_COUNT_BYTES_PER_TICK // 2**20} MiB to read in one tick"
        )
    if not events:
        return SensorResult(skip_reason=f"no new raw files ({len(deferred)} deferred)", cursor=cursor.dumps())
    return SensorResult(run_requests=run_requests, asset_events=events, cursor=cursor.dumps())


def _is_partition(partition: str, now: float) -> bool:
    with partition_loading_context(effective_dt=dt.datetime.fromtimestamp(now, dt.UTC)):
        return daily_partitions.has_partition_key(partition)


def _target(key: str, layout: DtLayout) -> Target | None:
    if key == FILMES_KEY:
        return Target(raw.filmes_csv.key, None)
    if not key.startswith(TMDB_PREFIX):
        return None
    below_table = key[len(TMDB_PREFIX) :]
    partition = partition_key_from_path(below_table, layout)
    if partition is None:
        return None
    if is_hidden(below_table[len(dt_path(partition, layout)) + 1 :]):
        return None
    return Target(raw.tmdb_json.key, partition)


class _Judge:
    """Answers, from the Dagster instance, which listed objects are arrivals and what to do with them."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance
        self._planned: set[tuple[AssetKey, str | None]] | None = None

    def arrivals(self, target: Target, objects: Iterable[tuple[ObjectInfo, str]]) -> list[tuple[ObjectInfo, str]]:
        latest_any, latest_by_run = self._raw_materialized_at(target)
        arrivals = []
        for obj, how in objects:
            # Written by the project's own run: the run recorded its materialisation after writing.
            if latest_by_run is not None and obj.modified <= latest_by_run:
                continue
            # No memory of this object: it was handled if a materialisation came after it landed.
            if how == UNKNOWN and latest_any is not None and obj.modified + MODIFIED_RESOLUTION_S <= latest_any:
                continue
            arrivals.append((obj, how))
        return arrivals

    def _raw_materialized_at(self, target: Target) -> tuple[float | None, float | None]:
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=target.asset_key, asset_partitions=[target.partition] if target.partition else None),
            limit=10,
        ).records
        latest_any = records[0].timestamp if records else None
        latest_by_run = next((r.timestamp for r in records if r.run_id), None)
        return latest_any, latest_by_run

    def in_flight(self, target: Target) -> bool:
        """A queued or running run plans to materialise this raw partition (and may be writing it now)."""
        if self._planned is None:
            self._planned = set()
            for run in self.instance.get_runs(RunsFilter(statuses=_ACTIVE_RUN_STATUSES)):
                planned = self.instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
                for record in planned.records:
                    # Records of this type always carry a DagsterEvent with planned-materialisation data.
                    data = record.event_log_entry.get_dagster_event().asset_materialization_planned_data
                    if data.partitions_subset is not None:
                        self._planned.update((data.asset_key, key) for key in data.partitions_subset.get_partition_keys())
                    else:
                        self._planned.add((data.asset_key, data.partition))
        return (target.asset_key, target.partition) in self._planned

    def trusted_already_read(self, target: Target, arrivals: list[tuple[ObjectInfo, str]]) -> bool:
        """Only for objects the sensor has no memory of: did the latest trusted run start after they landed?"""
        if any(how == CHANGED for _, how in arrivals):
            return False
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=target.trusted_key, asset_partitions=[target.partition] if target.partition else None),
            limit=1,
        ).records
        if not records or not records[0].run_id:
            return False
        run = self.instance.get_run_record_by_id(records[0].run_id)
        started = run.start_time if run else None
        return started is not None and max(obj.modified for obj, _ in arrivals) + MODIFIED_RESOLUTION_S <= started


def _materialization(
    storage: Storage, target: Target, objects: list[ObjectInfo], layout: DtLayout, counter: "_RecordCounter"
) -> AssetMaterialization:
    where = FILMES_KEY if target.partition is None else f"{TMDB_PREFIX}{dt_path(target.partition, layout)}"
    keys = sorted(obj.key for obj in objects)
    metadata: dict[str, MetadataValue | int] = {
        "path": MetadataValue.path(storage.uri(where)),
        "arrived_files": len(objects),
        "arrived_bytes": sum(obj.size for obj in objects),
        "last_modified": MetadataValue.timestamp(max(obj.modified for obj in objects)),
        "files": MetadataValue.json(keys[:_MAX_FILES_IN_METADATA] + (["…"] if len(keys) > _MAX_FILES_IN_METADATA else [])),
    }
    records = None if target.partition is None else counter.records(f"{where}/")
    if records is not None:
        metadata["dagster/row_count"] = MetadataValue.int(records)
    return AssetMaterialization(
        asset_key=target.asset_key,
        partition=target.partition,
        description=f"{len(objects)} file(s) landed from outside Dagster; registered by {SENSOR_NAME}",
        metadata=metadata,
    )


class _RecordCounter:
    """Records (non-blank JSON lines) of a raw TMDB day, across all its data files, arrived or not,
    within the tick's budget of bytes and files."""

    def __init__(self, storage: Storage, budget_bytes: int, budget_files: int):
        self.storage, self.bytes, self.files = storage, budget_bytes, budget_files
        self.uncounted = 0

    def records(self, folder: str) -> int | None:
        if self.files <= 0:
            self.uncounted += 1
            return None
        files = landed_files(self.storage, folder)
        size = sum(obj.size for obj in files)
        if size > self.bytes or len(files) > self.files:
            self.uncounted += 1
            self.files = 0  # a day too big for what is left: the budget is spent, list no further folder
            return None
        self.bytes, self.files = self.bytes - size, self.files - len(files)
        return sum(json_lines_records(self.storage, obj.key) for obj in files)


def _run_requests(trusted_key: AssetKey, items: list[tuple[Target, list[ObjectInfo]]]) -> list[RunRequest]:
    """One run for the unpartitioned asset; one run per contiguous range of dates for a daily one."""
    name = trusted_key.to_user_string()
    if items[0][0].partition is None:
        objects = [obj for _, objs in items for obj in objs]
        return [RunRequest(run_key=f"{name}:{digest(objects)}", asset_selection=[trusted_key])]
    requests = []
    for chunk in _contiguous(sorted(items, key=lambda item: _day(item[0]))):
        start, end = _day(chunk[0][0]), _day(chunk[-1][0])
        objects = [obj for _, objs in chunk for obj in objs]
        if start == end:
            requests.append(
                RunRequest(run_key=f"{name}:{start}:{digest(objects)}", asset_selection=[trusted_key], partition_key=start)
            )
        else:
            requests.append(
                RunRequest(
                    run_key=f"{name}:{start}...{end}:{digest(objects)}",
                    asset_selection=[trusted_key],
                    tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
                )
            )
    return requests


def _day(target: Target) -> str:
    """The partition of a daily target: only the unpartitioned filmes has none, and never reaches here."""
    if target.partition is None:
        raise ValueError(f"{target.asset_key.to_user_string()} has no partition: not a daily target")
    return target.partition


def _contiguous(items: list[tuple[Target, list[ObjectInfo]]]) -> Iterator[list[tuple[Target, list[ObjectInfo]]]]:
    chunk: list[tuple[Target, list[ObjectInfo]]] = []
    for item in items:
        day = dt.date.fromisoformat(_day(item[0]))
        if chunk and dt.date.fromisoformat(_day(chunk[-1][0])) + dt.timedelta(days=1) != day:
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk
