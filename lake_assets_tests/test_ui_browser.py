"""The Dagster UI in a real browser: Debian's headless Chromium opens the asset catalog of the
end-to-end deployment (the session's `dagster dev`) and must find the four assets in the rendered
page. The UI is a React app, so the page is rendered with a virtual-time budget, longer on each try.
A screenshot is kept in test-artifacts/ui-assets.png (docs/ui-assets.png is a copy of one)."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lake_assets_tests.browser import CHROMIUM_FLAGS, Browser

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
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
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
    published = {p.parent.name for p in (dagster_server.lake_root / "trusted" / "tmdb").glob("dt=2024-05-0*/*.parquet")}
    assert published == {f"dt={CONTRACT_DAYS[0]}", f"dt={CONTRACT_DAYS[2]}"}

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
