"""The raw zone's publish protocol: replace a whole dataset folder (one `raw/tmdb/dt=` day) so that
no reader ever sees half of it and no concurrent writer loses a committed file. The trusted tables
commit through Iceberg instead (lake_assets/lib/tables/).

Read the current `_manifest.json` and its tag (the base version); upload the new files under new
names; commit with a compare-and-swap of the manifest against the base (`Storage.put_bytes_if`: S3
`If-Match` / `If-None-Match: *`, an exclusive create or a locked swap on disk); then delete only the
files of the version this commit replaced, and orphans no version names that are older than
`ORPHAN_GRACE_S` (a dead writer's). A writer that loses the race rebases once on the winner's
version; losing again, it removes its own uploads and fails with one line naming the winner.
Design, interleavings and guarantees: docs/publish-protocol.md.
"""

import json
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lake_assets.lib.storage.base import CommitConflict, Storage

MANIFEST = "_manifest.json"

# Uploads overlap on S3 (latency bound); more threads than this only queue on 2 cores.
_UPLOAD_THREADS = 4
# A writer that lost the commit race tries once more on top of the winner's version (so two
# overlapping runs of one partition both succeed, the later commit winning, as if they had run one
# after the other); a second loss means three or more writers at once, and fails.
COMMIT_RETRIES = 1
# Files in a folder that no current version names and that are older than this are a dead writer's
# leftovers, and any publish's clean-up deletes them. A live writer's uploads are younger: a publish
# refuses to commit once MAX_PUBLISH_S have passed since its first upload, so no file it commits can
# have been swept. The gap between the two absorbs clock skew between writers and the S3 server.
ORPHAN_GRACE_S = 3600
MAX_PUBLISH_S = 1800


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
    previous: str | None = None  # the version this one replaced


@dataclass(frozen=True)
class Version:
    """A committed version, as its manifest names it."""

    id: str
    previous: str | None
    keys: list[str]  # full keys of its data files
    etag: str  # the manifest's tag: what a commit on top of this version must find
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each file, by key


class Publication:
    """One publish, in the protocol's phases: `publish()` runs them in order; the tests drive two at
    once step by step to replay interleavings."""

    def __init__(self, storage: Storage, prefix: str, files: Mapping[str, Path | StoredFile]):
        self.storage = storage
        self.prefix = prefix.rstrip("/")
        self.manifest_key = f"{self.prefix}/{MANIFEST}"
        self.files = {f"{self.prefix}/{name}": source for name, source in files.items()}
        self.sizes = {key: s.size if isinstance(s, StoredFile) else s.stat().st_size for key, s in self.files.items()}
        self.version = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self.base = read_version(storage, self.prefix)  # what this publish replaces, unless it rebases
        self._check_names(self.base)
        self.started = time.monotonic()
        self.replaced: Version | None = None
        self.committed = False

    def upload(self) -> None:
        """Upload every file under its new name; the committed version is untouched. On failure the
        files that landed are removed (best effort), and the error is raised."""
        self.started = time.monotonic()
        try:
            upload_all(self.storage, self.files)
        except Exception as error:
            self._discard_quietly(error)
            raise

    def commit(self, retries: int = COMMIT_RETRIES) -> Published:
        """The commit point: the manifest naming exactly these files replaces the base version only if
        the base is still current. Raises `CommitConflict` (one line) when another writer won
        `retries` + 1 times; this writer's files are then removed and the winner's version is intact."""
        attempts = 0
        while True:
            elapsed = time.monotonic() - self.started
            if elapsed > MAX_PUBLISH_S:
                error = TimeoutError(
                    f"publish to {self.storage.uri(self.prefix)}: {elapsed:.0f}s since its first upload, over the "
                    f"{MAX_PUBLISH_S}s after which its files may be swept as a dead writer's; nothing was committed"
                )
                self._discard_quietly(error)
                raise error
            try:
                self.storage.put_bytes_if(
                    self._manifest(), self.manifest_key, expected_etag=self.base.etag if self.base else None
                )
                break
            except Exception as error:
                current = self._current_or_raise(error)
                if current is not None and self.version in (current.id, current.previous):
                    break  # written after all (the answer was lost), and perhaps already replaced
                if isinstance(error, CommitConflict) and attempts < retries:
                    attempts += 1
                    self._check_names(current)
                    self.base = current
                    continue
                self._discard_quietly(error, current)
                if isinstance(error, CommitConflict):
                    winner = current.id if current else "(none: its manifest was deleted)"
                    raise CommitConflict(
                        f"publish to {self.storage.uri(self.prefix)}: another writer committed version {winner} first "
                        f"({attempts + 1} attempt(s)); nothing of this writer was committed, its uploads were removed, "
                        f"and version {winner} is intact"
                    ) from None
                raise
        self.replaced, self.committed = self.base, True
        return Published(
            self.prefix, self.version, sorted(self.files), sum(self.sizes.values()), self.base.id if self.base else None
        )

    def clean_up(self) -> None:
        """After the commit: delete the files of the version it replaced (no later version can name
        them: every publish names only new files), and orphans older than ORPHAN_GRACE_S. The folder
        is listed before the current manifest is read, and the age judged after: a file listed here
        and named by a version committed after that read was uploaded under MAX_PUBLISH_S before its
        commit, so it cannot look older than ORPHAN_GRACE_S (docs/publish-protocol.md)."""
        if not self.committed:
            raise RuntimeError("clean_up() comes after a successful commit()")
        listed = list(self.storage.list(f"{self.prefix}/"))
        current = read_version(self.storage, self.prefix)
        cutoff = time.time() - ORPHAN_GRACE_S
        keep = {self.manifest_key, *self.files, *(current.keys if current else ())}
        doomed = {key for key in (self.replaced.keys if self.replaced else ()) if key not in keep}
        doomed |= {obj.key for obj in listed if obj.key not in keep and obj.modified < cutoff}
        self.storage.delete(sorted(doomed))

    # --- internals ----------------------------------------------------------------------------

    def _manifest(self) -> bytes:
        manifest = {
            "version": self.version,
            "previous": self.base.id if self.base else None,
            "files": [{"name": key[len(self.prefix) + 1 :], "bytes": self.sizes[key]} for key in sorted(self.files)],
        }
        return json.dumps(manifest, indent=1).encode()

    def _check_names(self, version: "Version | None") -> None:
        clash = set(self.files) & set(version.keys if version else ())
        if clash:
            raise ValueError(
                f"publish to {self.storage.uri(self.prefix)}: new file names must differ from committed ones: {sorted(clash)[:3]}"
            )

    def _current_or_raise(self, error: Exception) -> "Version | None":
        """The current version after a failed commit; if even that cannot be read, the outcome is
        unknown: the files stay (a later publish sweeps them if they are not committed) and the
        commit's own error is raised."""
        try:
            return read_version(self.storage, self.prefix)
        except Exception:
            raise error from None

    def _discard_quietly(self, error: Exception, current: "Version | None | Literal[False]" = False) -> None:
        """Delete this writer's uploads, except any name the current version holds (never a committed
        file, even if a caller broke the unique-names rule). Best effort: on failure the files stay
        for a later publish's sweep, and `error` says so in a note."""
        try:
            if current is False:
                current = read_version(self.storage, self.prefix)
            keep = set(current.keys) if current else set()
            self.storage.delete(sorted(key for key in self.files if key not in keep))
        except Exception as cleanup_error:
            error.add_note(
                f"its uploads under {self.storage.uri(self.prefix)} could not be removed ({type(cleanup_error).__name__}); "
                f"a later publish sweeps them after {ORPHAN_GRACE_S}s"
            )


def publish(storage: Storage, prefix: str, files: Mapping[str, Path | StoredFile], *, retries: int = COMMIT_RETRIES) -> Published:
    """Make `files` ({name relative to prefix: local file or stored file}) the whole content of `prefix`.
    Names must be new (Spark's part names carry a write id; other writers add one)."""
    publication = Publication(storage, prefix, files)
    publication.upload()
    published = publication.commit(retries)
    publication.clean_up()
    return published


def upload_all(storage: Storage, files: Mapping[str, Path | StoredFile]) -> None:
    """Upload (or copy) in parallel; on the first failure, cancel what has not started and raise it
    once the uploads under way have ended."""

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


def read_version(storage: Storage, prefix: str) -> Version | None:
    """The current version of `prefix` with its manifest's tag, or None when it has no manifest."""
    prefix = prefix.rstrip("/")
    found = storage.get_with_etag(f"{prefix}/{MANIFEST}")
    if found is None:
        return None
    data, etag = found
    manifest = json.loads(data)
    sizes = {f"{prefix}/{entry['name']}": entry["bytes"] for entry in manifest["files"]}
    return Version(manifest["version"], manifest.get("previous"), list(sizes), etag, sizes)


def committed_keys(storage: Storage, prefix: str) -> list[str] | None:
    """The data files of the current version of `prefix`, or None when it has no manifest
    (never published by this project: data that landed from elsewhere)."""
    version = read_version(storage, prefix)
    return None if version is None else version.keys


def committed_files(storage: Storage, prefix: str) -> list[StoredFile] | None:
    """`committed_keys` with each file's size, as the manifest records it (a Parquet footer is read
    from the end of a file without listing the folder)."""
    version = read_version(storage, prefix)
    return None if version is None else [StoredFile(key, version.sizes[key]) for key in version.keys]
