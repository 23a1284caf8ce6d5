"""Data versions of the raw zone, derived from the bytes: the version of a raw folder (a TMDB day) or
file (`filmes.csv`) is a hash of its data files' MD5s, sorted.

The MD5s are sorted, not the keys: a re-landing of the same bytes under new names (the publish
protocol puts a write id in every name) is the same data, and the trusted table built from it would
be the same. A file landed twice counts twice, as the trusted run would read it twice.

S3 reports an object's MD5 as its ETag when it was uploaded in one part (and not encrypted with
SSE-KMS or SSE-C), so versioning a day costs a listing; other objects (multipart uploads, a local
lake) are read and hashed.
"""

import hashlib
from collections.abc import Iterable
from pathlib import Path

from lake_assets.lib.storage import ObjectInfo, Storage

_BLOCK = 1 << 20


def version_of(md5s: Iterable[str]) -> str:
    """The data version of files with these MD5s (hex), in any order."""
    return hashlib.sha256("\n".join(sorted(md5s)).encode()).hexdigest()[:24]


def data_version(storage: Storage, objects: Iterable[ObjectInfo]) -> str:
    return version_of(object_md5(storage, obj) for obj in objects)


def object_md5(storage: Storage, obj: ObjectInfo) -> str:
    known = storage.content_md5(obj)
    if known is not None:
        return known
    digest = hashlib.md5()
    with storage.open_read(obj.key) as data:
        for block in iter(lambda: data.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
