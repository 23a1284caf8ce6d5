"""The local lake: a folder on disk (the embedded default, `LAKE_ROOT=./lake`)."""

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from lake_assets.storage.base import ObjectInfo, Storage


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, local_path: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(local_path, tmp)
            # os.replace is atomic on one filesystem: readers see the old file or the new one.
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, data: bytes, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._path(key).open("rb") as data:
            data.seek(start)
            return data.read(length)

    def copy(self, source_key: str, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                os.link(self._path(source_key), tmp)  # same filesystem: no bytes copied
            except OSError:
                shutil.copyfile(self._path(source_key), tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

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
        return str(self._path(key))


def _prune_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _holds_objects(folder: Path) -> bool:
    for _, _, filenames in os.walk(folder):
        if any(not (name.startswith(".") and name.endswith(".tmp")) for name in filenames):
            return True
    return False
