"""`make deploy-up` / `make deploy-down`: the production topology (PostgreSQL storage, a gRPC code
server, the webserver and the daemon apart), driven through GraphQL as the UI drives it, under faults.

One deployment serves the module, on an S3 lake (SeaweedFS) so that step logs go to the bucket. It
runs from a copy of the project, the checkout an operator would update, so that a test can change
the code under it. The lake is read back with boto3 and plain pyiceberg, never the project's readers.
The tests run in file order: each fault starts from the state the one before left.
"""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from lake_assets.defs.automation import AUTOMATION_SENSOR, COLLECT_SCHEDULE
from lake_assets.defs.resources.lake import LakeResource
from lake_assets_tests.readback import Lake
from lake_tools.processes import alive, process_group

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.postgres]

PROJECT = Path(__file__).resolve().parents[1]
LOCATION, REPOSITORY = "lake_assets", "__repository__"
SETTINGS = {"LAKE_COLLECT_CRON": "* * * * *", "LAKE_TICK_INTERVAL_S": "5", "LAKE_RAW_SENSOR": "0"}
STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } }
  instance { runQueuingSupported daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""
RUNS = """{ runsOrError { ... on Runs { results { runId status startTime tags { key value } } } } }"""
TICKS = """query T($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
  ... on Schedule { scheduleState { ticks(limit: 50) { timestamp status runIds } } } } }"""
DESCRIPTION = """{ assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) { description } }"""


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


@dataclass
class Deployment:
    folder: Path
    checkout: Path
    env: dict[str, str]
    bucket: str
    s3: object
    observed: list = field(default_factory=list)  # (time, rows of today) seen by the reader thread

    def deploy(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lake_tools.deploy", *args, "--dir", str(self.folder)],
            cwd=self.checkout,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    @property
    def state(self) -> dict:
        return json.loads((self.folder / "state.json").read_text())

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        port = self.state["ports"]["webserver"]
        answer = requests.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        answer.raise_for_status()
        body = answer.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def runs(self) -> list[dict]:
        runs = self.graphql(RUNS)["runsOrError"]["results"]
        return [{**run, "tags": {t["key"]: t["value"] for t in run["tags"]}} for run in runs]

    def wait(self, what: str, check, timeout: float, every: float = 1.0):
        end = time.monotonic() + timeout
        while not (found := check()):
            if time.monotonic() > end:
                logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.folder.glob("*.log"))
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
            time.sleep(every)
        return found

    def healthy(self, timeout: float = 90) -> dict:
        def check():
            data = self.graphql(STATUS)
            loaded = [e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]] == ["LOADED"]
            daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
            return data if loaded and daemons and all(d["healthy"] for d in daemons) else None

        return self.wait("the code location and every daemon to be healthy", check, timeout)

    def backfill_today(self) -> dict:
        """trusted/tmdb's partition of today again, as the UI's Materialize launches it; the run once started."""
        before = {run["runId"] for run in self.runs()}
        launched = self.graphql(
            """mutation B($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on PythonError { message } } }""",
            {"p": {"partitionNames": [_today()], "assetSelection": [{"path": ["trusted", "tmdb"]}]}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return self.wait("the backfill's run to start", lambda: self.started_step(before), 120, 0.5)

    def started_step(self, before: set[str]) -> dict | None:
        """The new run, once its step runs (Spark is starting: nothing is published yet)."""
        for run in self.runs():
            if run["runId"] not in before and run["status"] == "STARTED":
                events = self.graphql(
                    """query E($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename } } } }""",
                    {"id": run["runId"]},
                )["logsForRun"]["events"]
                if any(e["__typename"] == "ExecutionStepStartEvent" for e in events):
                    return run
        return None

    def retry_of(self, run_id: str) -> dict | None:
        """The automatic retry of a run, once it finished."""
        retry = next((r for r in self.runs() if r["tags"].get("dagster/parent_run_id") == run_id), None)
        return self.finished(retry["runId"]) if retry else None

    def messages(self, run_id: str) -> list[str]:
        events = self.graphql(
            """query E($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } } }""",
            {"id": run_id},
        )["logsForRun"]["events"]
        return [e.get("message") or "" for e in events]

    def finished(self, run_id: str) -> dict | None:
        run = next(r for r in self.runs() if r["runId"] == run_id)
        return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    def catalog(self):
        """Plain pyiceberg on the deployment's catalog (the default SQLite one of an S3 lake)."""
        lake = LakeResource(
            root=self.env["LAKE_ROOT"],
            catalog_dir=self.env["LAKE_CATALOG_DIR"],
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        return Lake(lake).catalog()

    def rows_of_today(self) -> int | None:
        catalog = self.catalog()
        if not catalog.table_exists("trusted.tmdb"):
            return None
        days = catalog.load_table("trusted.tmdb").scan(selected_fields=("dt",)).to_arrow().column("dt").to_pylist()
        return Counter(str(d) for d in days).get(_today())

    def raw_ids_of_today(self) -> int:
        """Distinct movies in today's raw JSON Lines, fetched with boto3."""
        client = self.s3.boto3_client()
        ids = set()
        listing = client.list_objects_v2(Bucket=self.bucket, Prefix=f"lake/raw/tmdb/dt={_today()}/")
        for item in listing.get("Contents", []):
            if item["Key"].endswith(".jsonl"):
                body = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read().decode()
                ids.update(json.loads(line)["id"] for line in body.splitlines() if line.strip())
        return len(ids)


@pytest.fixture(scope="module")
def deployment(s3_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("deploy")
    checkout = base / "checkout"
    for part in ("lake_assets", "lake_tools", "deploy"):
        shutil.copytree(PROJECT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    bucket = f"deploy-{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "LAKE_", "AWS_", "DAGSTER_", "PYICEBERG_"))}
    env |= s3_server.env() | SETTINGS
    env |= {
        "LAKE_ROOT": f"s3://{bucket}/lake",
        "LAKE_CATALOG_DIR": str(base / "iceberg"),
        "TMDB_START_DATE": os.environ["TMDB_START_DATE"],
        "PYTHONPATH": str(checkout),  # the copy's package, not the editable install's
    }
    deployment = Deployment(folder=base / "deploy", checkout=checkout, env=env, bucket=bucket, s3=s3_server)
    up = deployment.deploy("up")
    assert up.returncode == 0, up.stderr[-3000:]
    deployment.up_output = up.stdout
    stop = threading.Event()

    def read_continuously():  # a reader of trusted/tmdb during every fault below
        while not stop.is_set():
            try:
                deployment.observed.append((time.time(), deployment.rows_of_today()))
            except Exception as error:  # a reader's error is an observation too
                deployment.observed.append((time.time(), error))
            stop.wait(0.3)

    reader = threading.Thread(target=read_continuously, daemon=True)
    reader.start()
    yield deployment
    stop.set()
    reader.join(10)
    deployment.deploy("down")


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


def test_the_topology_runs_apart_on_loopback_with_no_password_in_its_files(deployment):
    ports, pids = deployment.state["ports"], deployment.state["pids"]
    assert f"http://127.0.0.1:{ports['webserver']}" in deployment.up_output
    assert set(pids) == {"postgres", "code-server", "webserver", "daemon"} and len(set(pids.values())) == 4
    data = deployment.healthy()
    assert data["instance"]["runQueuingSupported"] is True
    daemons = {d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING"} <= daemons
    queue = deployment.graphql("{ instance { runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }")
    assert queue["instance"]["runQueueConfig"] == {
        "maxConcurrentRuns": 4,
        "tagConcurrencyLimitsYaml": "- key: dagster/backfill\n  limit: 1\n",
    }

    addresses = _listening_addresses(set(ports.values()))
    assert set(addresses) == set(ports.values()), addresses
    assert all(_is_loopback(a) for a in addresses.values()), addresses
    password = (deployment.folder / "pg" / "password").read_text().strip()
    written = [
        deployment.folder / "home" / "dagster.yaml",
        deployment.folder / "workspace.yaml",
        deployment.folder / "state.json",
    ]
    for path in [*written, *deployment.folder.glob("*.log")]:
        text = path.read_text(errors="replace")
        assert password not in text and deployment.env["AWS_SECRET_ACCESS_KEY"] not in text, path


def test_a_daily_collection_and_its_trusted_partition_run_through_it_with_logs_in_s3(deployment):
    today = _today()

    def published():
        runs = deployment.runs()
        collected = [r for r in runs if r["tags"].get("dagster/schedule_name") == COLLECT_SCHEDULE and r["status"] == "SUCCESS"]
        trusted = [r for r in runs if r["tags"].get("dagster/sensor_name") == AUTOMATION_SENSOR and r["status"] == "SUCCESS"]
        return (collected, trusted) if collected and trusted else None

    collected, trusted = deployment.wait("the schedule's collection and the automation's trusted run", published, 300, 2)
    assert [r["tags"]["dagster/partition"] for r in collected] == [today]
    assert deployment.rows_of_today() == deployment.raw_ids_of_today() > 100

    # Step logs are in the lake's bucket (S3ComputeLogManager), not on this machine's disk.
    listing = deployment.s3.boto3_client().list_objects_v2(Bucket=deployment.bucket, Prefix="lake/_dagster/compute_logs/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert any(trusted[0]["runId"] in key for key in keys), keys[:10]
    assert not (deployment.folder / "home" / "compute_logs").exists()


def test_new_code_loads_while_a_run_on_the_old_code_finishes(deployment):
    old = deployment.graphql(DESCRIPTION)["assetNodes"][0]["description"]
    run = deployment.backfill_today()
    source = deployment.checkout / "lake_assets" / "defs" / "assets" / "trusted.py"
    first_line = old.splitlines()[0]
    assert first_line in source.read_text()
    source.write_text(source.read_text().replace(first_line, f"{first_line} (version 2)", 1))

    reloaded = deployment.deploy("reload-code")
    assert reloaded.returncode == 0, reloaded.stderr
    assert deployment.graphql(DESCRIPTION)["assetNodes"][0]["description"].splitlines()[0] == f"{first_line} (version 2)"
    assert deployment.wait("the run on the old code", lambda: deployment.finished(run["runId"]), 180)["status"] == "SUCCESS"
    deployment.healthy()


def _one_version_throughout(deployment, since: float) -> None:
    """Every read of trusted/tmdb since `since` saw today's partition whole: no reader saw half a publish."""
    seen = [rows for at, rows in deployment.observed if at >= since]
    assert len(seen) > 20, seen
    assert set(map(str, seen)) == {str(deployment.raw_ids_of_today())}, Counter(map(str, seen))


def test_kill_9_of_the_code_server_mid_run_fails_it_and_the_retry_publishes(deployment):
    since = time.time()
    run = deployment.backfill_today()
    os.killpg(deployment.state["pids"]["code-server"], signal.SIGKILL)  # with its run worker, as a lost host would
    restarted = deployment.deploy("restart", "code-server")  # what a supervisor does
    assert restarted.returncode == 0, restarted.stderr

    failed = deployment.wait("run monitoring to fail the run", lambda: deployment.finished(run["runId"]), 120)
    assert failed["status"] == "FAILURE"
    assert any("is gone" in message for message in deployment.messages(run["runId"]))  # the cause, in the UI
    retry = deployment.wait("the retry to finish", lambda: deployment.retry_of(run["runId"]), 240)
    assert retry["status"] == "SUCCESS"
    _one_version_throughout(deployment, since)


def test_a_postgres_restart_mid_run_is_ridden_out_or_retried_and_nothing_is_half_published(deployment):
    since = time.time()
    run = deployment.backfill_today()
    restarted = deployment.deploy("restart", "postgres")
    assert restarted.returncode == 0, restarted.stderr
    # The webserver's one pooled connection (dagster-postgres keeps one, and does not ping it) fails
    # the first request after the restart; the pool then replaces it.
    answers = [_status_code(deployment) for _ in range(3)]
    assert answers[1:] == [200, 200], answers
    outcome = deployment.wait("the run", lambda: deployment.finished(run["runId"]), 240)
    if outcome["status"] == "FAILURE":  # then it says why in one line, and run retries runs it again
        assert deployment.wait("the retry to finish", lambda: deployment.retry_of(run["runId"]), 240)["status"] == "SUCCESS"
    else:
        assert outcome["status"] == "SUCCESS"
    _one_version_throughout(deployment, since)
    deployment.healthy()


def _status_code(deployment) -> int:
    port = deployment.state["ports"]["webserver"]
    return requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": RUNS}, timeout=60).status_code


def _minutes(ticks: list[dict]) -> list[int]:
    return sorted(int(t["timestamp"]) // 60 for t in ticks)


def test_daemon_and_webserver_restarts_lose_no_tick_and_no_run(deployment):
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": COLLECT_SCHEDULE}
    ticks = lambda: deployment.graphql(TICKS, {"s": selector})["scheduleOrError"]["scheduleState"]["ticks"]  # noqa: E731
    runs_before = {run["runId"]: run["status"] for run in deployment.runs()}
    os.kill(deployment.state["pids"]["daemon"], signal.SIGKILL)
    os.killpg(deployment.state["pids"]["webserver"], signal.SIGKILL)
    down_minute = int(time.time()) // 60
    assert deployment.deploy("restart", "webserver").returncode == 0
    assert {run["runId"]: run["status"] for run in deployment.runs()} == runs_before  # the UI shows every run
    deployment.wait("a minute to pass with no daemon", lambda: int(time.time()) // 60 > down_minute, 70)
    assert deployment.deploy("restart", "daemon").returncode == 0
    deployment.wait("the missed tick", lambda: max(_minutes(ticks())) > down_minute, 90)

    minutes = _minutes(ticks())
    assert len(minutes) == len(set(minutes)) and minutes == list(range(minutes[0], minutes[-1] + 1)), minutes
    runs = deployment.runs()
    collections = [r for r in runs if r["tags"].get("dagster/schedule_name") == COLLECT_SCHEDULE]
    assert [r["tags"]["dagster/partition"] for r in collections] == [_today()]  # its run key: one run per day
    automated = Counter(
        r["tags"].get("dagster/partition") for r in runs if r["tags"].get("dagster/sensor_name") == AUTOMATION_SENSOR
    )
    assert all(count == 1 for count in automated.values()), automated
    deployment.healthy()


def test_down_leaves_no_process_of_it_running(deployment):
    pids = deployment.state["pids"]
    group_members = process_group(pids["code-server"])
    down = deployment.deploy("down")
    assert down.returncode == 0, down.stderr
    assert "stopped: daemon, webserver, code-server, postgres" in down.stdout
    time.sleep(0.5)
    assert not [pid for pid in [*pids.values(), *group_members] if alive(pid)]


def test_a_wrong_database_password_is_refused_in_one_line_and_nothing_stays_up(tmp_path):
    folder = tmp_path / "deploy"
    refused = subprocess.run(
        [sys.executable, "-m", "lake_tools.deploy", "up", "--dir", str(folder)],
        cwd=PROJECT,
        env={**os.environ, "DAGSTER_PG_PASSWORD": "not-the-password"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "password authentication failed" in message and "not-the-password" not in message
    assert not (folder / "state.json").exists()
