"""What changed in the raw zone since the last look: an incremental listing of `raw/tmdb/`, the
`dt=` folders and the recently written ones in full with their ETags, and the whole prefix once an
hour. The cursor that remembers it is small JSON. The raw-arrival sensor (lake_assets/defs/sensors.py)
judges what this finds; the design and why each rule is there: docs/sensor.md.
"""

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from lake_assets.lib.partitions import DtLayout, dt_folders, dt_path
from lake_assets.lib.registry import RAW_FILMES, RAW_TMDB
from lake_assets.lib.storage import ObjectInfo, Storage

FILMES_KEY = RAW_FILMES.path  # raw/filmes/filmes.csv
TMDB_PREFIX = RAW_TMDB.path + "/"  # raw/tmdb/
RESCAN_INTERVAL_S = 3600
# A dt= folder that appears (a history drop, a late day) is listed in full at every tick for this long,
# so files still being uploaded into it when it was first seen are not left for the hourly rescan.
NEW_FOLDER_WATCH_S = 300


@dataclass
class Cursor:
    after: str | None = None  # last key returned by the incremental listing of raw/tmdb/
    rescanned_at: float | None = None  # when raw/tmdb/ was last listed in full
    watched: list[str] = field(default_factory=list)  # prefixes listed in full at the last tick
    seen: dict[str, str] = field(default_factory=dict)  # key -> ETag within `watched`
    pending: list[str] = field(default_factory=list)  # keys of deferred arrivals, looked at again next tick
    folders: set[str] | None = None  # partitions with a dt= folder at the last tick (None: not known yet)
    new_folders: dict[str, float] = field(default_factory=dict)  # partition -> when its folder appeared
    receipts: list[str] = field(default_factory=list)  # SQS messages this cursor covers, deleted next tick

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            after=data["after"],
            rescanned_at=data["rescanned_at"],
            watched=data["watched"],
            seen=data["seen"],
            # Before data versions, a pending arrival was [key, size, etag, modified, how].
            pending=[item[0] if isinstance(item, list) else item for item in data["pending"]],
            # A cursor from before folders were tracked: this tick learns them and treats none as new.
            folders=_expand(data["folders"]) if "folders" in data else None,
            new_folders={str(k): float(v) for k, v in data.get("new_folders", {}).items()},
            receipts=data.get("receipts", []),
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "after": self.after,
                "rescanned_at": self.rescanned_at,
                "watched": self.watched,
                "seen": self.seen,
                "pending": self.pending,
                "folders": _ranges(self.folders or ()),
                "new_folders": self.new_folders,
                "receipts": self.receipts,
            },
            separators=(",", ":"),
        )


@dataclass
class Look:
    found: list[ObjectInfo]  # objects new, or changed under the same key, since the last look
    deleted: list[str]  # keys gone from the folders the last look listed in full
    rescanned: bool  # `found` is the whole of raw/tmdb/ (each day's files complete)
    cursor: Cursor


def look(
    storage: Storage, cursor: Cursor, layout: DtLayout, now: float, is_partition: Callable[[str], bool], listing: bool = True
) -> Look:
    """What changed since the last look, and the next cursor. `is_partition` tells a day of the daily
    partitions (at `now`) from one outside them. With `listing` off (S3 events say what changed),
    only the hourly rescan lists, as the safety net for what the events missed."""
    found: dict[str, ObjectInfo] = {}
    after = cursor.after
    rescan = cursor.rescanned_at is None or now - cursor.rescanned_at >= RESCAN_INTERVAL_S
    if not listing:
        for obj in storage.list(TMDB_PREFIX) if rescan else ():
            found[obj.key] = obj
        if rescan:
            found.update((obj.key, obj) for obj in _list_watched(storage, FILMES_KEY))
        next_cursor = Cursor(after=cursor.after, rescanned_at=now if rescan else cursor.rescanned_at)
        return Look(list(found.values()), [], rescan, next_cursor)
    # Listed first: a folder that appears after this listing is the next tick's new folder. The
    # incremental listing below cannot see a folder that sorts below its high-water mark.
    folders = dt_folders(storage, TMDB_PREFIX, layout)
    new_folders = {p: t for p, t in cursor.new_folders.items() if p in folders and now - t < NEW_FOLDER_WATCH_S}
    if cursor.folders is not None:
        for partition in folders.keys() - cursor.folders:
            new_folders.setdefault(partition, now)
    listed = storage.list(TMDB_PREFIX) if rescan else storage.list(TMDB_PREFIX, start_after=cursor.after)
    for obj in listed:
        found[obj.key] = obj
        after = obj.key

    watched = _watched_prefixes(layout, now, is_partition)
    watched += [folders[p] for p in sorted(new_folders) if folders[p] not in watched]
    seen, deleted = {}, []
    for prefix in watched:
        for obj in _list_watched(storage, prefix):
            seen[obj.key] = obj.etag
            if prefix in cursor.watched and cursor.seen.get(obj.key) == obj.etag and not rescan:
                found.pop(obj.key, None)
            else:
                found[obj.key] = obj
        if prefix in cursor.watched:
            deleted += [key for key in cursor.seen if key.startswith(prefix) and key not in seen]

    next_cursor = Cursor(
        after=after,
        rescanned_at=now if rescan else cursor.rescanned_at,
        watched=watched,
        seen=seen,
        folders=set(folders),
        new_folders=new_folders,
    )
    return Look(list(found.values()), deleted, rescan, next_cursor)


def _watched_prefixes(layout: DtLayout, now: float, is_partition: Callable[[str], bool]) -> list[str]:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (1, 0)]
    return [FILMES_KEY] + [f"{TMDB_PREFIX}{dt_path(day, layout)}/" for day in days if is_partition(day)]


def _ranges(partitions: Iterable[str]) -> list[list[str]]:
    """Sorted dates as [first, last] runs of consecutive days: a cursor of years of folders stays small."""
    runs: list[list[str]] = []
    for key in sorted(partitions):
        if runs and dt.date.fromisoformat(runs[-1][1]) + dt.timedelta(days=1) == dt.date.fromisoformat(key):
            runs[-1][1] = key
        else:
            runs.append([key, key])
    return runs


def _expand(runs: list[list[str]]) -> set[str]:
    days = set()
    for first, last in runs:
        day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        while day <= end:
            days.add(day.isoformat())
            day += dt.timedelta(days=1)
    return days


def _list_watched(storage: Storage, prefix: str) -> Iterator[ObjectInfo]:
    for obj in storage.list(prefix):
        # The filmes "prefix" is a key: `filmes.csv.bak` also starts with it.
        if prefix.endswith("/") or obj.key == prefix:
            yield obj
