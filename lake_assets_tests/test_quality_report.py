"""The quality report (`lake_assets.lib.quality_report`) on a synthetic year of trusted/tmdb's quality
log: small enough to open, self-contained, escaped, every rule shown, and the flagged days findable;
then in headless Chromium, where a flagged day's row must be painted in the flagged colour.

`synthetic_log` is also what `bench/bench_quality_report.py` renders."""

import datetime as dt
import random
import re
import struct
import time
import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lake_assets.lib.contracts import SCHEMA_CHECK, TMDB
from lake_assets.lib.contracts.rules import Anomaly, Metric, Rule
from lake_assets.lib.lineage import column_lineage
from lake_assets.lib.quality_log import QUALITY_LOG_SCHEMA
from lake_assets.lib.quality_report import FLAGGED_COLOUR, render

RUN_ID = "3f0c2a8e-run-of-the-year"
START = dt.date(2024, 1, 1)
EVALUATED_AT = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)
HOSTILE_TITLE = "<script>alert(\"x\")</script> & 'Amor'"
MAX_BYTES = 300 * 1000


@dataclass
class Synthetic:
    """A table's quality log with one run of `days` days, and what that run should show."""

    log: pa.Table
    run_id: str
    rejected: dict[str | None, list[dict]]
    anomaly_day: str  # an anomaly rule out of its band: warned, published
    failed_day: str  # a fail rule broken: not published
    rejudged_day: str  # failed in an older run, clean in this one: not flagged
    rules: list[str]  # this run's rule names, the schema contract first

    def render(self, trend_days: int = 90) -> str:
        return render(
            TMDB.table,
            self.run_id,
            self.log,
            rejected=self.rejected,
            lineage=column_lineage(TMDB.table, "tmdb_details"),
            raw_asset="raw/tmdb_json",
            generated_at=EVALUATED_AT + dt.timedelta(minutes=5),
            trend_days=trend_days,
        )


def synthetic_log(days: int = 365, seed: int = 7) -> Synthetic:
    """trusted/tmdb's quality log after a backfill of `days` days from 2024-01-01 in one run, with the
    contract's real rules: two flagged days near the end, rejected rows every week, one rule not
    applicable at first, and an older run that judged the last day badly (this run's judgement wins)."""
    rng = random.Random(seed)
    dates = [(START + dt.timedelta(days=i)).isoformat() for i in range(days)]
    anomaly_day, failed_day, rejudged_day = dates[-3], dates[-10], dates[-1]
    rows: list[dict] = []
    rejected: dict[str | None, list[dict]] = {}
    previous = None
    for i, day in enumerate(dates):
        dropped = {"tmdb_id_present": 1, "generos_not_empty": 1} if i % 7 == 3 or day == failed_day else {}
        published_rows = 1000 + i // 4 + rng.randint(-30, 30)
        counts = (published_rows, sum(dropped.values()), previous)
        published = day != failed_day
        for rule in [None, *TMDB.rules]:
            rows.append(_row(rule, day, i, counts, dropped, published, rng, anomaly_day, failed_day))
        previous = published_rows
        if dropped:
            rejected[day] = [
                {
                    "_reject_reason": "tmdb_id_present",
                    "id": None,
                    "title": HOSTILE_TITLE,
                    "genres": [{"id": 18, "name": "Drama"}],
                },
                {"_reject_reason": "generos_not_empty", "record": '{"id": 7, "title": "<b>Sem gênero</b>", "genres": []}'},
            ]
    old_at = EVALUATED_AT - dt.timedelta(days=3)
    for rule in [None, *TMDB.rules]:  # an older run: the last day broke a fail rule then
        row = _row(rule, rejudged_day, days - 1, (1000, 0, None), {}, False, rng, "", "")
        if row["rule"] == "rows_reconcile_with_source":
            row |= {"violations": 5, "passed": False, "measured": "1005 source records; 1000 published + 0 rejected (stale)"}
        rows.append(row | {"run_id": "an-older-run", "evaluated_at": old_at})
    log = pa.Table.from_pylist(rows, schema=QUALITY_LOG_SCHEMA)
    rules = [SCHEMA_CHECK, *(r.name for r in TMDB.rules)]
    return Synthetic(log, RUN_ID, rejected, anomaly_day, failed_day, rejudged_day, rules)


# Typical values of each anomaly metric, and how much they wander day to day.
_MEANS = {"popularidade": (20.0, 1.0), "votos": (850.0, 40.0), "media_de_votos": (6.6, 0.1), "duracao_minutos": (104.0, 2.0)}
_MEANS |= {"orcamento": (1.2e7, 8e5), "receita": (3.5e7, 2e6)}


def _row(rule: Rule | None, day: str, i: int, counts, dropped, published, rng, anomaly_day, failed_day) -> dict:
    rows, rejected, previous = counts
    records = rows + rejected
    row = {
        "evaluated_at": EVALUATED_AT,
        "run_id": RUN_ID,
        "table": TMDB.table,
        "partition": day,
        "rule": rule.name if rule else SCHEMA_CHECK,
        "kind": rule.kind if rule else "Schema",
        "severity": str(rule.severity) if rule else "fail",
        "description": rule.description if rule else "The columns and types of the `tmdb_details` layout.",
        "applicable": not (rule is not None and rule.name == "imdb_id_format" and i < 3),
        "violations": 0,
        "rows_checked": records if rule else 17,
        "measured": "17 columns" if rule is None else "",
        "samples": [],
        "published": published,
    }
    if rule is None:
        pass
    elif isinstance(rule, Anomaly):
        row |= _anomaly(rule, i, records, rng, breaks=day == anomaly_day)
    elif rule.name == "rows_reconcile_with_source":
        row["measured"] = f"{records} source records; {rows} published + {rejected} rejected"
    elif rule.name == "at_least_one_row":
        row["measured"] = f"{rows} rows (minimum 1)"
    elif rule.name == "rejected_at_most_10_percent":
        row["measured"] = f"{rejected} of {records} rows rejected ({rejected / records:.1%}, at most 10%)"
    elif rule.name == "rows_at_least_half_of_previous_day":
        row["measured"] = (
            f"{rows} rows vs {previous} in the previous partition (at least 50%)" if previous else "no previous partition"
        )
    elif str(rule.severity) == "drop":
        row["violations"] = dropped.get(rule.name, 0)
        row["measured"] = f"{row['violations']} of {records} rows set aside"
    elif rule.name == "media_de_votos_0_to_10" and day == failed_day:
        row |= {"violations": 3, "samples": ["42.0", HOSTILE_TITLE, '11 & "up"']}
    row["passed"] = row["violations"] == 0 or row["severity"] == "drop"
    return row


def _anomaly(rule: Anomaly, i: int, records: int, rng: random.Random, breaks: bool) -> dict:
    if rule.metric is Metric.ROW_COUNT:
        typical, spread = 1000.0 + i // 4, 0.0  # the published rows' trend
        observed, half_band = float(records), typical * 0.25
    elif rule.metric is Metric.MEAN:
        typical, spread = _MEANS[rule.column]
        observed, half_band = typical + rng.gauss(0, spread), max(typical * 0.10, 5 * spread)
    elif rule.metric is Metric.DISTRIBUTION:
        typical, spread, half_band = 0.04, 0.01, 0.15
        observed = abs(rng.gauss(typical, spread))
    else:  # a share: null shares near 0, distinct shares near 1
        typical = 0.999 if rule.metric is Metric.DISTINCT_SHARE else 0.02 + 0.01 * (len(rule.column) % 5)
        spread, half_band = 0.004, 0.05
        observed = min(1.0, max(0.0, typical + rng.gauss(0, spread)))
    if breaks and rule.name == "anomaly_mean_popularidade":
        observed = typical * 3.05
    warming = i < rule.window
    low, high = (None, None) if warming else (typical - half_band, typical + half_band)
    out_of_band = not warming and not (low <= observed <= high)  # type: ignore[operator]
    measured = (
        f"warming up: {i} of {rule.window} published days of history; observed {observed:.4g}"
        if warming
        else f"observed {observed:.4g}, expected {low:.4g} to {high:.4g} (last {rule.window} days)"
    )
    return {
        "observed": observed,
        "expected_low": low,
        "expected_high": high,
        "violations": int(out_of_band),
        "measured": measured,
        "shares": [("en", 0.6), ("pt", 0.25), ("fr", 0.15)] if rule.metric is Metric.DISTRIBUTION else None,
    }


@pytest.fixture(scope="module")
def year() -> Synthetic:
    return synthetic_log(365)


@pytest.fixture(scope="module")
def page(year) -> str:
    return year.render()


def test_a_year_of_partitions_fits_in_300_kb(page):
    assert len(page.encode("utf-8")) <= MAX_BYTES, f"{len(page.encode()) / 1000:.0f} KB"


def test_the_header_counts_and_links_the_flagged_days(year, page):
    header = page[: page.index('id="matrix"')]
    assert re.search(r"<b>365</b> days judged by this run · <b>364</b> published · <b[^>]*>2</b> flagged", header)
    for day in (year.anomaly_day, year.failed_day):
        assert f'href="#day-{day}"' in header
        assert f'<tr id="day-{day}" class=flagged>' in page
        assert f'id="x-day-{day}"' in page  # its detail block
    # Judged badly by an older run, then cleanly by this one: this run's judgement counts.
    assert f'<tr id="day-{year.rejudged_day}">' in page
    assert f'href="#day-{year.rejudged_day}"' not in header
    assert len(re.findall(r"<tr id=\"day-[0-9-]+\"", page)) == 365


def test_a_flagged_day_says_why(year, page):
    failed = page[page.index(f'id="x-day-{year.failed_day}"') :]
    failed = failed[: failed.index("</div>")]
    assert "not published" in failed and "media_de_votos_0_to_10" in failed and "42.0" in failed
    anomaly = page[page.index(f'id="x-day-{year.anomaly_day}"') :]
    anomaly = anomaly[: anomaly.index("</div>")]
    assert re.search(r"anomaly_mean_popularidade.*observed 61, expected \[15, 25\]", anomaly)


def test_strings_from_the_data_are_escaped(page):
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;Amor&#x27;" in page  # a sample and a rejected field
    assert "&lt;b&gt;Sem gênero&lt;/b&gt;" in page  # a rejected record's text
    assert "<b>Sem" not in page


def test_the_page_loads_nothing_from_outside(page):
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE)
    assert not re.search(r"\b(src|href)\s*=\s*(?![\"']?#)", page, re.IGNORECASE), "only in-page links"
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page


def test_every_rule_of_the_run_appears(year, page):
    assert len(year.rules) == 1 + len(TMDB.rules) >= 40
    for name in year.rules:
        assert f"<code>{name}</code>" in page, name


def test_each_anomaly_rule_and_the_records_have_a_trend_chart(year, page):
    trends = page[page.index('id="trends"') : page.index('id="rules"')]
    anomalies = [r.name for r in TMDB.rules if isinstance(r, Anomaly)]
    assert len(anomalies) >= 20
    assert trends.count("<svg") == len(anomalies) + 1
    popularity = trends[trends.index("<b>anomaly_mean_popularidade</b>") :]
    popularity = popularity[: popularity.index("</figure>")]
    assert "<polygon class=b" in popularity and "<polyline class=o" in popularity
    assert popularity.count("class=x") == 1  # the one day out of its band


def test_an_unpartitioned_table_gets_a_report_too(year):
    log = year.log.filter(pc.equal(year.log["partition"], year.anomaly_day))
    log = log.set_column(log.schema.get_field_index("partition"), "partition", pa.nulls(len(log), pa.string()))
    page = render("trusted/filmes", RUN_ID, log, rejected={}, lineage={}, raw_asset="raw/filmes_csv", generated_at=EVALUATED_AT)
    assert '<tr id="day-table" class=flagged>' in page and "table versions judged" in page


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.e2e  # Chromium: a browser, as test_ui_browser.py's tests (never the unit tier)
def test_a_flagged_day_is_painted_in_the_flagged_colour(year, page, tmp_path):
    from lake_assets_tests.browser import Browser

    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    day = year.failed_day
    with Browser() as browser:
        browser.open(report.as_uri())
        deadline = time.monotonic() + 30  # the whole page: the header names the day before its row is parsed
        while not browser.evaluate("location.protocol === 'file:' && document.readyState === 'complete'"):
            assert time.monotonic() < deadline, "the report did not load in 30 s"
            time.sleep(0.05)
        # The row scrolled to the top of the view: the screenshot's first rows of pixels are the only
        # ones to decode (PNG rows decode in order, and pure Python is slow at a whole screen).
        box = browser.evaluate(
            f"""(() => {{
                const row = document.getElementById('day-{day}');
                row.scrollIntoView({{block: 'start'}});
                const cell = row.querySelector('th').getBoundingClientRect();
                return {{x: cell.x, y: cell.y, w: cell.width, h: cell.height, scale: window.devicePixelRatio,
                         colour: getComputedStyle(row.querySelector('th')).backgroundColor,
                         flagged: row.classList.contains('flagged')}};
            }})()"""
        )
        shot = tmp_path / "report.png"
        browser.screenshot(shot)
    assert box["flagged"] and box["colour"] == "rgb({}, {}, {})".format(*_rgb(FLAGGED_COLOUR))
    assert -2 < box["y"] < 100 and box["w"] > 40 and box["h"] > 8, box
    scale = box["scale"]
    top, bottom = max(0, round(box["y"] * scale)) + 2, round((box["y"] + box["h"]) * scale) - 2
    left, right = round(box["x"] * scale) + 2, round((box["x"] + box["w"]) * scale) - 2
    width, height, pixels = _decode_png(shot.read_bytes(), rows=bottom)
    assert width >= 800 and height >= 400
    assert len({pixels[y][x] for y in range(0, bottom, 3) for x in range(0, width, 7)}) > 5, "a blank screenshot"
    cell = [pixels[y][x] for y in range(top, bottom) for x in range(left, right)]
    painted = sum(1 for p in cell if all(abs(a - b) <= 6 for a, b in zip(p, _rgb(FLAGGED_COLOUR), strict=True)))
    assert painted / len(cell) > 0.5, f"{painted} of {len(cell)} pixels of the day's cell in {FLAGGED_COLOUR}"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _decode_png(data: bytes, rows: int) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """The first `rows` rows of an 8-bit RGB or RGBA PNG, not interlaced (what Chromium writes), as
    RGB pixels: enough of a decoder for one check, without Pillow."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, [], b""
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += [body] if kind == b"IDAT" else []
        at += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    channels = 4 if colour_type == 6 else 3
    stride = width * channels
    raw = zlib.decompress(b"".join(idat))
    previous = bytearray(stride)
    out = []
    for y in range(min(rows, height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa_, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa_ <= pb and pa_ <= pc else b if pb <= pc else c)) & 255
        out.append([tuple(line[x * channels : x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, out  # type: ignore[return-value]


def test_make_report_prints_the_newest_report_of_the_lake(tmp_path, monkeypatch, capsys):
    from lake_assets.cli import report

    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    assert report.main(["--no-open"]) == 1
    assert "no quality report under" in capsys.readouterr().out
    folder = tmp_path / "lake" / "trusted" / "_quality"
    folder.mkdir(parents=True)
    for name in (
        "tmdb-20261201T060000-aaaaaaaa.html",
        "filmes-20261203T060000-bbbbbbbb.html",
        "tmdb-20261202T060000-cccccccc.html",
    ):
        (folder / name).write_text("<html></html>")
    (folder / "tmdb-20261204T060000-dddddddd.parquet").write_bytes(b"")  # a log, not a report
    assert report.main(["--no-open"]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "filmes-20261203T060000-bbbbbbbb.html")
    assert report.main(["--no-open", "--table", "tmdb"]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "tmdb-20261202T060000-cccccccc.html")
