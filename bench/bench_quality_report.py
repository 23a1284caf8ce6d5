"""What a quality report costs to make and to open: the 365-day backfill's report (every partition
judged in one run, every rule of trusted/tmdb's contract, 90-day trends) against a 30-day run's, on
the synthetic quality log the tests use (`lake_assets_tests.test_quality_report.synthetic_log`).

- size: the HTML document's bytes (goal: at most 300 KB);
- Python: `quality_report.render`, median of N;
- Chromium: Debian's headless Chromium opens the file (file://); "DOM" is the load event's end and
  "rendered" the first frame painted after it (a script added to the page, never to the report,
  notes the time in a timeout queued from `requestAnimationFrame`), both from the navigation's
  start, median of N loads after one that warms the browser (goal: rendered within 1 s).

    .venv/bin/python bench/bench_quality_report.py [--rounds 5]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import print_table

from lake_assets_tests.browser import Browser
from lake_assets_tests.test_quality_report import synthetic_log

GOAL_KB = 300
GOAL_MS = 1000
# In every page the browser opens: the time the first frame after the load event was painted.
AFTER_PAINT = (
    "addEventListener('load', () => requestAnimationFrame(() => setTimeout(() => { window.__rendered = performance.now(); })));"
)


def chromium_ms(browser: Browser, page: Path, rounds: int) -> tuple[float, float]:
    """Median (load event end, first frame after it) in ms from the navigation's start."""
    loaded, rendered = [], []
    for round_ in range(rounds + 1):
        browser.open("about:blank")
        browser.open(f"{page.as_uri()}?load={round_}")  # a URL of its own: no reading the last load's timing
        deadline = time.monotonic() + 30
        timing = None
        while timing is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{page.name} did not render in 30 s")
            time.sleep(0.05)
            timing = browser.evaluate(
                f"location.search === '?load={round_}' && window.__rendered !== undefined"
                " ? [performance.getEntriesByType('navigation')[0].loadEventEnd, window.__rendered] : null"
            )
        if round_:  # the first load warms the browser
            loaded.append(timing[0])
            rendered.append(timing[1])
    return statistics.median(loaded), statistics.median(rendered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-quality-report-"))
    try:
        cases = {"baseline: a 30-day run": 30, "365-day backfill": 365}
        measured = {}
        with Browser() as browser:
            browser.on_every_page(AFTER_PAINT)
            for name, days in cases.items():
                synthetic = synthetic_log(days)
                seconds = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    page = synthetic.render()
                    seconds.append(time.perf_counter() - started)
                path = work / f"report-{days}.html"
                path.write_text(page, encoding="utf-8")
                kb = len(page.encode("utf-8")) / 1000
                measured[name] = (days, kb, statistics.median(seconds) * 1000, *chromium_ms(browser, path, args.rounds))
        base = measured["baseline: a 30-day run"]
        print(f"\nThe quality report of trusted/tmdb ({len(synthetic.rules)} rules), synthetic log, median of {args.rounds}")
        rows = [
            (name, str(days), f"{kb:.0f}", f"{python_ms:.0f}", f"{loaded:.0f}", f"{rendered:.0f}", f"{rendered / base[4]:.1f}x")
            for name, (days, kb, python_ms, loaded, rendered) in measured.items()
        ]
        header = ("report", "days", f"KB (goal <= {GOAL_KB})", "Python render ms", "Chromium load ms")
        print_table((*header, f"Chromium rendered ms (goal <= {GOAL_MS})", "rendered vs baseline"), rows)
        year = measured["365-day backfill"]
        print(
            f"\n365 days: size goal {'met' if year[1] <= GOAL_KB else 'NOT met'}, render goal {'met' if year[4] <= GOAL_MS else 'NOT met'}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
