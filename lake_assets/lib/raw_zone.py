"""The raw zone's files: what lands there (a file byte for byte, JSON records as JSON Lines), and
what a trusted asset reads back from it (paths, a header, record counts)."""

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lake_assets.lib.raw_versions import version_of
from lake_assets.lib.staging import LocalScratch
from lake_assets.lib.storage import ObjectInfo, Storage, is_hidden
from lake_assets.lib.storage.publish import Published, publish

JSONL_RECORDS_PER_FILE = 100  # the raw zone's convention: at most 100 records a file
HEAD_BYTES = 64 * 1024  # enough for any header line


@dataclass(frozen=True)
class LandedFile:
    """A file to land in the raw zone byte for byte."""

    path: Path


@dataclass(frozen=True)
class JsonRecords:
    """JSON documents to land unchanged as JSON Lines, in files of at most 100 records."""

    records: Sequence[dict]


@dataclass(frozen=True)
class RawFile:
    """One raw file as a trusted asset reads it: a path Spark can open, its first bytes (the header,
    read without a Spark job), and a byte stream for the checks that read it without Spark."""

    uri: str
    spark_path: str
    head: bytes
    storage: Storage
    key: str

    def open(self) -> BinaryIO:
        return self.storage.open_read(self.key)


@dataclass(frozen=True)
class RawFolders:
    """The raw partitions a trusted run reads: Spark-readable files and the records (non-blank JSON
    lines, counted here without Spark) of each partition key, and the folders' dt layout. Days with
    no raw files are `missing`: the asset fails on them itself, after recording what it must."""

    files: Mapping[str, list[str]]
    records: Mapping[str, int]
    layout: str
    missing: Sequence[str] = ()
    where: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)  # each day's data version, as read

    def missing_message(self, asset: str) -> str:
        shown = ", ".join(self.missing[:5]) + ("…" if len(self.missing) > 5 else "")
        return f"no raw files for {len(self.missing)} partition(s) of {asset} ({shown}) under {self.where}: materialise them, or land files there"


def landed_files(storage: Storage, prefix: str) -> list[ObjectInfo]:
    """Every data file of a raw folder: the raw zone is a landing zone, and a file dropped next to
    ones this project wrote is data too; `_`/`.` names are bookkeeping (manifests, temp files)."""
    return [obj for obj in storage.list(prefix.rstrip("/") + "/") if not is_hidden(obj.key[len(prefix) :])]


def file_names(prefix: str, keys: Sequence[str]) -> list[str]:
    """The keys' names below a folder, sorted."""
    return sorted(key[len(prefix.rstrip("/")) + 1 :] for key in keys)


def json_lines_records(storage: Storage, key: str, local_copy: str = "") -> int:
    """Non-blank lines of a JSON Lines file: the records Spark's JSON reader sees (blank lines are
    skipped). Read from the local copy when there is one, else from the storage."""
    local = Path(local_copy)
    with local.open("rb") if local_copy and local.is_absolute() and local.exists() else storage.open_read(key) as data:
        return sum(1 for line in data if line.strip())


def land_json_lines(storage: Storage, prefix: str, records: Sequence[dict]) -> Published:
    """Publish `records` as the whole content of a raw folder, in JSON Lines files of at most 100."""
    folder = LocalScratch.new_dir("raw-out")
    try:
        return publish(storage, prefix, _write_jsonl_chunks(records, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def json_lines_chunks(records: Sequence[dict]) -> Iterator[bytes]:
    """The bytes of each JSON Lines file `land_json_lines` writes for `records`, in order."""
    for index in range(0, len(records), JSONL_RECORDS_PER_FILE):
        chunk = records[index : index + JSONL_RECORDS_PER_FILE]
        yield "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in chunk).encode("utf-8")


def json_lines_version(records: Sequence[dict]) -> str:
    """The data version of the raw folder `land_json_lines` makes of `records`, known before it lands."""
    return version_of(hashlib.md5(chunk).hexdigest() for chunk in json_lines_chunks(records))


def _write_jsonl_chunks(records: Sequence[dict], folder: Path) -> dict[str, Path]:
    # A write id in every name: the publish protocol never overwrites a committed file.
    write_id = uuid.uuid4().hex[:12]
    files = {}
    for number, chunk in enumerate(json_lines_chunks(records)):
        name = f"part-{number:05d}-{write_id}.jsonl"
        (folder / name).write_bytes(chunk)
        files[name] = folder / name
    return files


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
