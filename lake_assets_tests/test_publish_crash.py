"""The publish protocol under failure: a reader keeps seeing the previous version, exactly, until a
publish completes, and the next publish leaves nothing behind.

(a) the S3 server is SIGKILLed while a partition's files are uploading, then restarted on its data;
(b) the writer itself fails after some files landed, on both backends.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake_assets.lib.storage.publish as publish_module
from lake_assets.lib.storage.base import Storage
from lake_assets.lib.storage.publish import MANIFEST, committed_keys, publish
from lake_assets.lib.storage.s3 import LakeStorageError, S3Storage
from lake_assets_tests.delegating_storage import DelegatingStorage
from lake_tools.processes import wait_for_exit
from lake_tools.seaweedfs import SeaweedS3

PREFIX = "trusted/tmdb/dt=2024-03-31"


def _write_version(
    folder: Path, version: str, files: int, rows_per_file: int, payload_bytes: int = 16
) -> tuple[dict[str, Path], pa.Table]:
    """Parquet part files named like Spark's (a write id in each name) and the rows they hold."""
    folder.mkdir(parents=True)
    write_id = uuid.uuid4().hex[:12]
    written, tables = {}, []
    for index in range(files):
        ids = range(index * rows_per_file, (index + 1) * rows_per_file)
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "title": [f"{version}-{row}" for row in ids],
                # Incompressible bytes, so that uploads take long enough to be cut in the middle.
                "payload": [os.urandom(payload_bytes) for _ in ids],
            }
        )
        name = f"part-{index:05d}-{write_id}.parquet"
        pq.write_table(table, folder / name)
        written[name] = folder / name
        tables.append(table)
    return written, pa.concat_tables(tables)


def _read_committed(storage: Storage, folder: Path) -> pa.Table:
    """What a reader that goes through the manifest sees: the committed files' rows, by id."""
    tables = []
    for key in committed_keys(storage, PREFIX):
        local = folder / uuid.uuid4().hex / key.rsplit("/", 1)[1]
        storage.download(key, local)
        tables.append(pq.read_table(local))
    return pa.concat_tables(tables).sort_by("id")


def _published_keys(files: dict[str, Path]) -> list[str]:
    return sorted(f"{PREFIX}/{name}" for name in files)


class _PausesAfterUploads(DelegatingStorage):
    """Once `count` uploads have landed, signals `landed` and holds that upload's thread until
    `resume` is set, so the publish cannot get past its uploads before the test acts."""

    def __init__(self, inner: Storage, count: int):
        super().__init__(inner)
        self.count, self.done = count, 0
        self.landed, self.resume = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def put_file(self, local_path, key):
        self.inner.put_file(local_path, key)
        with self._lock:
            self.done += 1
            reached = self.done == self.count
        if reached:
            self.landed.set()
            self.resume.wait(30)


class _FailsAfterUploads(DelegatingStorage):
    """Uploads after the first `count` raise. With `dies`, the writer's process is gone from then on:
    nothing it asks for afterwards (its clean-up included) reaches the storage."""

    def __init__(self, inner: Storage, count: int, dies: bool = False):
        super().__init__(inner)
        self.count, self.done, self.dies = count, 0, dies
        self._lock = threading.Lock()

    def put_file(self, local_path, key):
        with self._lock:
            self.done += 1
            fail = self.done > self.count
        if fail:
            raise OSError("injected: the writer failed after some files landed")
        self.inner.put_file(local_path, key)

    def _alive(self):
        if self.dies and self.done > self.count:
            raise OSError("injected: the writer is dead")

    def get_with_etag(self, key):
        self._alive()
        return self.inner.get_with_etag(key)

    def delete(self, keys):
        self._alive()
        self.inner.delete(keys)


@pytest.fixture
def killable_s3(monkeypatch):
    """A server of this test's own, so killing it disturbs no other test."""
    server = SeaweedS3().start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


def test_server_killed_mid_publish_then_restarted_still_serves_the_previous_version(killable_s3, tmp_path):
    server = killable_s3
    root = server.create_bucket("lake")
    storage = S3Storage(f"{root}/lake", endpoint_url=server.endpoint_url)
    v1_files, v1_rows = _write_version(tmp_path / "v1", "v1", files=3, rows_per_file=500)
    publish(storage, PREFIX, v1_files)
    v2_files, v2_rows = _write_version(tmp_path / "v2", "v2", files=16, rows_per_file=1000, payload_bytes=1024)

    paused = _PausesAfterUploads(storage, count=4)
    outcome = {}

    def run_publish():
        try:
            outcome["published"] = publish(paused, PREFIX, v2_files)
        except Exception as error:
            outcome["error"] = error

    writer = threading.Thread(target=run_publish)
    writer.start()
    assert paused.landed.wait(30), "no upload landed"
    server.kill()  # SIGKILL while the other upload threads are mid-request
    paused.resume.set()
    writer.join(60)
    assert not writer.is_alive()
    assert "published" not in outcome
    assert isinstance(outcome["error"], LakeStorageError) and "endpoint unreachable" in str(outcome["error"])

    server.restart()
    client = server.boto3_client()
    listed = {obj["Key"]: obj["Size"] for obj in client.list_objects_v2(Bucket="lake", Prefix=f"lake/{PREFIX}/")["Contents"]}
    landed = {
        f"lake/{PREFIX}/{name}": path.stat().st_size for name, path in v2_files.items() if f"lake/{PREFIX}/{name}" in listed
    }
    assert len(landed) >= 4, "the kill should come after some of the new files landed"
    assert all(listed[key] == size for key, size in landed.items()), "an acknowledged upload came back partial"
    assert committed_keys(storage, PREFIX) == _published_keys(v1_files)
    assert _read_committed(storage, tmp_path / "read-after-crash").equals(v1_rows.sort_by("id"))

    published = publish(storage, PREFIX, v2_files)
    assert published.keys == committed_keys(storage, PREFIX) == _published_keys(v2_files)
    assert _read_committed(storage, tmp_path / "read-after-rerun").equals(v2_rows.sort_by("id"))
    everything = [
        obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="lake") for obj in page.get("Contents", [])
    ]
    assert sorted(everything) == sorted([f"lake/{key}" for key in published.keys] + [f"lake/{PREFIX}/{MANIFEST}"])


def test_writer_failing_mid_publish_removes_its_uploads_and_leaves_the_previous_version(storage_backend, tmp_path):
    storage = storage_backend
    v1_files, v1_rows = _write_version(tmp_path / "v1", "v1", files=3, rows_per_file=200)
    publish(storage, PREFIX, v1_files)
    v2_files, v2_rows = _write_version(tmp_path / "v2", "v2", files=8, rows_per_file=300)

    failing = _FailsAfterUploads(storage, count=3)
    with pytest.raises(OSError, match="injected"):
        publish(failing, PREFIX, v2_files)
    assert failing.done > 3  # some files had landed
    assert sorted(obj.key for obj in storage.list("")) == sorted(_published_keys(v1_files) + [f"{PREFIX}/{MANIFEST}"])
    assert committed_keys(storage, PREFIX) == _published_keys(v1_files)
    assert _read_committed(storage, tmp_path / "read-after-failure").equals(v1_rows.sort_by("id"))

    published = publish(storage, PREFIX, v2_files)
    assert published.keys == committed_keys(storage, PREFIX) == _published_keys(v2_files)
    assert _read_committed(storage, tmp_path / "read-after-rerun").equals(v2_rows.sort_by("id"))
    assert sorted(obj.key for obj in storage.list("")) == sorted(published.keys + [f"{PREFIX}/{MANIFEST}"])


def test_writer_dying_mid_publish_leaves_the_previous_version_and_old_leftovers_are_swept(storage_backend, tmp_path, monkeypatch):
    storage = storage_backend
    v1_files, v1_rows = _write_version(tmp_path / "v1", "v1", files=3, rows_per_file=200)
    publish(storage, PREFIX, v1_files)
    v2_files, _ = _write_version(tmp_path / "v2", "v2", files=8, rows_per_file=300)

    dying = _FailsAfterUploads(storage, count=3, dies=True)
    with pytest.raises(OSError, match="injected") as caught:
        publish(dying, PREFIX, v2_files)
    assert any("could not be removed" in note for note in caught.value.__notes__)
    leftovers = {obj.key for obj in storage.list(f"{PREFIX}/")} - set(_published_keys(v1_files)) - {f"{PREFIX}/{MANIFEST}"}
    assert len(leftovers) == 3 and leftovers <= set(_published_keys(v2_files))
    assert committed_keys(storage, PREFIX) == _published_keys(v1_files)
    assert _read_committed(storage, tmp_path / "read-after-failure").equals(v1_rows.sort_by("id"))

    # The next run (new write id) commits; the dead writer's files are young, so they might belong
    # to a live writer still uploading: they stay.
    v3_files, v3_rows = _write_version(tmp_path / "v3", "v3", files=2, rows_per_file=100)
    published = publish(storage, PREFIX, v3_files)
    assert _read_committed(storage, tmp_path / "read-v3").equals(v3_rows.sort_by("id"))
    assert {obj.key for obj in storage.list("")} == {*published.keys, f"{PREFIX}/{MANIFEST}", *leftovers}

    # Once they are older than the grace period, the next publish sweeps them.
    monkeypatch.setattr(publish_module, "ORPHAN_GRACE_S", 0)
    time.sleep(1.1 if isinstance(storage, S3Storage) else 0.05)  # S3's LastModified has whole seconds; mtimes do not
    v4_files, v4_rows = _write_version(tmp_path / "v4", "v4", files=2, rows_per_file=100)
    published = publish(storage, PREFIX, v4_files)
    assert _read_committed(storage, tmp_path / "read-v4").equals(v4_rows.sort_by("id"))
    assert sorted(obj.key for obj in storage.list("")) == sorted(published.keys + [f"{PREFIX}/{MANIFEST}"])


@pytest.mark.services  # a SeaweedFS of its own, in a process it kills
@pytest.mark.s3
def test_the_server_never_outlives_a_test_process_that_is_killed(tmp_path):
    # The kill test's server must not outlive a pytest that dies without its teardown.
    owner = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, os, signal\n"
            "from lake_tools.seaweedfs import SeaweedS3\n"
            "server = SeaweedS3().start()\n"
            "print(json.dumps({'pid': server.pid, 'dir': str(server.data_dir), 'ports': server.ports}), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    server = json.loads(owner.stdout)
    assert wait_for_exit(server["pid"], timeout=10, every=0.05), f"weed (pid {server['pid']}) outlived its owner"
    shutil.rmtree(server["dir"], ignore_errors=True)
    for name, port in server["ports"].items():
        if name.endswith(".grpc"):
            for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                path.unlink(missing_ok=True)
