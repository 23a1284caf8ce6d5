"""The raw-arrival sensor: raw files that land from outside Dagster become materialisations of the raw
assets, with data versions derived from their bytes, and runs of the trusted assets that read them.

Where to look comes from S3 event notifications on an SQS queue (`LAKE_RAW_EVENTS_QUEUE`) or, without
one, from listings (`lake_assets/lib/raw_listing.py`); the whole raw prefix is listed once an hour
either way. What to do is decided by content: each touched day (or `filmes.csv`) is listed, its data
version computed and compared with the one registered last. The same bytes request nothing; a new
version is registered and requests exactly that day. The design, and why each rule is there:
docs/sensor.md.
"""

import datetime as dt
import hashlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

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
from lake_assets.defs.io_managers.raw import LANDED_FILES
from lake_assets.defs.partitions import daily_partitions
from lake_assets.defs.resources import LakeResource
from lake_assets.defs.versions import DATA_VERSION_TAG, data_version_tags, latest_data_versions
from lake_assets.lib import registry
from lake_assets.lib.partitions import DtLayout, dt_path, partition_key_from_path
from lake_assets.lib.raw_events import EventQueue, RawEvent
from lake_assets.lib.raw_listing import FILMES_KEY, TMDB_PREFIX, Cursor, look
from lake_assets.lib.raw_versions import data_version
from lake_assets.lib.raw_zone import file_names, json_lines_records, landed_files
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
RAW_TMDB_KEY, RAW_FILMES_KEY = AssetKey(registry.RAW_TMDB.key), AssetKey(registry.RAW_FILMES.key)
# S3 event messages read in one tick: their receipts ride in the cursor until the next tick deletes them.
MAX_EVENTS_PER_TICK = 500


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
        "A new data version of raw/filmes/filmes.csv or of a day raw/tmdb/dt=D/ (from its bytes) registers a "
        "materialisation of raw/filmes_csv or raw/tmdb_json[D] and requests trusted/filmes or trusted/tmdb[D] "
        "(contiguous dates as one range run); identical bytes request nothing. Reads S3 events when "
        "LAKE_RAW_EVENTS_QUEUE is set, else lists; the whole prefix is listed hourly."
    ),
)
def raw_arrivals_sensor(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult:
    return evaluate(context, lake, now=time.time(), queue=lake.raw_events())


@dataclass
class _Touch:
    """Why a tick looks at a target: the full listing saw it, or an event, a deferral or a watched
    folder named a key there (then the target is listed again: the full listing may predate it)."""

    named: bool = False
    deleted: set[str] = field(default_factory=set)
    listed: list[ObjectInfo] = field(default_factory=list)  # its files, as the rescan listed them


def evaluate(context: SensorEvaluationContext, lake: LakeResource, now: float, queue: EventQueue | None = None) -> SensorResult:
    try:
        cursor = Cursor.parse(context.cursor)
    except (ValueError, KeyError, TypeError, IndexError):
        context.log.warning(f"{SENSOR_NAME}: unreadable cursor, starting over with a full listing")
        cursor = Cursor()
    storage = lake.storage("raw")
    if queue is not None and cursor.receipts:
        queue.delete(cursor.receipts)  # the previous tick's cursor is committed: its messages are handled
    seen = look(storage, cursor, lake.layout, now, lambda day: _is_partition(day, now), listing=queue is None)
    touched: dict[Target, _Touch] = defaultdict(_Touch)

    def touch(key: str, deleted: bool = False, obj: ObjectInfo | None = None) -> None:
        target = _target(key, lake.layout)
        if target is None:
            return
        if obj is not None and seen.rescanned:
            touched[target].listed.append(obj)
        else:
            touched[target].named = True
        if deleted:
            touched[target].deleted.add(key)

    for obj in seen.found:
        touch(obj.key, obj=obj)
    if seen.rescanned:  # registered days with no file left are in no listing
        for day in latest_data_versions(context.instance, RAW_TMDB_KEY):
            if Target(RAW_TMDB_KEY, day) not in touched:
                touched[Target(RAW_TMDB_KEY, day)].named = True
    for key in seen.deleted:
        touch(key, deleted=True)
    for key in cursor.pending:
        touch(key)
    if queue is not None:
        batch = queue.receive(MAX_EVENTS_PER_TICK)
        seen.cursor.receipts = batch.receipts
        for event in batch.events:
            lake_key = _lake_key(storage, event)
            if lake_key is not None:
                touch(lake_key, deleted=event.removed)
        if batch.unreadable:
            context.log.warning(
                f"{SENSOR_NAME}: {len(batch.unreadable)} message(s) on the raw events queue are not S3 events, "
                f"deleted unread: {batch.unreadable[:5]}"
            )
    cursor = seen.cursor

    outside = sorted(t.partition for t in touched if t.partition is not None and not _is_partition(t.partition, now))
    if outside:
        context.log.warning(
            f"{SENSOR_NAME}: ignored files under {TMDB_PREFIX} for dates outside the daily partitions: {outside[:5]}"
        )
    judge = _Judge(context.instance)
    recorded = judge.recorded_versions([t for t in touched if t.partition not in outside])
    counter = _RecordCounter(storage, ROW_COUNT_BYTES_PER_TICK, ROW_COUNT_FILES_PER_TICK)
    events, requests, deferred = [], defaultdict(list), []
    for target in sorted(touched):
        if target.partition in outside:
            continue
        the_touch = touched[target]
        # The rescan listed every file of the days it saw (bookkeeping names were dropped by `_target`).
        if the_touch.named or not seen.rescanned:
            files = _list_target(storage, target, lake.layout)
        else:
            files = sorted(the_touch.listed, key=lambda o: o.key)
        version = data_version(storage, files) if files else None
        if version == recorded.get(target):
            continue  # the same bytes as registered: a re-landing, or the project's own write
        gone = sorted(the_touch.deleted - {obj.key for obj in files}) or judge.gone_since(target, files, lake.layout)
        if gone:
            context.log.warning(
                f"{SENSOR_NAME}: raw file(s) deleted from {_where(target, lake.layout)}: {gone[:10]}; "
                + (
                    f"{target.trusted_key.to_user_string()} is rebuilt from the {len(files)} left"
                    if files
                    else "no data file is left, the trusted table keeps its last version"
                )
            )
        if not files or version is None:
            continue
        # Still landing (see MODIFIED_RESOLUTION_S), or being written by a run: looked at again next tick.
        if any(obj.modified + MODIFIED_RESOLUTION_S > now for obj in files) or judge.in_flight(target):
            deferred.append(files[0].key)
            continue
        events.append(_materialization(storage, target, files, version, gone, lake.layout, counter))
        # Requested even when a backfill already read these bytes before the day was registered: Dagster
        # then shows the day stale (its run read a raw day it had no record of), and one run makes that true.
        requests[target.trusted_key].append((target, version))
    cursor.pending = deferred

    run_requests = [request for key, items in sorted(requests.items()) for request in _run_requests(key, items)]
    if deferred:
        context.log.info(
            f"{SENSOR_NAME}: {len(deferred)} raw partition(s) deferred to the next tick: still landing, or a run is materialising them"
        )
    if counter.uncounted:
        context.log.warning(
            f"{SENSOR_NAME}: {counter.uncounted} raw partition(s) registered without dagster/row_count: "
            f"more than {ROW_COUNT_FILES_PER_TICK} files or {ROW_COUNT_BYTES_PER_TICK // 2**20} MiB to read in one tick"
        )
    if not events:
        return SensorResult(skip_reason=f"no raw data changed ({len(deferred)} deferred)", cursor=cursor.dumps())
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
    """Answers, from the Dagster instance, what was registered before and what is being written now."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance
        self._planned: set[tuple[AssetKey, str | None]] | None = None

    def recorded_versions(self, targets: list[Target]) -> dict[Target, str]:
        """The data version of each target's latest materialisation (one query for all the days)."""
        days = [t.partition for t in targets if t.partition is not None]
        found = {}
        if days:
            by_day = latest_data_versions(self.instance, RAW_TMDB_KEY, days)
            found = {Target(RAW_TMDB_KEY, day): version for day, version in by_day.items()}
        if any(t.partition is None for t in targets):
            record = self._latest(RAW_FILMES_KEY, None)
            event = record.asset_materialization if record is not None else None
            version = (event.tags or {}).get(DATA_VERSION_TAG) if event is not None else None
            if version is not None:
                found[Target(RAW_FILMES_KEY, None)] = version
        return found

    def gone_since(self, target: Target, files: list[ObjectInfo], layout: DtLayout) -> list[str]:
        """Files the latest registration named that are not there now."""
        record = self._latest(target.asset_key, target.partition)
        event = record.asset_materialization if record is not None else None
        names = event.metadata.get(LANDED_FILES) if event is not None else None
        if names is None or not isinstance(names.value, list):
            return []
        folder = _where(target, layout)
        now = {obj.key for obj in files}
        return sorted(f"{folder}/{name}" for name in names.value if f"{folder}/{name}" not in now)

    def _latest(self, asset_key: AssetKey, partition: str | None):
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None), limit=1
        ).records
        return records[0] if records else None

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


def _where(target: Target, layout: DtLayout) -> str:
    return FILMES_KEY if target.partition is None else f"{TMDB_PREFIX}{dt_path(target.partition, layout)}"


def _list_target(storage: Storage, target: Target, layout: DtLayout) -> list[ObjectInfo]:
    if target.partition is None:
        return [obj for obj in storage.list(FILMES_KEY) if obj.key == FILMES_KEY]
    return landed_files(storage, _where(target, layout))


def _lake_key(storage: Storage, event: RawEvent) -> str | None:
    """The lake key of an S3 event's object, or None for a bucket or prefix outside the raw zone's root."""
    try:
        return storage.key_of(f"s3://{event.bucket}/{event.key}")
    except ValueError:
        return None


def _materialization(
    storage: Storage,
    target: Target,
    files: list[ObjectInfo],
    version: str,
    gone: list[str],
    layout: DtLayout,
    counter: "_RecordCounter",
) -> AssetMaterialization:
    where = _where(target, layout)
    metadata: dict[str, MetadataValue | int] = {
        "path": MetadataValue.path(storage.uri(where)),
        "files": len(files),
        LANDED_FILES: MetadataValue.json(
            file_names(where, [obj.key for obj in files]) if target.partition else [FILMES_KEY.rsplit("/", 1)[1]]
        ),
        "bytes": sum(obj.size for obj in files),
        "last_modified": MetadataValue.timestamp(max(obj.modified for obj in files)),
    }
    if gone:
        metadata["deleted_files"] = MetadataValue.json(gone[:_MAX_FILES_IN_METADATA])
    records = None if target.partition is None else counter.records(files)
    if records is not None:
        metadata["dagster/row_count"] = MetadataValue.int(records)
    return AssetMaterialization(
        asset_key=target.asset_key,
        partition=target.partition,
        description=f"new data version {version} ({len(files)} file(s)), landed from outside Dagster; registered by {SENSOR_NAME}",
        metadata=metadata,
        tags=data_version_tags(version),
    )


class _RecordCounter:
    """Records (non-blank JSON lines) of a raw TMDB day, across all its data files, arrived or not,
    within the tick's budget of bytes and files."""

    def __init__(self, storage: Storage, budget_bytes: int, budget_files: int):
        self.storage, self.bytes, self.files = storage, budget_bytes, budget_files
        self.uncounted = 0

    def records(self, files: list[ObjectInfo]) -> int | None:
        if self.files <= 0:
            self.uncounted += 1
            return None
        size = sum(obj.size for obj in files)
        if size > self.bytes or len(files) > self.files:
            self.uncounted += 1
            self.files = 0  # a day too big for what is left: the budget is spent, list no further folder
            return None
        self.bytes, self.files = self.bytes - size, self.files - len(files)
        return sum(json_lines_records(self.storage, obj.key) for obj in files)


def _run_requests(trusted_key: AssetKey, items: list[tuple[Target, str]]) -> list[RunRequest]:
    """One run for the unpartitioned asset; one run per contiguous range of dates for a daily one. Run
    keys name the data versions, so a tick evaluated twice requests nothing new."""
    name = trusted_key.to_user_string()
    if items[0][0].partition is None:
        return [RunRequest(run_key=f"{name}:{items[0][1]}", asset_selection=[trusted_key])]
    requests = []
    for chunk in _contiguous(sorted(items, key=lambda item: _day(item[0]))):
        start, end = _day(chunk[0][0]), _day(chunk[-1][0])
        if start == end:
            requests.append(
                RunRequest(run_key=f"{name}:{start}:{chunk[0][1]}", asset_selection=[trusted_key], partition_key=start)
            )
        else:
            versions = hashlib.sha256(" ".join(f"{_day(t)}={v}" for t, v in chunk).encode()).hexdigest()[:16]
            requests.append(
                RunRequest(
                    run_key=f"{name}:{start}...{end}:{versions}",
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


def _contiguous(items: list[tuple[Target, str]]) -> Iterator[list[tuple[Target, str]]]:
    chunk: list[tuple[Target, str]] = []
    for item in items:
        day = dt.date.fromisoformat(_day(item[0]))
        if chunk and dt.date.fromisoformat(_day(chunk[-1][0])) + dt.timedelta(days=1) != day:
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk
