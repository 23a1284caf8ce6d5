"""One real Dagster deployment for the end-to-end tests, started once per test session.

`dagster dev` (webserver + daemon + code server) runs with the project's `dagster.yaml` (run queue,
one run at a time) in a temporary DAGSTER_HOME, a temporary local lake (`LAKE_ROOT`), and a Spark
Connect server of its own (a free port, state in the session's temp dir), warmed up while Dagster
starts. The Connect server's jobs run on a real cluster: a Spark standalone master and two workers
of one core and 1 GiB each (lake_tools/cluster.py), so every e2e run is distributed over two
executor JVMs, as on a cluster of hosts, for about 10 s more start-up than a `local[2]` server
and no second deployment. Everything is stopped at the end of the session: `dagster dev` by process
group, Spark through its pid file, the cluster's daemons by pid. If pytest itself dies (SIGKILL, a
CI timeout), a small watcher process kills them all, so no server outlives the test run.

The deployment runs as `make dev` does, automation on, with settings for a test session: the daily
collection fires every minute (one run per day all the same: its run key is the partition), the
automation and alert sensors tick every 5 s, alerts go to a loopback webhook in this process, and the
raw-arrival sensor starts stopped, because its test turns it on after seeding history.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from lake_assets.defs.resources.lake import LakeResource
from lake_tools.cluster import StandaloneCluster
from lake_tools.devserver import prepare_dagster_home, start_dagster_dev
from lake_tools.fake_webhook import FakeWebhook
from lake_tools.processes import exited_at_start, free_port, reap, start_watchdog, stop_process_group, wait_until_ready

LOCATION = "lake_assets"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a `Definitions` object
READY_TIMEOUT_S = 180
TEST_SETTINGS = {"LAKE_COLLECT_CRON": "* * * * *", "LAKE_TICK_INTERVAL_S": "5", "LAKE_RAW_SENSOR": "0"}


@dataclass
class DagsterServer:
    url: str
    lake_root: Path
    dagster_home: Path
    log_path: Path
    webhook: FakeWebhook
    spark_remote: str  # the warm Connect server the runs use (its catalog is persistent, as in make dev)
    cluster: StandaloneCluster
    spark_ui: str  # the Connect server's driver UI, whose REST API counts each executor's tasks

    @property
    def lake(self) -> LakeResource:
        return LakeResource(root=str(self.lake_root))

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return body["data"]

    def wait(self, what: str, check, timeout: float, every: float = 2.0):
        """Poll `check` until it returns something truthy; on timeout, fail with the deployment's log."""
        try:
            return wait_until_ready(what, check, deadline=time.monotonic() + timeout, every=every, retry_on=())
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}\n--- dagster dev log ---\n{self.log_tail()}"
            ) from None

    def launch_backfill(self, path: list[str], partitions: list[str], title: str) -> str:
        """A backfill of one asset's partitions, as the UI's Materialize... launches it; its id."""
        data = self.graphql(
            """mutation Backfill($params: LaunchBackfillParams!) {
                 launchPartitionBackfill(backfillParams: $params) {
                   __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"params": {"partitionNames": partitions, "assetSelection": [{"path": path}], "title": title}},
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def tasks_per_worker(self) -> dict[str, int]:
        return self.cluster.tasks_per_worker(self.spark_ui)


def _location_loaded(server: DagsterServer) -> bool:
    data = server.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries { name
               locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    )
    for entry in data["workspaceOrError"].get("locationEntries", []):
        if entry["name"] == LOCATION:
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                raise RuntimeError(f"code location {LOCATION} failed to load: {loaded['message']}")
            return loaded is not None and loaded["__typename"] == "RepositoryLocation"
    return False


@pytest.fixture(scope="session")
def dagster_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("dagster-e2e")
    cluster = StandaloneCluster(base / "cluster", workers=2, worker_cores=1, worker_memory="1g")
    cluster.start()
    spark_ui = free_port()
    spark = cluster.connect_server(base / "spark", port=free_port(), ui_port=spark_ui)
    try:
        spark.start()
    except BaseException:
        cluster.stop()
        raise
    webhook = FakeWebhook().start()
    home = prepare_dagster_home(base / "dagster_home")
    lake_root = base / "lake"
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TMDB_", "LAKE_", "AWS_", "DAGSTER_"))}
    env.update(
        LAKE_ROOT=str(lake_root),
        SPARK_REMOTE=spark.remote,
        TMDB_START_DATE=os.environ["TMDB_START_DATE"],
        LAKE_ALERT_WEBHOOK_URL=webhook.url,
        LAKE_UI_BASE_URL=f"http://127.0.0.1:{port}",
        **TEST_SETTINGS,
    )
    log_path = base / "dagster-dev.log"
    with log_path.open("wb") as log:
        # cwd: a folder without a dagster.yaml, so dagster dev uses DAGSTER_HOME's copy and says nothing.
        process = start_dagster_dev(home, env, port, cwd=base, log=log)
    watcher = start_watchdog(groups=[process.pid, *cluster.pids().values()], pids=[spark.pid()])
    server = DagsterServer(
        url=f"http://127.0.0.1:{port}",
        lake_root=lake_root,
        dagster_home=home,
        log_path=log_path,
        webhook=webhook,
        spark_remote=spark.remote,
        cluster=cluster,
        spark_ui=f"http://127.0.0.1:{spark_ui}",
    )
    try:
        cluster.wait_for_executors()  # while Dagster starts
        spark.warm_up()
        wait_until_ready(
            f"dagster dev's code location ({READY_TIMEOUT_S}s)",
            lambda: _location_loaded(server),
            deadline=time.monotonic() + READY_TIMEOUT_S,
            exited=exited_at_start(process, "dagster dev", lambda: f":\n{server.log_tail()}"),
            detail=lambda: f":\n{server.log_tail()}",
            every=0.5,
        )
        yield server
    finally:
        stop_process_group(process)
        spark.stop()
        webhook.stop()
        cluster.stop()
        reap(watcher)
