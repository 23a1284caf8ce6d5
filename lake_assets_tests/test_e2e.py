"""End to end with the real services: `dagster dev` (webserver, daemon with the project's run queue,
code server) and a warm Spark Connect server, driven only through GraphQL, as the UI drives them.
The lake is read back with DuckDB and the json module, never through Spark or the project's readers."""

import datetime as dt
import json
import time
from pathlib import Path

import duckdb
import pytest

from lake_assets.sensors import SENSOR_NAME
from lake_assets_tests.dagster_server import LOCATION, REPOSITORY
from lake_tools.seed_history import seed, snapshot_records

pytestmark = pytest.mark.e2e

HISTORY = [(dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(30)]
ARRIVALS = ["2024-02-01", "2024-02-02"]  # dropped after the sensor is on: beyond the seeded history
BACKFILL_TIMEOUT_S = 300
SENSOR_TIMEOUT_S = 180

RUNS = """query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status tags { key value } } } } }"""


def _wait(what: str, check, timeout: float, server, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}\n--- dagster dev log ---\n{server.log_tail()}"
            )
        time.sleep(every)


def _raw_movie_ids(lake_root: Path, day: str) -> int:
    """Distinct movie ids in one raw partition's JSON Lines: what trusted/tmdb must hold for that day."""
    ids = set()
    for path in (lake_root / "raw" / "tmdb" / f"dt={day}").glob("*.jsonl"):
        ids.update(json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip())
    return len(ids)


def _trusted_rows(lake_root: Path) -> dict[str, int]:
    pattern = str(lake_root / "trusted" / "tmdb" / "*" / "*.parquet")
    if not list((lake_root / "trusted" / "tmdb").glob("*/*.parquet")):
        return {}
    rows = duckdb.sql(f"select dt, count(*) from read_parquet('{pattern}', hive_partitioning = true) group by dt").fetchall()
    return {str(day): count for day, count in rows}


def _runs(server, **tags) -> list[dict]:
    data = server.graphql(RUNS, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})
    return data["runsOrError"]["results"]


@pytest.fixture(scope="module")
def records():
    return snapshot_records()


@pytest.fixture(scope="module")
def backfill(dagster_server, records):
    """30 days of raw history landed from outside, then one backfill of trusted/tmdb over them, with
    the tasks each worker's executors had run before and after it."""
    landed = seed(dagster_server.lake, dt.date.fromisoformat(HISTORY[0]), len(HISTORY), records)
    tasks_before = dagster_server.tasks_per_worker()
    data = dagster_server.graphql(
        """mutation Backfill($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"params": {"partitionNames": HISTORY, "assetSelection": [{"path": ["trusted", "tmdb"]}], "title": "e2e 30 days"}},
    )["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    backfill_id = data["backfillId"]

    def finished():
        status = dagster_server.graphql(
            """query B($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]["status"]
        return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED") else None

    status = _wait("the backfill to finish", finished, BACKFILL_TIMEOUT_S, dagster_server)
    tasks_after = dagster_server.tasks_per_worker()
    return {"id": backfill_id, "status": status, "landed": landed, "tasks": (tasks_before, tasks_after)}


def test_the_four_assets_and_their_partitions(dagster_server):
    before = dt.datetime.now(dt.UTC).date().isoformat()
    nodes = dagster_server.graphql("{ assetNodes { assetKey { path } isPartitioned partitionKeys } }")["assetNodes"]
    after = dt.datetime.now(dt.UTC).date().isoformat()
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert set(by_key) == {"raw/filmes_csv", "raw/tmdb_json", "trusted/filmes", "trusted/tmdb"}
    assert not by_key["raw/filmes_csv"]["isPartitioned"] and not by_key["trusted/filmes"]["isPartitioned"]
    for key in ("raw/tmdb_json", "trusted/tmdb"):
        partitions = by_key[key]["partitionKeys"]
        # today's partition exists (end_offset=1); the call may straddle midnight UTC
        assert partitions[0] == "2024-01-01" and partitions[-1] in (before, after)
        assert len(partitions) == (dt.date.fromisoformat(partitions[-1]) - dt.date(2024, 1, 1)).days + 1


def test_a_30_day_backfill_runs_as_one_spark_run_and_writes_exact_rows(dagster_server, backfill):
    assert backfill["status"] == "COMPLETED_SUCCESS"
    runs = _runs(dagster_server, **{"dagster/backfill": backfill["id"]})
    assert [run["status"] for run in runs] == ["SUCCESS"]  # BackfillPolicy.single_run(): one run for 30 days
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (HISTORY[0], HISTORY[-1])

    rows = _trusted_rows(dagster_server.lake_root)
    expected = {day: _raw_movie_ids(dagster_server.lake_root, day) for day in HISTORY}
    assert rows == expected
    assert expected == backfill["landed"]  # the seeder's records are distinct movies
    assert len(set(expected.values())) > 10  # days differ, so a partition mix-up would show


def test_the_backfill_ran_in_the_executors_of_both_workers(dagster_server, backfill):
    """The deployment's Connect server is attached to a standalone master with two workers: the
    master's status shows both alive with one executor of the server each, and the driver's own
    count of the tasks each executor ran grew on both during the backfill, and nowhere else."""
    status = dagster_server.cluster.status()
    workers = {worker["id"] for worker in status["workers"] if worker["state"] == "ALIVE"}
    assert len(workers) == 2 and status["aliveworkers"] == 2
    assert [(app["name"], app["cores"]) for app in status["activeapps"]] == [("Spark Connect server", 2)]
    assert all(worker["coresused"] == 1 for worker in status["workers"])  # each gave its core to an executor

    before, after = backfill["tasks"]
    ran = {where: count - before.get(where, 0) for where, count in after.items()}
    assert ran.keys() - {"elsewhere"} == workers
    assert all(ran[worker] > 0 for worker in workers), ran
    assert ran.get("elsewhere", 0) == 0, ran  # the driver ran none: every task ran in a worker's executor


def test_the_sensor_registers_new_raw_files_and_their_trusted_partitions_appear(dagster_server, backfill, records):
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR_NAME}
    started = dagster_server.graphql(
        """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
             __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }""",
        {"selector": selector},
    )["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started

    ticks_query = """query Ticks($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
        ... on Sensor { sensorState { ticks(limit: 20) { status runIds error { message } } } } } }"""

    def ticks():
        return dagster_server.graphql(ticks_query, {"selector": selector})["sensorOrError"]["sensorState"]["ticks"]

    # First tick: a full listing finds the 30 seeded days. The backfill already read them, so it
    # registers raw/tmdb_json for each day and requests no run.
    first = _wait(
        "the sensor's first tick",
        lambda: [t for t in ticks() if t["status"] in ("SUCCESS", "SKIPPED", "FAILURE")],
        90,
        dagster_server,
        1.0,
    )
    assert first[-1]["status"] != "FAILURE" and first[-1]["runIds"] == [], first

    landed = seed(dagster_server.lake, dt.date.fromisoformat(ARRIVALS[0]), len(ARRIVALS), records)

    def arrived():
        rows = _trusted_rows(dagster_server.lake_root)
        return all(day in rows for day in ARRIVALS) and rows

    rows = _wait("the sensor's run to write the new partitions", arrived, SENSOR_TIMEOUT_S, dagster_server)
    assert (
        {day: rows[day] for day in ARRIVALS} == {day: _raw_movie_ids(dagster_server.lake_root, day) for day in ARRIVALS} == landed
    )

    runs = _wait(
        "the sensor's run to succeed",
        lambda: [r for r in _runs(dagster_server, **{"dagster/sensor_name": SENSOR_NAME}) if r["status"] == "SUCCESS"],
        60,
        dagster_server,
    )
    all_sensor_runs = _runs(dagster_server, **{"dagster/sensor_name": SENSOR_NAME})
    assert [r["status"] for r in all_sensor_runs] == ["SUCCESS"]  # one range run for the two contiguous days
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == tuple(ARRIVALS)

    stats = dagster_server.graphql(
        """{ assetNodes(assetKeys: [{path: ["raw", "tmdb_json"]}]) { partitionStats { numMaterialized } } }"""
    )["assetNodes"][0]["partitionStats"]
    assert stats["numMaterialized"] == len(HISTORY) + len(ARRIVALS)  # every landed day registered
    assert _trusted_rows(dagster_server.lake_root).keys() == set(HISTORY + ARRIVALS)
