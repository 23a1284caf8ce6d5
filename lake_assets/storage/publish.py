"""The publish protocol: replace a whole dataset folder (a table, or one `dt=` partition) so that no
reader ever sees half of it: upload the new files under new names, write `_manifest.json` (the commit
point: one atomic single-object write), then delete what the manifest does not name. Readers that go
through the manifest always see one complete version. The design and its guarantees:
docs/publish-protocol.md.
"""

import json
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lake_assets.storage.base import Storage

MANIFEST = "_manifest.json"

# Uploads overlap on S3 (latency bound); more threads than this only queue on 2 cores.
_UPLOAD_THREADS = 4


@dataclass(frozen=True)
class StoredFile:
    """A file already in this storage (Spark wrote it to a staging key): published by a server-side
    copy, so its bytes never pass through this process."""

    key: str
    size: int


@dataclass(frozen=True)
class Published:
    prefix: str
    version: str
    keys: list[str]  # full keys of the committed data files
    bytes: int


def publish(storage: Storage, prefix: str, files: Mapping[str, Path | StoredFile]) -> Published:
    """Make `files` ({name relative to prefix: local file or stored file}) the whole content of `prefix`."""
    prefix = prefix.rstrip("/")
    committed = set(committed_keys(storage, prefix) or [])
    new_keys = {f"{prefix}/{name}": path for name, path in files.items()}
    clash = committed & new_keys.keys()
    if clash:
        raise ValueError(f"publish to {storage.uri(prefix)}: new file names must differ from committed ones: {sorted(clash)[:3]}")

    _upload_all(storage, new_keys)

    version = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    sizes = {key: source.size if isinstance(source, StoredFile) else source.stat().st_size for key, source in new_keys.items()}
    manifest = {
        "version": version,
        "files": [{"name": key[len(prefix) + 1 :], "bytes": sizes[key]} for key in sorted(new_keys)],
    }
    storage.put_bytes(json.dumps(manifest, indent=1).encode(), f"{prefix}/{MANIFEST}")

    keep = set(new_keys) | {f"{prefix}/{MANIFEST}"}
    storage.delete([obj.key for obj in storage.list(f"{prefix}/") if obj.key not in keep])
    return Published(prefix, version, sorted(new_keys), sum(sizes.values()))


def _upload_all(storage: Storage, files: Mapping[str, Path | StoredFile]) -> None:
    """Upload (or copy) in parallel; on the first failure, cancel what has not started and raise it."""

    def put(key: str, source: Path | StoredFile) -> None:
        if isinstance(source, StoredFile):
            storage.copy(source.key, key)
        else:
            storage.put_file(source, key)

    with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
        futures = [pool.submit(put, key, source) for key, source in files.items()]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()


def committed_keys(storage: Storage, prefix: str) -> list[str] | None:
    """The data files of the current version of `prefix`, or None when it has no manifest
    (never published by this project: data that landed from elsewhere)."""
    files = committed_files(storage, prefix)
    return None if files is None else [file.key for file in files]


def committed_files(storage: Storage, prefix: str) -> list[StoredFile] | None:
    """`committed_keys` with each file's size, as the manifest records it (a Parquet footer is read
    from the end of a file without listing the folder)."""
    raw = storage.get_bytes(f"{prefix.rstrip('/')}/{MANIFEST}")
    if raw is None:
        return None
    return [StoredFile(f"{prefix.rstrip('/')}/{entry['name']}", entry["bytes"]) for entry in json.loads(raw)["files"]]
