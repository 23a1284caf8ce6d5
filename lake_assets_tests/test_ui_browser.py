"""The Dagster UI in a real browser: Debian's headless Chromium opens the asset catalog of the
end-to-end deployment (the session's `dagster dev`) and must find the four assets in the rendered
page. The UI is a React app, so the page is rendered with a virtual-time budget, longer on each try.
A screenshot is kept in test-artifacts/ui-assets.png (docs/ui-assets.png is a copy of one)."""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lake_assets_tests.browser import CHROMIUM_FLAGS, Browser
from lake_assets_tests.readback import Lake
from lake_tools.processes import kill_process, start_process

pytestmark = pytest.mark.e2e

ASSETS = {"raw/filmes_csv", "raw/tmdb_json", "trusted/filmes", "trusted/tmdb"}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BUDGETS_MS = (5_000, 10_000, 20_000)


def chromium(url: str, *args: str, budget_ms: int, timeout: float = 120) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (Debian), as .ci/run does")
    with tempfile.TemporaryDirectory(prefix="lake-chromium-") as profile:
        command = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *args,
            url,
        ]
        # A session of its own: whatever helper processes Chromium leaves are killed with it.
        process = start_process(command, output=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        finally:
            kill_process(process, group=True)
    return out


def test_the_asset_catalog_shows_the_four_assets(dagster_server):
    url = f"{dagster_server.url}/assets"
    for budget in BUDGETS_MS:
        dom = chromium(url, "--dump-dom", budget_ms=budget)
        linked = set(re.findall(r'href="/assets/([^"?#]+)"', dom))
        if ASSETS <= linked:
            break
    assert ASSETS <= linked, f"asset links in the rendered catalog: {sorted(linked)}"
    for name in ("filmes_csv", "tmdb_json"):
        assert name in dom

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "ui-assets.png"
    screenshot.unlink(missing_ok=True)
    # The longest budget: the status column loads after the names.
    chromium(url, f"--screenshot={screenshot}", "--window-size=1440,900", "--hide-scrollbars", budget_ms=BUDGETS_MS[-1])
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


CONTRACT_DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]  # days no other end-to-end test lands
CHECK_EXECUTIONS = """query Executions($partition: String) {
  assetCheckExecutions(assetKey: {path: ["trusted", "tmdb"]}, checkName: "contract", limit: 5, partition: $partition) {
    status partition evaluation { description } } }"""


def test_a_day_that_broke_a_fail_rule_shows_in_the_checks_tab(dagster_server):
    """A three-day backfill where the middle day has a vote average of 42: that day keeps no trusted
    partition and its contract check fails in the UI, naming the rule; the other days publish."""
    import datetime as dt
    import json

    from lake_tools.seed_history import seed, snapshot_records

    seed(dagster_server.lake, dt.date.fromisoformat(CONTRACT_DAYS[0]), len(CONTRACT_DAYS), snapshot_records())
    storage = dagster_server.lake.storage("raw")
    first = sorted(o.key for o in storage.list(f"raw/tmdb/dt={CONTRACT_DAYS[1]}/") if o.key.endswith(".jsonl"))[0]
    movie, *rest = storage.get_bytes(first).decode().splitlines()
    storage.put_bytes(("\n".join([json.dumps({**json.loads(movie), "vote_average": 42.0}), *rest]) + "\n").encode(), first)
    dagster_server.launch_backfill(["trusted", "tmdb"], CONTRACT_DAYS, "e2e contract")

    def evaluated(day: str):
        executions = dagster_server.graphql(CHECK_EXECUTIONS, {"partition": day})["assetCheckExecutions"]
        return [e for e in executions if e["evaluation"]]

    for day in CONTRACT_DAYS:
        dagster_server.wait(f"the contract check of {day}", lambda day=day: evaluated(day), 300)
    statuses = {day: evaluated(day)[0]["status"] for day in CONTRACT_DAYS}
    assert statuses == {CONTRACT_DAYS[0]: "SUCCEEDED", CONTRACT_DAYS[1]: "FAILED", CONTRACT_DAYS[2]: "SUCCEEDED"}
    assert (
        "media_de_votos_0_to_10 (fail): 1 violation(s), not published; e.g. 42.0"
        in evaluated(CONTRACT_DAYS[1])[0]["evaluation"]["description"]
    )
    read = Lake(dagster_server.lake)
    published = {day for day in CONTRACT_DAYS if read.current_keys(f"trusted/tmdb/dt={day}/")}
    assert published == {CONTRACT_DAYS[0], CONTRACT_DAYS[2]}

    # The check's Partitions tab (a click: the UI keeps that tab out of the URL), with the bad day selected.
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "ui-contract-failed-day.png"
    screenshot.unlink(missing_ok=True)
    with Browser() as browser:
        try:
            browser.open(f"{dagster_server.url}/assets/trusted/tmdb?view=checks&checkDetail=contract")
            browser.wait_for_text("Execution history")
            browser.click_text("Partitions", last=True)
            browser.wait_for_text(CONTRACT_DAYS[1])
            browser.click_text(CONTRACT_DAYS[1], last=True)
            browser.wait_for_text("media_de_votos_0_to_10")
            time.sleep(1)  # the evaluation's metadata renders after its description
        finally:
            browser.screenshot(screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


# --- what the UI says is true (issue 17) ----------------------------------------------------------

EXECUTIONS = """query Executions($check: String!, $partition: String) {
  assetCheckExecutions(assetKey: {path: ["trusted", "tmdb"]}, checkName: $check, limit: 5, partition: $partition) {
    runId status partition evaluation { description severity metadataEntries { label __typename
      ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } ... on TextMetadataEntry { text } } } } }"""
PARTITIONS = """query P($key: AssetKeyInput!) { assetNodes(assetKeys: [$key]) { assetPartitionStatuses {
  ... on TimePartitionStatuses { ranges { startKey endKey status } } } } }"""
MALFORMED_DAY = "2024-05-10"
PAST_RAW_DAYS = ["2024-05-20", "2024-05-21", "2024-05-22"]  # the last one never lands
FAILED_PAST_DAY = "2024-06-01"  # no raw files: its trusted/tmdb run fails


def _executions(server, check: str, partition: str) -> list[dict]:
    data = server.graphql(EXECUTIONS, {"check": check, "partition": partition})["assetCheckExecutions"]
    return [e for e in data if e["evaluation"]]


def _entries(execution: dict) -> dict:
    values = {}
    for entry in execution["evaluation"]["metadataEntries"]:
        values[entry["label"]] = entry.get("intValue", entry.get("floatValue", entry.get("text", entry["__typename"])))
    return values


def _partition_status(server, path: list[str], day: str) -> str | None:
    data = server.graphql(PARTITIONS, {"key": {"path": path}})["assetNodes"][0]["assetPartitionStatuses"]
    for span in data["ranges"]:
        if span["startKey"] <= day <= span["endKey"]:
            return span["status"]
    return None


def _screenshot(server, name: str, url: str, *steps) -> Path:
    """A screenshot of `url` after `steps` (("wait", text) or ("click", text)), kept in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    with Browser() as browser:
        try:
            browser.open(f"{server.url}{url}")
            for action, text in steps:
                if action == "wait":
                    browser.wait_for_text(text)
                else:
                    browser.click_text(text, last=True)
            time.sleep(1)  # metadata renders after the description
        finally:
            browser.screenshot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    return path


def test_the_deadline_check_of_the_due_day_survives_a_failed_run_for_another_day(dagster_server):
    import datetime as dt

    from lake_assets.defs import deadline
    from lake_assets.defs.automation import SETTINGS

    cron = SETTINGS.freshness_deadline_cron
    due = deadline.due_day(cron, dt.datetime.now(dt.UTC))
    final = ("on time", "late") if due == dt.datetime.now(dt.UTC).date().isoformat() else ("missing", "on time", "late")

    def verdict():  # today's is final once the schedule's run published it; yesterday's is final at once
        found = _executions(dagster_server, "published_by_deadline", due)
        return found if found and _entries(found[0]).get("status") in final else None

    before = dagster_server.wait(f"the deadline verdict of {due}", verdict, 300)[0]
    assert f"by 09:00 UTC on {due}" in before["evaluation"]["description"]

    backfill_id = dagster_server.launch_backfill(["trusted", "tmdb"], [FAILED_PAST_DAY], "e2e failed past day")
    runs = """query R($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
                ... on Runs { results { status } } } }"""
    dagster_server.wait(
        "the past day's run to fail",
        lambda: [
            r for r in dagster_server.graphql(runs, {"id": backfill_id})["runsOrError"]["results"] if r["status"] == "FAILURE"
        ],
        300,
    )
    time.sleep(12)  # two ticks of deadline_sensor
    after = _executions(dagster_server, "published_by_deadline", due)[0]
    assert (after["status"], after["evaluation"]) == (before["status"], before["evaluation"])  # same verdict, same words
    # The check's status in the UI (its latest result) is still the due day's, not the failed day's.
    checks = dagster_server.graphql(
        """{ assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) { assetChecksOrError { ... on AssetChecks { checks {
             name executionForLatestMaterialization { partition status } } } } } }"""
    )["assetNodes"][0]["assetChecksOrError"]["checks"]
    (shown,) = [c["executionForLatestMaterialization"] for c in checks if c["name"] == "published_by_deadline"]
    assert shown == {"partition": due, "status": before["status"]}
    _screenshot(
        dagster_server,
        "ui-deadline-after-failed-past-day.png",
        "/assets/trusted/tmdb?view=checks&checkDetail=published_by_deadline",
        ("wait", "Execution history"),
        ("click", "Partitions"),
        ("wait", due),
        ("click", due),
        ("wait", "09:00 UTC"),
    )


def test_a_day_with_a_malformed_line_shows_its_rejection_on_the_contract_check(dagster_server):
    import datetime as dt

    from lake_assets.lib.contracts import TMDB
    from lake_tools.seed_history import seed, snapshot_records

    landed = seed(dagster_server.lake, dt.date.fromisoformat(MALFORMED_DAY), 1, snapshot_records())[MALFORMED_DAY]
    dagster_server.lake.storage("raw").put_bytes(
        b'{"id": 7, "title": "cortad\n', f"raw/tmdb/dt={MALFORMED_DAY}/part-99999-cut.jsonl"
    )
    dagster_server.launch_backfill(["trusted", "tmdb"], [MALFORMED_DAY], "e2e malformed line")
    (check,) = dagster_server.wait(
        f"the contract check of {MALFORMED_DAY}", lambda: _executions(dagster_server, "contract", MALFORMED_DAY)[:1], 300
    )
    rules = 1 + len(TMDB.rules)
    description = check["evaluation"]["description"]
    assert check["status"] == "FAILED" and check["evaluation"]["severity"] == "WARN"  # yellow, never a green check
    assert description.startswith("Published; 1 row rejected: 1 malformed JSON line.") and f"{rules} rules (" in description
    values = _entries(check)
    assert values["rejected_rows"] == 1 and values["rows_checked"] == landed + 1
    assert values["rules"] == rules and values["rules_broken"] == 0 and values["violations/at_least_one_row"] == 0

    # The same rule count in the check's description and in the materialisation.
    spec = dagster_server.graphql(
        """{ assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) { assetChecksOrError { ... on AssetChecks { checks {
             name description } } } } }"""
    )["assetNodes"][0]["assetChecksOrError"]["checks"]
    (contract_spec,) = [c for c in spec if c["name"] == "contract"]
    assert f" {rules} rules: schema_contract (fail)," in contract_spec["description"]
    materialized = dagster_server.graphql(
        """query M($p: String!) { assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) {
             assetMaterializations(partitions: [$p], limit: 1) { metadataEntries { label ... on TextMetadataEntry { text } } } } }""",
        {"p": MALFORMED_DAY},
    )["assetNodes"][0]["assetMaterializations"][0]["metadataEntries"]
    contract_line = next(e["text"] for e in materialized if e["label"] == "contract")
    assert contract_line.startswith(f"{rules} rules (") and "1 row rejected: 1 malformed JSON line" in contract_line

    _screenshot(
        dagster_server,
        "ui-contract-rejected-line.png",
        "/assets/trusted/tmdb?view=checks&checkDetail=contract",
        ("wait", "Execution history"),
        ("click", "Partitions"),
        ("wait", MALFORMED_DAY),
        ("click", MALFORMED_DAY),
        ("wait", "malformed JSON line"),
    )


def test_a_ui_launch_over_past_raw_days_keeps_the_landed_days_green(dagster_server):
    import datetime as dt

    from lake_tools.seed_history import seed, snapshot_records

    seed(dagster_server.lake, dt.date.fromisoformat(PAST_RAW_DAYS[0]), 2, snapshot_records())
    before = {
        day: sorted(p.name for p in (dagster_server.lake_root / "raw" / "tmdb" / f"dt={day}").iterdir())
        for day in PAST_RAW_DAYS[:2]
    }
    backfill_id = dagster_server.launch_backfill(["raw", "tmdb_json"], PAST_RAW_DAYS, "e2e past raw days")
    runs = """query R($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
                ... on Runs { results { status } } } }"""
    dagster_server.wait(
        "the launch over past raw days to end",
        lambda: [
            r
            for r in dagster_server.graphql(runs, {"id": backfill_id})["runsOrError"]["results"]
            if r["status"] in ("FAILURE", "SUCCESS")
        ],
        300,
    )
    statuses = {day: _partition_status(dagster_server, ["raw", "tmdb_json"], day) for day in PAST_RAW_DAYS}
    assert statuses == {PAST_RAW_DAYS[0]: "MATERIALIZED", PAST_RAW_DAYS[1]: "MATERIALIZED", PAST_RAW_DAYS[2]: "FAILED"}
    after = {
        day: sorted(p.name for p in (dagster_server.lake_root / "raw" / "tmdb" / f"dt={day}").iterdir())
        for day in PAST_RAW_DAYS[:2]
    }
    assert after == before  # registered, not collected: no file written
    assert not (dagster_server.lake_root / "raw" / "tmdb" / f"dt={PAST_RAW_DAYS[2]}").exists()
    _screenshot(
        dagster_server,
        "ui-past-raw-days.png",
        f"/assets/raw/tmdb_json?view=partitions&partition={PAST_RAW_DAYS[1]}",
        ("wait", PAST_RAW_DAYS[1]),
    )


# --- a rollback launched from the job's launchpad -------------------------------------------------

ROLLBACK_DAY = "2024-06-10"  # a day no other end-to-end test lands
LATEST_MATERIALIZATION = """query M($p: String!) { assetNodes(assetKeys: [{path: ["trusted", "tmdb"]}]) {
  assetMaterializations(partitions: [$p], limit: 1) { runId metadataEntries { label
    ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } } } } }"""
RUN_STATUS = """query R($id: ID!) { runOrError(runId: $id) { ... on Run { status jobName runConfigYaml } } }"""
BACKFILL_RUNS = """query R($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId status } } } }"""
RAW_SENSOR = """query S($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { id sensorState { status ticks(limit: 1) { status } } } } }"""
ENDED = ("SUCCESS", "FAILURE", "CANCELED")


def _latest_materialization(server, day: str) -> tuple[str, dict]:
    (latest,) = server.graphql(LATEST_MATERIALIZATION, {"p": day})["assetNodes"][0]["assetMaterializations"]
    return latest["runId"], {e["label"]: e.get("intValue", e.get("text")) for e in latest["metadataEntries"]}


def _materialize_day(server, day: str, title: str) -> tuple[str, dict]:
    """trusted/tmdb for `day`, as the UI's Materialize... launches it; its run's materialisation."""
    backfill_id = server.launch_backfill(["trusted", "tmdb"], [day], title)
    (run,) = server.wait(
        f"the run of {title!r}",
        lambda: [r for r in server.graphql(BACKFILL_RUNS, {"id": backfill_id})["runsOrError"]["results"] if r["status"] in ENDED],
        300,
        1.0,
    )
    assert run["status"] == "SUCCESS", server.log_tail()
    run_id, metadata = _latest_materialization(server, day)
    assert run_id == run["runId"]
    return run_id, metadata


def _raw_sensor_state(server) -> dict:
    from lake_assets.defs.sensors import SENSOR_NAME
    from lake_assets_tests.dagster_server import LOCATION, REPOSITORY

    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR_NAME}
    return {"selector": selector, **server.graphql(RAW_SENSOR, {"selector": selector})["sensorOrError"]}


def _pause_raw_sensor(server) -> dict | None:
    """Stop the raw-arrival sensor if it runs (test_e2e turns it on): it would request trusted/tmdb runs
    of its own for the day this test lands twice, racing the rollback. Returns what restarts it."""
    sensor = _raw_sensor_state(server)
    if sensor["sensorState"]["status"] != "RUNNING":
        return None
    stopped = server.graphql(
        """mutation Stop($id: String!) { stopSensor(id: $id) { __typename
             ... on StopSensorMutationResult { instigationState { status } } } }""",
        {"id": sensor["id"]},
    )["stopSensor"]
    assert stopped["__typename"] == "StopSensorMutationResult", stopped
    # A tick that started before the stop lists the lake once more: let it end before anything lands.
    server.wait(
        "the raw-arrival sensor's last tick",
        lambda: all(t["status"] != "STARTED" for t in _raw_sensor_state(server)["sensorState"]["ticks"]),
        60,
        0.5,
    )
    return sensor["selector"]


def _resume_raw_sensor(server, selector: dict) -> None:
    server.graphql(
        """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename } }""",
        {"selector": selector},
    )


def _type_run_config(browser: Browser, run_config: str) -> None:
    """Replace the launchpad's config with `run_config` as a user does: focus the editor (CodeMirror),
    select all with Ctrl+A, type the YAML over it (DevTools' Input events, trusted keystrokes)."""
    browser.evaluate("document.querySelector('.CodeMirror').CodeMirror.focus()")
    browser.select_all_and_type(run_config)
    typed = browser.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()")
    assert typed == run_config, typed


def test_a_rollback_launched_from_the_ui_makes_the_earlier_day_current(dagster_server):
    """One day of trusted/tmdb is published twice (the second time from a re-landed raw day with a
    third of the movies); the job `table_rollback`, launched from its launchpad with the first run's
    snapshot_id typed into the config editor, makes the first version current again as a new commit.
    Plain pyiceberg then reads the day's rows equal to the files the first snapshot names, and the
    asset's latest materialisation of that day (GraphQL, and its page in the UI) says so."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml
    from pyiceberg.catalog import load_catalog
    from pyiceberg.expressions import EqualTo

    from lake_assets.lib.partitions import dt_path
    from lake_assets.lib.raw_zone import land_json_lines
    from lake_assets.lib.tables.catalog import CATALOG_NAME, catalog_properties
    from lake_tools.seed_history import RAW_TMDB_PATH, records_for_day, seed, snapshot_records

    server, day = dagster_server, ROLLBACK_DAY
    paused = _pause_raw_sensor(server)
    try:
        records = snapshot_records()
        landed = seed(server.lake, dt.date.fromisoformat(day), 1, records)[day]
        _, first = _materialize_day(server, day, "e2e rollback: first version")
        fewer = records_for_day(records, day)[: landed // 3]
        land_json_lines(server.lake.storage("raw"), f"{RAW_TMDB_PATH}/{dt_path(day, server.lake.dt_layout)}", fewer)
        _, second = _materialize_day(server, day, "e2e rollback: second version")
        assert (first["dagster/row_count"], second["dagster/row_count"]) == (landed, len(fewer))
        first_snapshot = first["snapshot_id"]

        catalog = load_catalog(CATALOG_NAME, **catalog_properties(server.lake))
        table = catalog.load_table("trusted.tmdb")
        history_before = [entry.snapshot_id for entry in table.history()]
        assert table.current_snapshot().snapshot_id == int(second["snapshot_id"])

        # The launchpad, as the job's page links it (its repository is the unnamed one of a Definitions).
        run_config = (
            f'ops:\n  rollback_table:\n    config:\n      table: trusted/tmdb\n      snapshot_id: "{first_snapshot}"\n'
            f'      dt: "{day}"\n'
        )
        ARTIFACTS.mkdir(exist_ok=True)
        with Browser() as browser:
            browser.open(f"{server.url}/locations/lake_assets/jobs/table_rollback/playground")
            browser.wait_for_text("Scaffold missing config")
            _type_run_config(browser, run_config)
            launch = "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Launch Run' && !b.disabled)"
            server.wait("Launch Run to be enabled by the typed config", lambda: browser.evaluate(launch), 60, 0.3)
            browser.screenshot(ARTIFACTS / "ui-rollback-launchpad.png")
            browser.click_text("Launch Run", selector="button")
            run_page = server.wait(
                "the run's page after Launch Run",
                lambda: re.search(r"/runs/([0-9a-f-]{36})", browser.evaluate("location.href")),
                60,
                0.3,
            )
        run_id = run_page.group(1)
        run = server.wait(
            "the rollback run to end",
            lambda: (r := server.graphql(RUN_STATUS, {"id": run_id})["runOrError"])["status"] in ENDED and r,
            300,
            1.0,
        )

        assert run["status"] == "SUCCESS", server.log_tail()
        assert run["jobName"] == "table_rollback"
        assert yaml.load(run["runConfigYaml"], Loader=yaml.BaseLoader)["ops"]["rollback_table"]["config"] == {
            "table": "trusted/tmdb",
            "snapshot_id": first_snapshot,
            "dt": day,
        }

        # Read back with plain pyiceberg: the day now holds what the first snapshot's files hold.
        table = catalog.load_table("trusted.tmdb")
        now = table.scan(row_filter=EqualTo("dt", day)).to_arrow()
        tasks = list(table.scan(row_filter=EqualTo("dt", day), snapshot_id=int(first_snapshot)).plan_files())
        then = pa.concat_tables([pq.read_table(task.file.file_path) for task in tasks])
        assert now.num_rows == then.num_rows == landed
        assert now.select(then.column_names).sort_by("tmdb_id").to_pylist() == then.sort_by("tmdb_id").to_pylist()
        history_after = [entry.snapshot_id for entry in table.history()]
        assert history_after[: len(history_before)] == history_before and len(history_after) > len(history_before)
        current = table.current_snapshot().snapshot_id
        assert current not in history_before  # a new commit, not the old snapshot made current

        rollback_run, latest = _latest_materialization(server, day)
        assert rollback_run == run_id
        assert latest["rolled_back_to"] == first_snapshot
        assert latest["snapshot_id"] == str(current)
        assert latest["dagster/row_count"] == then.num_rows

        # The asset's page for that day shows the rollback's materialisation.
        screenshot = _screenshot(
            server,
            "ui-rollback.png",
            f"/assets/trusted/tmdb?view=partitions&partition={day}",
            ("wait", "rolled_back_to"),
            ("wait", first_snapshot),
            ("wait", run_id[:8]),
        )
        shutil.copyfile(screenshot, Path(__file__).resolve().parent.parent / "docs" / "ui-rollback.png")
    finally:
        if paused:
            _resume_raw_sensor(server, paused)
