"""End to end with the real services: `dagster dev` (webserver, daemon with the project's run queue,
code server) and a warm Spark Connect server, driven only through GraphQL, as the UI drives them.
The lake is read back with DuckDB and the json module, never through Spark or the project's readers."""

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from lake_assets.defs.alerts import ALERTED_TAG
from lake_assets.defs.automation import AUTOMATION_SENSOR, COLLECT_SCHEDULE
from lake_assets.defs.sensors import SENSOR_NAME
from lake_assets_tests.dagster_server import LOCATION, REPOSITORY
from lake_assets_tests.readback import Lake
from lake_tools.seed_history import seed, snapshot_records

pytestmark = pytest.mark.e2e

HISTORY = [(dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(30)]
ARRIVALS = ["2024-02-01", "2024-02-02"]  # dropped after the sensor is on: beyond the seeded history
FAILING_DAY = "2024-03-15"  # collected "today" for a past date: refused, the run fails (an alert)
BACKFILL_TIMEOUT_S = 300
SENSOR_TIMEOUT_S = 180
SCHEDULE_TIMEOUT_S = 360  # the first every-minute tick, then two runs through a one-run queue
ALERT_TIMEOUT_S = 180

RUNS = """query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status tags { key value } } } } }"""


def _raw_movie_ids(lake_root: Path, day: str) -> int:
    """Distinct movie ids in one raw partition's JSON Lines: what trusted/tmdb must hold for that day."""
    ids = set()
    for path in (lake_root / "raw" / "tmdb" / f"dt={day}").glob("*.jsonl"):
        ids.update(json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip())
    return len(ids)


def _trusted_rows(lake) -> dict[str, int]:
    """trusted/tmdb's rows per day in its current snapshot, read with plain pyiceberg."""
    catalog = Lake(lake).catalog()
    if not catalog.table_exists("trusted.tmdb"):
        return {}
    days = catalog.load_table("trusted.tmdb").scan(selected_fields=("dt",)).to_arrow().column("dt").to_pylist()
    return dict(Counter(days))


def _runs(server, **tags) -> list[dict]:
    data = server.graphql(RUNS, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})
    return data["runsOrError"]["results"]


def _at_least(count: int, found: list) -> list:
    return found if len(found) >= count else []


def _recent_days() -> set[str]:
    """Today and yesterday (UTC): the partitions the daily schedule may have collected while other tests ran."""
    today = dt.datetime.now(dt.UTC).date()
    return {today.isoformat(), (today - dt.timedelta(days=1)).isoformat()}


def _partition_of(run: dict) -> str | None:
    """The one partition a run computed (a single-run policy may tag even one day as a range)."""
    tags = {t["key"]: t["value"] for t in run["tags"]}
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return tags.get("dagster/partition") or (start if start == end else None)


def _materialized(server, *path: str) -> set[str]:
    data = server.graphql(
        """query P($key: AssetKeyInput!) { assetNodes(assetKeys: [$key]) { assetPartitionStatuses {
             ... on TimePartitionStatuses { ranges { startKey endKey status } } } } }""",
        {"key": {"path": list(path)}},
    )
    days = set()
    for span in data["assetNodes"][0]["assetPartitionStatuses"]["ranges"]:
        if span["status"] == "MATERIALIZED":
            day, end = dt.date.fromisoformat(span["startKey"]), dt.date.fromisoformat(span["endKey"])
            while day <= end:
                days.add(day.isoformat())
                day += dt.timedelta(days=1)
    return days


@pytest.fixture(scope="module")
def records():
    return snapshot_records()


@pytest.fixture(scope="module")
def backfill(dagster_server, records):
    """30 days of raw history landed from outside, then one backfill of trusted/tmdb over them, with
    the tasks each worker's executors had run before and after it."""
    landed = seed(dagster_server.lake, dt.date.fromisoformat(HISTORY[0]), len(HISTORY), records)
    tasks_before = dagster_server.tasks_per_worker()
    backfill_id = dagster_server.launch_backfill(["trusted", "tmdb"], HISTORY, "e2e 30 days")

    def finished():
        status = dagster_server.graphql(
            """query B($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]["status"]
        return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED") else None

    status = dagster_server.wait("the backfill to finish", finished, BACKFILL_TIMEOUT_S)
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


def test_automation_freshness_and_schedule_are_visible_in_the_ui(dagster_server):
    nodes = dagster_server.graphql(
        """{ assetNodes(assetKeys: [{path: ["trusted", "filmes"]}, {path: ["trusted", "tmdb"]}]) {
             assetKey { path } automationCondition { label }
             internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds } }
             assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
    )["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert by_key["trusted/tmdb"]["automationCondition"]["label"] == "follows_raw_runs_or_stale_days"
    assert by_key["trusted/filmes"]["automationCondition"]["label"] == "follows_raw_runs_or_new_code"
    assert by_key["trusted/filmes"]["internalFreshnessPolicy"] == {"failWindowSeconds": 30 * 24 * 3600}
    assert "published_by_deadline" in {c["name"] for c in by_key["trusted/tmdb"]["assetChecksOrError"]["checks"]}

    data = dagster_server.graphql(
        """query R($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {
             ... on Repository { schedules { name cronSchedule scheduleState { status } }
                                 sensors { name sensorState { status } } } } }""",
        {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}},
    )["repositoryOrError"]
    assert sorted((s["name"], s["cronSchedule"], s["scheduleState"]["status"]) for s in data["schedules"]) == [
        (COLLECT_SCHEDULE, "* * * * *", "RUNNING"),
        ("table_maintenance_schedule", "30 3 * * *", "RUNNING"),
    ]
    sensors = {s["name"]: s["sensorState"]["status"] for s in data["sensors"]}
    assert sensors[AUTOMATION_SENSOR] == "RUNNING"
    assert sensors["run_failure_alerts"] == sensors["check_failure_alerts"] == sensors["freshness_alerts"] == "RUNNING"


def test_a_30_day_backfill_runs_as_one_spark_run_and_writes_exact_rows(dagster_server, backfill):
    assert backfill["status"] == "COMPLETED_SUCCESS"
    runs = _runs(dagster_server, **{"dagster/backfill": backfill["id"]})
    assert [run["status"] for run in runs] == ["SUCCESS"]  # BackfillPolicy.single_run(): one run for 30 days
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (HISTORY[0], HISTORY[-1])

    rows = _trusted_rows(dagster_server.lake)
    expected = {day: _raw_movie_ids(dagster_server.lake_root, day) for day in HISTORY}
    assert {day: rows.get(day) for day in HISTORY} == expected
    assert rows.keys() - set(HISTORY) <= _recent_days() | set(ARRIVALS)  # the schedule's day, the sensor's
    assert expected == backfill["landed"]  # the seeder's records are distinct movies
    assert len(set(expected.values())) > 10  # days differ, so a partition mix-up would show


def test_make_dev_users_query_the_backfilled_partitions_by_name_in_spark_sql(dagster_server, backfill, connect_session):
    # The backfill run registered trusted.tmdb and its partitions in the Connect server's catalog.
    spark = connect_session(dagster_server.spark_remote)
    rows = _trusted_rows(dagster_server.lake)
    catalog = {str(day): count for day, count in spark.sql("select dt, count(*) from trusted.tmdb group by dt").collect()}
    assert {day: catalog.get(day) for day in HISTORY} == {day: rows[day] for day in HISTORY}
    # A run registers its days after it publishes them, so the every-minute schedule's run for today
    # may be on disk and not yet in the catalog; the catalog never names a day the lake does not hold.
    assert catalog.keys() <= rows.keys() and rows.keys() - catalog.keys() <= _recent_days() | set(ARRIVALS)
    assert spark.sql("select count(*) from trusted.tmdb where dt = '2024-01-05'").first()[0] == rows["2024-01-05"] > 0


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

    # First tick: a full listing finds the 30 seeded days and registers raw/tmdb_json for each. The
    # backfill read them before Dagster had a record of them, so the UI would call them stale: the
    # sensor rebuilds them in one range run, and the days are fresh afterwards.
    first = dagster_server.wait(
        "the sensor's first tick", lambda: [t for t in ticks() if t["status"] in ("SUCCESS", "SKIPPED", "FAILURE")], 90, 1.0
    )
    assert first[-1]["status"] == "SUCCESS" and len(first[-1]["runIds"]) == 1, first
    dagster_server.wait(
        "the history's rebuild",
        lambda: [r for r in _runs(dagster_server, **{"dagster/sensor_name": SENSOR_NAME}) if r["status"] == "SUCCESS"],
        SENSOR_TIMEOUT_S,
    )

    landed = seed(dagster_server.lake, dt.date.fromisoformat(ARRIVALS[0]), len(ARRIVALS), records)

    def arrived():
        rows = _trusted_rows(dagster_server.lake)
        return all(day in rows for day in ARRIVALS) and rows

    rows = dagster_server.wait("the sensor's run to write the new partitions", arrived, SENSOR_TIMEOUT_S)
    assert (
        {day: rows[day] for day in ARRIVALS} == {day: _raw_movie_ids(dagster_server.lake_root, day) for day in ARRIVALS} == landed
    )

    runs = dagster_server.wait(
        "the sensor's run to succeed",
        lambda: _at_least(
            2, [r for r in _runs(dagster_server, **{"dagster/sensor_name": SENSOR_NAME}) if r["status"] == "SUCCESS"]
        ),
        60,
    )
    all_sensor_runs = _runs(dagster_server, **{"dagster/sensor_name": SENSOR_NAME})
    # One range run for the history, one for the two contiguous new days (newest first).
    assert [r["status"] for r in all_sensor_runs] == ["SUCCESS", "SUCCESS"]
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == tuple(ARRIVALS)

    # What the UI shows: every day fresh (the runs recorded what they read), none stale.
    node = dagster_server.graphql(
        """query S($partitions: [String!]) { assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) {
             staleStatusByPartition(partitions: $partitions) } }""",
        {"partitions": HISTORY + ARRIVALS},
    )["assetNodes"][0]
    assert set(node["staleStatusByPartition"]) == {"FRESH"}, node

    # every landed day registered; besides them only the day the schedule collected
    raw_days = _materialized(dagster_server, "raw", "tmdb_json")
    assert raw_days >= set(HISTORY + ARRIVALS) and raw_days - set(HISTORY + ARRIVALS) <= _recent_days()
    trusted_days = _trusted_rows(dagster_server.lake).keys()
    assert trusted_days >= set(HISTORY + ARRIVALS) and trusted_days - set(HISTORY + ARRIVALS) <= _recent_days()


def test_the_schedule_collects_today_and_trusted_follows_without_a_click(dagster_server):
    """Nothing is launched by hand: the schedule (every minute in this deployment, one run per day by
    its run key) collects today's raw partition from the offline snapshot, and the automation sensor
    requests trusted/tmdb for it once that run has succeeded."""

    def collected():
        runs = [r for r in _runs(dagster_server, **{"dagster/schedule_name": COLLECT_SCHEDULE}) if r["status"] == "SUCCESS"]
        return runs

    # One run, or two when the test straddles midnight UTC (one per day: the run key is the day).
    # Runs come newest first: take the oldest.
    scheduled = dagster_server.wait("the scheduled collection", collected, SCHEDULE_TIMEOUT_S)[-1]
    day = _partition_of(scheduled)
    assert day in _recent_days()

    def followed():
        runs = _runs(dagster_server, **{"dagster/sensor_name": AUTOMATION_SENSOR})
        return [r for r in runs if r["status"] == "SUCCESS" and _partition_of(r) == day]

    (automated,) = dagster_server.wait("trusted/tmdb to follow through automation", followed, SCHEDULE_TIMEOUT_S)
    rows = _trusted_rows(dagster_server.lake)
    assert rows[day] == _raw_movie_ids(dagster_server.lake_root, day) > 100  # the snapshot's ~123 movies

    # Exactly one run of each, and the trusted partition was published by the automation run only.
    materializations = dagster_server.graphql(
        """query M($day: String!) { assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) {
             assetMaterializations(partitions: [$day]) { runId } } }""",
        {"day": day},
    )["assetNodes"][0]["assetMaterializations"]
    assert [m["runId"] for m in materializations] == [automated["runId"]]
    days = [_partition_of(r) for r in _runs(dagster_server, **{"dagster/schedule_name": COLLECT_SCHEDULE})]
    assert day in days and len(days) == len(set(days)) and set(days) <= _recent_days()


def test_a_failed_run_posts_exactly_one_alert_with_no_secret_in_it(dagster_server):
    backfill_id = dagster_server.launch_backfill(["raw", "tmdb_json"], [FAILING_DAY], "e2e alert")

    def failed():
        return [r for r in _runs(dagster_server, **{"dagster/backfill": backfill_id}) if r["status"] == "FAILURE"]

    (run,) = dagster_server.wait("the run collecting a past day to fail", failed, ALERT_TIMEOUT_S)
    run_id = run["runId"]

    def alerted():
        return [text for text in dagster_server.webhook.messages if run_id in text]

    (text,) = dagster_server.wait("its alert", alerted, ALERT_TIMEOUT_S, 1.0)
    assert text.startswith(f"lake_assets: run failed | raw/tmdb_json [{FAILING_DAY}] | ")
    assert "TMDB serves only today's data" in text and text.endswith(f"| {dagster_server.url}/runs/{run_id}")

    time.sleep(15)  # three more ticks of the alert sensors: still one message for this run
    assert len(alerted()) == 1
    tags = {t["key"]: t["value"] for t in _runs(dagster_server, **{"dagster/backfill": backfill_id})[0]["tags"]}
    assert tags[ALERTED_TAG] == "1"

    # The webhook URL's secret path is in no message, no log line, no file of the instance.
    secret = dagster_server.webhook.secret
    assert not [m for m in dagster_server.webhook.messages if secret in m]
    leaks = [p for p in dagster_server.dagster_home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == [] and secret not in dagster_server.log_path.read_text(errors="replace")
