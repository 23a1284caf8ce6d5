"""A local AWS Glue Data Catalog for tests and for trying the catalog: one `moto_server` process.

`MotoGlue` owns exactly one process (moto's standalone server, from the dev extra's `moto[server]`)
on a loopback port, signals it only by its PID, and is killed by a watcher process if its owner
dies first. Moto keeps everything in memory: a stopped server forgets its catalog. The `up`/`down`
CLI starts a long-lived one for `make glue-up` and records its PID for `make glue-down`.

    python -m lake_tools.moto_glue up --port 5000     # then: AWS_ENDPOINT_URL_GLUE=http://127.0.0.1:5000
    python -m lake_tools.moto_glue show --port 5000   # the tables and partitions it holds
    python -m lake_tools.moto_glue down
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lake_tools.processes import (
    exited_at_start,
    free_port,
    is_running,
    reap,
    start_process,
    start_watchdog,
    stop_pid,
    stop_process,
    wait_until_ready,
)

DEV_PORT = 5000
REGION = "us-east-1"
STATE_DIR = Path(".moto")
# Moto accepts any credentials; these name no real account.
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto"}


def moto_server_binary() -> Path:
    candidate = Path(sys.executable).parent / "moto_server"
    if not candidate.exists():
        raise FileNotFoundError("no `moto_server`: install the dev extra (`pip install -e .[dev]`, moto[server])")
    return candidate


class MotoGlue:
    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._watcher: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables that point Glue, and only Glue, at this server."""
        return {"AWS_ENDPOINT_URL_GLUE": self.endpoint_url}

    def start(self, *, watch_owner: bool = True, timeout: float = 30) -> "MotoGlue":
        self.process = start_process(
            [str(moto_server_binary()), "-H", "127.0.0.1", "-p", str(self.port)],
            output=self.log_path or subprocess.DEVNULL,
        )
        if watch_owner:
            self._watcher = start_watchdog(pids=[self.process.pid])
        try:
            wait_until_ready(
                f"moto_server on {self.endpoint_url} ({timeout}s)",
                self._answers,
                deadline=time.monotonic() + timeout,
                exited=exited_at_start(self.process, "moto_server"),
                every=0.1,
            )
        except TimeoutError:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=2):
            return True

    def reset(self) -> None:
        """Forget every resource (each test starts from an empty catalog)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def client(self):
        import boto3

        return boto3.client(
            "glue",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=DEV_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DEV_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
        reap(self._watcher)
        self._watcher = None

    def __enter__(self) -> "MotoGlue":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _is_our_moto(pid: int) -> bool:
    """The recorded PID is still a moto_server (not a reused PID)."""
    return is_running(pid, "moto_server")


def describe(glue) -> str:
    """Every table and partition of the catalog, for a person."""
    lines = []
    for database in glue.get_databases()["DatabaseList"]:
        for table in glue.get_tables(DatabaseName=database["Name"])["TableList"]:
            descriptor = table["StorageDescriptor"]
            keys = [k["Name"] for k in table.get("PartitionKeys", [])]
            lines.append(
                f"{database['Name']}.{table['Name']}: {len(descriptor['Columns'])} columns, {descriptor['Location']}"
                + (f", partitioned by {', '.join(keys)}" if keys else "")
            )
            if keys:
                pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database["Name"], TableName=table["Name"])
                for partition in sorted((p for page in pages for p in page["Partitions"]), key=lambda p: p["Values"]):
                    lines.append(f"  {'/'.join(partition['Values'])}  {partition['StorageDescriptor']['Location']}")
    return "\n".join(lines) or "(no tables)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_tools.moto_glue", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("up", "start a long-lived moto Glue"), ("show", "print its tables and partitions")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--port", type=int, default=DEV_PORT)
    commands.add_parser("down", help="stop the moto Glue started by `up`, by its recorded PID")
    args = parser.parse_args(argv)
    state = STATE_DIR / "server.json"
    recorded = json.loads(state.read_text()) if state.exists() else None
    running = recorded is not None and _is_our_moto(recorded["pid"])
    if args.command == "up":
        if running:
            print(f"moto Glue already running (pid {recorded['pid']}) on port {recorded['port']}")
        else:
            STATE_DIR.mkdir(exist_ok=True)
            server = MotoGlue(args.port, log_path=STATE_DIR / "moto.log").start(watch_owner=False)
            state.write_text(json.dumps({"pid": server.process.pid, "port": server.port}))
            print(f"moto Glue started (pid {server.process.pid}) at {server.endpoint_url}; it keeps the catalog in memory")
        port = recorded["port"] if running else args.port
        env = " ".join(f"{k}={v}" for k, v in {**DEV_CREDENTIALS, "AWS_REGION": REGION}.items())
        glue = f"PYICEBERG_CATALOG__LAKE__TYPE=glue PYICEBERG_CATALOG__LAKE__GLUE__ENDPOINT=http://127.0.0.1:{port}"
        print(f"Use it: {glue} PYICEBERG_CATALOG__LAKE__GLUE__REGION={REGION} {env} make run")
    elif args.command == "show":
        print(describe(MotoGlue(args.port).client()))
    else:
        if running:
            stop_pid(recorded["pid"], timeout=10)
            print(f"moto Glue (pid {recorded['pid']}) stopped")
        else:
            print("moto Glue was not running")
        state.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
