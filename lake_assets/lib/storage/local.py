"""The local lake: a folder on disk (the embedded default, `LAKE_ROOT=./lake`)."""

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lake_assets.lib.storage.base import CommitConflict, ObjectInfo, Storage

# A writer whose folder another writer's delete pruned (it was empty for an instant) makes it again.
_WRITE_ATTEMPTS = 5


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _write(self, key: str, fill: Callable[[Path], object], place: Callable[[Path, Path], None] = os.replace) -> None:
        """Write a hidden temporary file beside the target with `fill`, then `place` it (os.replace is
        atomic on one filesystem: readers see the old file or the new one)."""
        target = self._path(key)
        for attempt in range(_WRITE_ATTEMPTS):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                fill(tmp)
                place(tmp, target)
                return
            except FileNotFoundError:
                if target.parent.is_dir() or attempt == _WRITE_ATTEMPTS - 1:
                    raise
            finally:
                tmp.unlink(missing_ok=True)

    def put_file(self, local_path: Path, key: str) -> None:
        self._write(key, lambda tmp: shutil.copyfile(local_path, tmp))

    def put_bytes(self, data: bytes, key: str) -> None:
        self._write(key, lambda tmp: tmp.write_bytes(data))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        data = self.get_bytes(key)
        return None if data is None else (data, _content_tag(data))

    def put_bytes_if(self, data: bytes, key: str, *, expected_etag: str | None) -> str:
        """Compare-and-swap on one host. "Must not exist" is `os.link` of the written temporary file,
        which fails atomically if the name exists (on any POSIX filesystem, NFS included). "Must
        match" is read, compare, `os.replace` under an exclusive `flock` of the object's folder:
        flock excludes every other open of the folder, in this process (threads) or another, and the
        kernel drops it when its holder dies, so a crashed writer never leaves a lock behind. The
        folder itself is the lock, so there is no lock file to list, clean up or delete by mistake;
        the tag is a hash of the content, as the mtime is too coarse to tell two quick writes apart."""

        def place(tmp: Path, target: Path) -> None:
            with _folder_locked(target.parent):
                if expected_etag is None:
                    try:
                        os.link(tmp, target)
                    except FileExistsError:
                        raise CommitConflict(f"{target} exists") from None
                    return
                try:
                    current = _content_tag(target.read_bytes())
                except FileNotFoundError:
                    raise CommitConflict(f"{target} does not exist") from None
                if current != expected_etag:
                    raise CommitConflict(f"{target} was replaced") from None
                os.replace(tmp, target)

        self._write(key, lambda tmp: tmp.write_bytes(data), place)
        return _content_tag(data)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._path(key).open("rb") as data:
            data.seek(start)
            return data.read(length)

    def copy(self, source_key: str, key: str) -> None:
        def fill(tmp: Path) -> None:
            try:
                os.link(self._path(source_key), tmp)  # same filesystem: no bytes copied
            except OSError:
                shutil.copyfile(self._path(source_key), tmp)
            # A link shares the source's mtime; `modified` must say when this key was written (as an
            # S3 copy's does), or the publish protocol's orphan sweep would take it for an old one.
            os.utime(tmp)

        self._write(key, fill)

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local_path)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walk only the deepest folder that the prefix names, not the whole lake; yield in plain key
        # order, as S3 does, so that `start_after` = the last key seen resumes the same listing.
        folder = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not folder.is_dir():
            return
        found = []
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # another writer's object in flight
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    found.append(key)
        for key in sorted(found):
            try:
                stat = self._path(key).stat()
            except FileNotFoundError:
                continue  # deleted since the walk
            yield ObjectInfo(key, stat.st_size, f"{stat.st_mtime_ns}-{stat.st_size}", stat.st_mtime)

    def list_folders(self, prefix: str) -> Sequence[str]:
        try:
            entries = list(os.scandir(self._path(prefix)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        # S3 has no empty folders: a folder counts once it holds a visible object at some depth.
        return sorted(f"{prefix}{entry.name}/" for entry in entries if entry.is_dir() and _holds_objects(Path(entry.path)))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            _prune_empty_parents(path.parent, self.root)

    def delete_tree(self, prefix: str) -> None:
        # Spark leaves empty folders (an empty partition's output, `_temporary/`) that no listing shows.
        folder = self._path(prefix.rstrip("/"))
        shutil.rmtree(folder, ignore_errors=True)
        _prune_empty_parents(folder.parent, self.root)

    def spark_path(self, key: str) -> str:
        # A file: URI, not a bare path: a cluster whose default file system is HDFS (EMR, Dataproc)
        # would look for a bare path there, not on the shared mount. Not Path.as_uri(): Hadoop does
        # not decode its %-escapes, and dt=... would become dt%3D...
        return f"file://{self._path(key)}"


def _prune_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        try:
            folder.rmdir()
        except OSError:
            return  # another writer put a file there meanwhile, or pruned it first
        folder = folder.parent


def _holds_objects(folder: Path) -> bool:
    for _, _, filenames in os.walk(folder):
        if any(not (name.startswith(".") and name.endswith(".tmp")) for name in filenames):
            return True
    return False


def _content_tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@contextmanager
def _folder_locked(folder: Path):
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
