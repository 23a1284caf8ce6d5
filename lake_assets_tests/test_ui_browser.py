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
from pathlib import Path

import pytest

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
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
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
