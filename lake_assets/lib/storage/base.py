"""The storage boundary: a small key -> bytes interface that the local lake and S3 both implement.

Everything above this layer (IO managers, the publish protocol, sensors) speaks in keys relative to
one root, `raw/tmdb/dt=2024-03-31/part-0.jsonl`, and never in paths or bucket names.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


def is_hidden(relative_key: str) -> bool:
    """Names starting with `_` or `.`, at any level below a dataset folder, are bookkeeping, never
    data: the publish protocol's `_manifest.json` and `_rejected/`, Spark's `_SUCCESS`, a writer's
    temporary `.name.tmp`. Spark, Hive and DuckDB's hive reader skip the same names."""
    return any(part.startswith(("_", ".")) for part in relative_key.split("/"))


class CommitConflict(Exception):
    """A conditional write lost: the object was not in the state the writer expected (it exists, or
    another writer replaced it), so nothing was written."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the storage root, "/"-separated
    size: int
    etag: str  # changes when the content is replaced under the same key
    modified: float  # seconds since the epoch


class Storage(ABC):
    """One lake root: a local folder or `s3://bucket/prefix`.

    Every write of one object is atomic: a reader sees the old object or the new one, never a part.
    Writing several objects atomically is the publish protocol's job (`lake_assets.lib.storage.publish`);
    `get_with_etag` + `put_bytes_if` are its compare-and-swap, the one write that two concurrent
    writers of the same key cannot both win.
    """

    root_uri: str

    def uri(self, key: str) -> str:
        """Where a person (or DuckDB) finds this key."""
        return f"{self.root_uri.rstrip('/')}/{key}" if key else self.root_uri

    def key_of(self, uri: str) -> str:
        """The inverse of `uri`, for a location another tool recorded (a `file:` URI is a local path)."""
        path = uri.removeprefix("file://") if uri.startswith("file://") else uri
        root = self.root_uri.rstrip("/") + "/"
        if not path.startswith(root):
            raise ValueError(f"{uri} is not below this lake's root {self.root_uri}")
        return path[len(root) :]

    def content_md5(self, obj: ObjectInfo) -> str | None:
        """The MD5 of the object's bytes when its listing says it (None: read them to know)."""
        return None

    @abstractmethod
    def put_file(self, local_path: Path, key: str) -> None: ...

    @abstractmethod
    def put_bytes(self, data: bytes, key: str) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's content, or None when there is no such key."""

    @abstractmethod
    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object's content and a tag of exactly that content (for `put_bytes_if`), read in one
        request; None when there is no such key. Compare a tag only with tags from these two methods."""

    @abstractmethod
    def put_bytes_if(self, data: bytes, key: str, *, expected_etag: str | None) -> str:
        """Write `data` only if the object is still the one `expected_etag` names (None: only if there
        is no object at `key`), atomically against every other `put_bytes_if` of the key; returns the
        new tag. Raises `CommitConflict` when it is not, having written nothing."""

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes from offset `start` (Parquet footers: row counts without the whole file)."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A stream of the object's bytes, for reading it once from start to end."""

    @abstractmethod
    def download(self, key: str, local_path: Path) -> None: ...

    @abstractmethod
    def copy(self, source_key: str, key: str) -> None:
        """Copy an object inside this storage without moving its bytes through this process."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in the backend's key order, after `start_after`."""

    def list_folders(self, prefix: str) -> Sequence[str]:
        """The folders directly below the folder `prefix` (ending in "/"), as keys ending in "/", sorted.
        The backends answer without reading every object (S3: a delimiter listing, one request per
        1,000 folders); this fallback, for wrappers and test doubles, derives them from `list`."""
        folders = {
            prefix + obj.key[len(prefix) :].split("/", 1)[0] + "/" for obj in self.list(prefix) if "/" in obj.key[len(prefix) :]
        }
        return sorted(folders)

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None: ...

    def delete_tree(self, prefix: str) -> None:
        """Delete everything below the folder `prefix` (scratch space)."""
        self.delete([obj.key for obj in self.list(prefix.rstrip("/") + "/")])

    def spark_path(self, key: str) -> str | None:
        """A path Spark can open directly, or None when data must be staged on local disk first."""
        return None
