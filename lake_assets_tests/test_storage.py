"""The storage contract on both backends (a local folder, a fresh bucket on a real S3 server), the
publish protocol over it, and the S3 backend's errors as a person sees them."""

import json
import os
import secrets
import socket
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import lake_assets.lib.storage.publish as publish_module
import lake_assets.lib.storage.s3 as s3_module
from lake_assets.defs.resources.lake import lake_resource_from_env
from lake_assets.lib.storage import LocalStorage, Storage, open_storage
from lake_assets.lib.storage.publish import MANIFEST, committed_keys, publish
from lake_assets.lib.storage.s3 import LakeStorageError, S3Storage
from lake_tools.processes import free_ports


def _keys(storage, prefix, start_after=None):
    return [obj.key for obj in storage.list(prefix, start_after=start_after)]


# --- objects ------------------------------------------------------------------------------------


def test_put_get_overwrite_download_and_missing_keys(storage_backend, tmp_path):
    storage = storage_backend
    assert storage.get_bytes("t/a.bin") is None

    storage.put_bytes(b"one", "t/a.bin")
    assert storage.get_bytes("t/a.bin") == b"one"
    (first,) = storage.list("t/")
    storage.put_bytes(b"two!", "t/a.bin")
    (second,) = storage.list("t/")
    assert storage.get_bytes("t/a.bin") == b"two!"
    assert (second.key, second.size) == ("t/a.bin", 4)
    assert second.etag != first.etag

    # Above the S3 multipart threshold too: the transfer manager's multipart path must give back
    # the same bytes.
    for name, size in (("small.bin", 3 << 20), ("large.bin", 40 << 20)):
        source = tmp_path / name
        source.write_bytes(os.urandom(size))
        storage.put_file(source, f"t/{name}")
        copy = tmp_path / "copy" / name
        storage.download(f"t/{name}", copy)
        assert copy.read_bytes() == source.read_bytes()
    assert {obj.key: obj.size for obj in storage.list("t/")} == {"t/a.bin": 4, "t/small.bin": 3 << 20, "t/large.bin": 40 << 20}

    with pytest.raises(FileNotFoundError):
        storage.download("t/missing.bin", tmp_path / "missing.bin")
    assert storage.uri("t/a.bin").endswith("/lake/t/a.bin")


def test_list_crosses_pages_resumes_after_any_listed_key_and_deletes_in_batches(storage_backend):
    storage = storage_backend
    keys = [f"many/k-{index:04d}.json" for index in range(1100)] + ["many/sub/x.json"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: storage.put_bytes(key.encode(), key), keys + ["many-other/x.json"]))

    listed = _keys(storage, "many/")
    assert sorted(listed) == sorted(keys)  # every key once, across the 1000-key pages; nothing outside the prefix
    for index in (0, 499, 998, 999, 1000, 1050, len(listed) - 2, len(listed) - 1):
        assert _keys(storage, "many/", start_after=listed[index]) == listed[index + 1 :]
    # A prefix is a string prefix, not a folder.
    assert sorted(_keys(storage, "many/k-10")) == [f"many/k-{index}.json" for index in range(1000, 1100)]

    storage.delete(listed)
    assert _keys(storage, "many/") == []
    assert _keys(storage, "many-other/") == ["many-other/x.json"]
    storage.delete([])


def test_start_after_resumes_across_folder_boundaries(storage_backend):
    # SeaweedFS orders `a/b/1` before `a/b-c`, AWS the other way round: a cursor is only ever a key
    # the same backend listed, and resuming after it must give exactly the rest of that listing.
    storage = storage_backend
    for key in ("a/b/1", "a/b-c", "a/z", "a/b/2", "a/a"):
        storage.put_bytes(b"x", key)
    listed = _keys(storage, "a/")
    assert sorted(listed) == ["a/a", "a/b-c", "a/b/1", "a/b/2", "a/z"]
    for index, key in enumerate(listed):
        assert _keys(storage, "a/", start_after=key) == listed[index + 1 :]


# --- the publish protocol -----------------------------------------------------------------------


def _files(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    files = {}
    for name, data in contents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = path
    return files


def test_list_folders_names_the_folders_directly_below_a_prefix(storage_backend):
    for key in ("t/dt=2024-01-02/a", "t/dt=2024-01-01/b", "t/dt=2024-01-01/c/d", "t/_staging/x", "t/file", "u/dt=2024-01-09/z"):
        storage_backend.put_bytes(b"x", key)
    expected = ["t/_staging/", "t/dt=2024-01-01/", "t/dt=2024-01-02/"]
    assert storage_backend.list_folders("t/") == expected
    assert storage_backend.list_folders("t/dt=2024-01-01/") == ["t/dt=2024-01-01/c/"]
    assert storage_backend.list_folders("missing/") == []
    # the fallback of the interface, derived from list(), answers the same
    assert Storage.list_folders(storage_backend, "t/") == expected


def test_publish_replaces_exactly_the_folder_and_the_manifest_names_the_version(storage_backend, tmp_path, monkeypatch):
    storage = storage_backend
    prefix = "trusted/tmdb/dt=2024-03-31"
    storage.put_bytes(b"neighbour", "trusted/tmdb/dt=2024-03-31-copy/keep.parquet")  # shares a string prefix
    storage.put_bytes(b"other day", "trusted/tmdb/dt=2024-04-01/keep.parquet")
    assert committed_keys(storage, prefix) is None

    v1 = _files(
        tmp_path / "v1",
        {"part-00000-aaa.parquet": b"a" * 10, "part-00001-aaa.parquet": b"b" * 20, "_rejected/part-00000-aaa.parquet": b"r"},
    )
    first = publish(storage, prefix, v1)
    assert first.keys == sorted(f"{prefix}/{name}" for name in v1)
    assert committed_keys(storage, prefix) == first.keys
    assert set(_keys(storage, f"{prefix}/")) == {*first.keys, f"{prefix}/{MANIFEST}"}
    manifest = json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}"))
    assert (manifest["version"], manifest["previous"], first.previous) == (first.version, None, None)
    assert {entry["name"]: entry["bytes"] for entry in manifest["files"]} == {
        name: path.stat().st_size for name, path in v1.items()
    }
    assert first.bytes == 31

    dead = f"{prefix}/part-00009-dead.parquet"
    storage.put_bytes(b"left by an attempt that died before its manifest", dead)
    v2 = _files(tmp_path / "v2", {"part-00000-bbb.parquet": b"new" * 5, "part-00001-bbb.parquet": b"new" * 7})
    second = publish(storage, prefix, v2)
    assert committed_keys(storage, prefix) == second.keys == sorted(f"{prefix}/{name}" for name in v2)
    assert second.previous == first.version != second.version
    assert json.loads(storage.get_bytes(f"{prefix}/{MANIFEST}"))["previous"] == first.version
    # Every file of version 1 is gone; the young leftover stays: it may be a live writer's upload.
    assert set(_keys(storage, f"{prefix}/")) == {*second.keys, f"{prefix}/{MANIFEST}", dead}
    assert [storage.get_bytes(key) for key in second.keys] == [b"new" * 5, b"new" * 7]
    assert storage.get_bytes("trusted/tmdb/dt=2024-03-31-copy/keep.parquet") == b"neighbour"
    assert storage.get_bytes("trusted/tmdb/dt=2024-04-01/keep.parquet") == b"other day"

    with pytest.raises(ValueError, match="must differ from committed"):
        publish(storage, prefix, v2)
    assert committed_keys(storage, prefix) == second.keys

    # Later, once the leftover is older than the grace period, the next publish sweeps it.
    monkeypatch.setattr(publish_module, "ORPHAN_GRACE_S", 0)
    time.sleep(1.1 if isinstance(storage, S3Storage) else 0.05)  # S3's LastModified has whole seconds; mtimes do not
    empty = publish(storage, prefix, {})  # a day without rows is published as empty, not left stale
    assert committed_keys(storage, prefix) == empty.keys == []
    assert _keys(storage, f"{prefix}/") == [f"{prefix}/{MANIFEST}"]


# --- S3: configuration and errors ---------------------------------------------------------------


def test_spark_path_is_s3a_only_when_the_cluster_has_s3a(monkeypatch):
    assert S3Storage("s3://bucket/lake").spark_path("trusted/filmes/part-0.parquet") is None
    native = open_storage("s3a://bucket/lake/", spark_s3a=True)
    assert native.root_uri == "s3://bucket/lake"
    assert native.spark_path("trusted/filmes/part-0.parquet") == "s3a://bucket/lake/trusted/filmes/part-0.parquet"
    assert LocalStorage("/tmp/lake").spark_path("raw/dt=2024-01-01/x") == "file:///tmp/lake/raw/dt=2024-01-01/x"

    monkeypatch.setenv("LAKE_ROOT", "s3://bucket/lake")
    monkeypatch.setenv("LAKE_SPARK_S3A", "1")
    assert lake_resource_from_env().storage("trusted").spark_path("t/x") == "s3a://bucket/lake/t/x"
    with pytest.raises(ValueError):
        S3Storage("s3:///lake")


def _every_operation(storage: S3Storage, tmp_path: Path):
    source = tmp_path / "file.bin"
    source.write_bytes(b"data")
    return {
        "upload": lambda: storage.put_file(source, "t/file.bin"),
        "put": lambda: storage.put_bytes(b"data", "t/file.bin"),
        "get": lambda: storage.get_bytes("t/file.bin"),
        "download": lambda: storage.download("t/file.bin", tmp_path / "out.bin"),
        "list": lambda: list(storage.list("t/")),
        "delete": lambda: storage.delete(["t/file.bin"]),
        "publish": lambda: publish(storage, "t", {"part-0.bin": source}),
    }


def _failure(call) -> LakeStorageError:
    with pytest.raises(LakeStorageError) as caught:
        call()
    error = caught.value
    assert "\n" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # one line, not a chain of tracebacks
    return error


def test_missing_bucket_is_one_line_naming_bucket_endpoint_and_operation(s3_lake_root, tmp_path):
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    storage = S3Storage(f"s3://{bucket}/lake", endpoint_url=endpoint)
    for operation, call in _every_operation(storage, tmp_path).items():
        message = str(_failure(call))
        assert "does not exist (NoSuchBucket)" in message, message
        assert bucket in message and endpoint in message, message
        first_request = "get" if operation == "publish" else operation  # publish reads the manifest first
        assert message.startswith(f"S3 {first_request} of s3://{bucket}/lake/"), message


@pytest.mark.parametrize(
    "variable, code",
    [("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"), ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")],
)
def test_rejected_credentials_are_named_and_no_secret_is_ever_shown(s3_lake_root, tmp_path, monkeypatch, variable, code):
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    real_secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    wrong = f"wrong{secrets.token_hex(12)}"
    monkeypatch.setenv(variable, wrong)
    storage = S3Storage(s3_lake_root, endpoint_url=endpoint)
    for call in _every_operation(storage, tmp_path).values():
        error = _failure(call)
        shown = "".join(traceback.format_exception(error)) + repr(error.args)
        assert code in shown and endpoint in shown and s3_lake_root.split("/")[2] in shown
        assert real_secret not in shown and wrong not in shown
    assert real_secret not in repr(storage) and wrong not in repr(vars(storage))


def test_unreachable_endpoint_fails_fast_with_one_clear_line(s3_lake_root, tmp_path):
    (port,) = free_ports(1)  # nothing listens there: every connection is refused
    endpoint = f"http://127.0.0.1:{port}"
    storage = S3Storage(s3_lake_root, endpoint_url=endpoint)
    for operation, call in _every_operation(storage, tmp_path).items():
        started = time.monotonic()
        message = str(_failure(call))
        assert time.monotonic() - started < 10, f"{operation} took {time.monotonic() - started:.1f}s"
        assert "endpoint unreachable" in message and endpoint in message and s3_lake_root.split("/")[2] in message


def test_an_endpoint_that_never_answers_times_out_within_the_bound(s3_lake_root, tmp_path, monkeypatch):
    # Accepts connections and never answers: each attempt ends at the read timeout, and the number
    # of attempts is bounded, so the whole call is bounded.
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(10)], daemon=True).start()
    monkeypatch.setattr(s3_module, "READ_TIMEOUT", 0.5)
    storage = S3Storage(s3_lake_root, endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}", max_attempts=2)
    started = time.monotonic()
    message = str(_failure(lambda: storage.get_bytes("t/file.bin")))
    assert 1.0 <= time.monotonic() - started < 5
    assert "no answer within 0.5s" in message and len(accepted) == 2
    listener.close()


def test_copy_and_range_reads(storage_backend):
    storage = storage_backend
    storage.put_bytes(b"0123456789" * 1000, "_staging/x/part-0.parquet")
    storage.copy("_staging/x/part-0.parquet", "t/part-0.parquet")
    assert storage.get_bytes("t/part-0.parquet") == b"0123456789" * 1000
    assert storage.get_range("t/part-0.parquet", 9995, 5) == b"56789"
    storage.put_bytes(b"new", "_staging/x/part-0.parquet")  # the copy is independent of its source
    assert storage.get_bytes("t/part-0.parquet")[:3] == b"012"


def test_publish_from_stored_files_is_a_copy(storage_backend):
    from lake_assets.lib.storage.publish import StoredFile, committed_keys, publish

    storage = storage_backend
    storage.put_bytes(b"a" * 10, "_staging/run/part-1.parquet")
    published = publish(storage, "trusted/t", {"part-1.parquet": StoredFile("_staging/run/part-1.parquet", 10)})
    assert committed_keys(storage, "trusted/t") == ["trusted/t/part-1.parquet"] == published.keys
    assert storage.get_bytes("trusted/t/part-1.parquet") == b"a" * 10 and published.bytes == 10


def test_abandoned_spark_scratch_is_swept_by_the_next_write(tmp_path):
    import os
    import time

    from lake_assets.lib.staging import SparkStage
    from lake_assets.lib.storage import LocalStorage

    storage = LocalStorage(tmp_path)
    storage.put_bytes(b"old", "_staging/dead-run/data/part-0.parquet")
    storage.put_bytes(b"new", "_staging/live-run/data/part-0.parquet")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / "_staging/dead-run/data/part-0.parquet", (two_days_ago, two_days_ago))
    SparkStage(storage).close()
    assert [o.key for o in storage.list("_staging/")] == ["_staging/live-run/data/part-0.parquet"]
