"""`make deploy-up` / `make deploy-down`: the production topology (PostgreSQL storage, a gRPC code
server, the webserver and the daemon apart), started, reloaded and stopped by pid."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lake_tools.processes import alive

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.postgres]

PROJECT = Path(__file__).resolve().parents[1]
STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } }
  instance { runQueuingSupported daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""


def _deploy(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lake_tools.deploy", *args, "--dir", str(folder)],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _status(port: int) -> dict:
    answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": STATUS}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]


def _healthy(port: int, deadline_s: float = 90) -> dict:
    """The status once the code location is loaded and every daemon has sent a heartbeat."""
    end = time.monotonic() + deadline_s
    while True:
        data = _status(port)
        loaded = [e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]] == ["LOADED"]
        daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        if loaded and daemons and all(d["healthy"] for d in daemons):
            return data
        if time.monotonic() > end:
            raise AssertionError(f"not healthy after {deadline_s}s: {data}")
        time.sleep(1)


def _listening_addresses(ports: set[int]) -> dict[int, str]:
    """Local address of each listening TCP socket on `ports`, from /proc/net/tcp and tcp6."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in ports:  # 0A: LISTEN
                found[int(port, 16)] = address
    return found


def _is_loopback(address: str) -> bool:
    # IPv4 127.0.0.1 is stored little-endian; an IPv6 socket may hold it as ::ffff:127.0.0.1.
    return address in ("0100007F", "0000000000000000FFFF00000100007F")


def test_the_topology_runs_apart_on_loopback_reloads_code_and_stops_by_pid(tmp_path):
    folder = tmp_path / "deploy"
    up = _deploy(folder, "up")
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        state = json.loads((folder / "state.json").read_text())
        ports, pids = state["ports"], state["pids"]
        assert f"http://127.0.0.1:{ports['webserver']}" in up.stdout
        assert set(pids) == {"postgres", "code-server", "webserver", "daemon"} and len(set(pids.values())) == 4

        data = _healthy(ports["webserver"])
        assert data["instance"]["runQueuingSupported"] is True
        daemons = {d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
        assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING"} <= daemons

        # Nothing listens beyond this machine, and the password is in no file Dagster reads or writes.
        addresses = _listening_addresses(set(ports.values()))
        assert set(addresses) == set(ports.values()), addresses
        assert all(_is_loopback(a) for a in addresses.values()), addresses
        password = (folder / "pg" / "password").read_text().strip()
        for written in [folder / "home" / "dagster.yaml", folder / "workspace.yaml", *folder.glob("*.log")]:
            assert password not in written.read_text(errors="replace"), written

        # A new code version: the code server is replaced, the webserver and daemon stay.
        restarted = _deploy(folder, "restart-code")
        assert restarted.returncode == 0, restarted.stderr[-2000:]
        after = json.loads((folder / "state.json").read_text())["pids"]
        assert after["code-server"] != pids["code-server"] and not alive(pids["code-server"])
        assert {k: after[k] for k in ("webserver", "daemon", "postgres")} == {
            k: pids[k] for k in ("webserver", "daemon", "postgres")
        }
        _healthy(ports["webserver"])
    finally:
        down = _deploy(folder, "down")
    assert down.returncode == 0, down.stderr[-2000:]
    time.sleep(0.5)
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert "stopped: daemon, webserver, code-server, postgres" in down.stdout


def test_a_wrong_database_password_is_refused_in_one_line_and_nothing_stays_up(tmp_path):
    folder = tmp_path / "deploy"
    refused = _deploy(folder, "up", DAGSTER_PG_PASSWORD="not-the-password")
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "password authentication failed" in message and "not-the-password" not in message
    assert not (folder / "state.json").exists()
