"""What a quality report costs to make and to open: the 365-day backfill's report (every partition
judged in one run, every rule of trusted/tmdb's contract, 90-day trends) against a 30-day run's, on
the synthetic quality log the tests use (`lake_assets_tests.test_quality_report.synthetic_log`).

- size: the HTML document's bytes (goal: at most 300 KB);
- Python: `quality_report.render`, median of N;
- Chromium: Debian's headless Chromium opens the file (file://); "DOM" is the load event's end and
  "rendered" the first frame painted after it (a script added to the page, never to the report,
  notes the time in a timeout queued from `requestAnimationFrame`), both from the navigation's
  start, median of N loads after one that warms the browser (goal: rendered within 1 s).

A third row is a real run: 365 days landed by `lake_tools.seed_history`, one range run of
trusted/tmdb (Spark, a local lake), and the report that run wrote (its Python time is part of the
run, so not shown).

    .venv/bin/python bench/bench_quality_report.py [--rounds 5] [--real-days 365]
"""

import argparse
import datetime as dt
import os
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


def real_report(work: Path, days: int) -> Path:
    """The report of one range run of trusted/tmdb over `days` seeded days."""
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    os.environ["TMDB_START_DATE"] = first.isoformat()  # read when the definitions are imported, below
    from dagster import materialize

    from lake_assets.defs.assets import raw, trusted
    from lake_assets.defs.resources import LakeResource, SparkResource
    from lake_assets_tests.readback import lake_resources
    from lake_tools.seed_history import seed, snapshot_records

    lake = LakeResource(root=str(work / "lake"))
    landed = sorted(seed(lake, first, days, snapshot_records()))
    tags = {"dagster/asset_partition_range_start": landed[0], "dagster/asset_partition_range_end": landed[-1]}
    result = materialize(
        [raw.tmdb_json, trusted.tmdb], selection=[trusted.tmdb.key], resources=lake_resources(lake, SparkResource()), tags=tags
    )
    event = result.get_asset_materialization_events()[0]
    return Path(event.materialization.metadata["quality_report"].value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--real-days", type=int, default=365, help="days of the real run's backfill (0: no real run)")
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
            if args.real_days:
                path = real_report(work, args.real_days)
                kb = path.stat().st_size / 1000
                measured[f"{args.real_days}-day backfill, real run"] = (
                    args.real_days,
                    kb,
                    None,
                    *chromium_ms(browser, path, args.rounds),
                )
        base = measured["baseline: a 30-day run"]
        print(
            f"\nThe quality report of trusted/tmdb ({len(synthetic.rules)} rules): synthetic logs, and one real run; median of {args.rounds}"
        )
        rows = [
            (
                name,
                str(days),
                f"{kb:.0f}",
                f"{python_ms:.0f}" if python_ms is not None else "(in the run)",
                f"{loaded:.0f}",
                f"{rendered:.0f}",
                f"{rendered / base[4]:.1f}x",
            )
            for name, (days, kb, python_ms, loaded, rendered) in measured.items()
        ]
        header = ("report", "days", f"KB (goal <= {GOAL_KB})", "Python render ms", "Chromium load ms")
        print_table((*header, f"Chromium rendered ms (goal <= {GOAL_MS})", "rendered vs baseline"), rows)
        for name, (days, kb, _, _, rendered) in measured.items():
            if days >= 365:
                print(
                    f"{name}: size goal {'met' if kb <= GOAL_KB else 'NOT met'}, render goal {'met' if rendered <= GOAL_MS else 'NOT met'}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
