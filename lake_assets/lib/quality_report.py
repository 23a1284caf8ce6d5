"""A trusted table's quality report: one self-contained HTML page made from its quality log.

`render` turns the `_quality/` rows of one table (every run: the trends need the history) into a
page a person opens from disk: what this run judged, published and flagged, every rule per day as a
compact matrix, why each flagged day was flagged, samples of the rejected rows, the anomaly metrics
over time as small inline SVG charts, and the column lineage from the raw asset.

Self-contained on purpose: inline CSS and SVG, no script, no font, no link outside the page (a
Content-Security-Policy says so to the browser too), so it opens offline and loads nothing. Every
string from the data is escaped. Compact on purpose too: a 365-day backfill with 42 rules is 15,330
cells, so a passing cell is a bare `<td>` (HTML lets end tags go) and only the other cells carry a
class and a title; long texts are cut, and the per-day blocks stop at a byte budget.
"""

import datetime as dt
import html
import json
import math
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

FLAGGED_COLOUR = "#ffb3b3"  # a flagged day's date cell; the browser test looks for it on screen
ANOMALY = "Anomaly"
SCHEMA = "Schema"
TREND_DAYS = 90  # how far back the charts look
# Characters each part may spend before it stops saying more: with every budget spent, a year of bad
# days still fits in 300 KB (the bare matrix and the charts take ~150 KB).
DETAIL_BUDGET = 40_000  # the flagged days' blocks; past it, the days are named only
REJECTED_BUDGET = 30_000  # the other days' rejected samples
TITLE_BUDGET = 30_000  # hover texts of the matrix's cells; past it, a cell keeps its colour and count
FLAGGED_LINKS = 60  # flagged days linked from the header; the matrix's filter shows them all
TEXT_CUT, TITLE_CUT, SAMPLE_CUT, RECORD_CUT = 300, 120, 120, 300  # characters of a text, title, sample, record
CHART_W, CHART_H = 220, 48
# The columns the trends read; `shares` (a map) is the costliest to convert and only the run's rows need it.
_TREND_COLUMNS = ["evaluated_at", "partition", "rule", "kind", "severity", "applicable", "violations", "rows_checked"]
_TREND_COLUMNS += ["published", "observed", "expected_low", "expected_high"]
_STATES = {"f": "failed", "w": "warned", "d": "rows dropped", "u": "warming up", "n": "not applicable"}

_CSS = f"""
body{{font:13px/1.45 system-ui,sans-serif;margin:16px 24px;color:#1d232b;background:#fff}}
h1{{font-size:20px;margin:0 0 4px}}h2{{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ccd}}a{{color:#0b57b0}}
h3{{font-size:14px;margin:16px 0 4px}}code{{font:12px ui-monospace,monospace;background:#f2f3f5;padding:0 3px}}.q{{color:#667}}
.k b{{font-size:16px}}.m{{border-collapse:collapse;font:10px/1 ui-monospace,monospace}}.m td.c{{background:#f4f5f7;text-align:right}}
.m td{{min-width:16px;height:15px;padding:0 2px;text-align:center;background:#cdebd3;border:1px solid #fff}}
.m th{{font-weight:normal;text-align:left;padding:0 8px 0 4px;white-space:nowrap;border:1px solid #fff}}
.m thead th{{vertical-align:bottom}}.m thead th.r{{writing-mode:vertical-rl;transform:rotate(180deg);padding:4px 0}}
.f{{background:#d93f3f!important;color:#fff}}.w{{background:#f5c542!important}}.d{{background:#a9c4f0!important}}
.n{{background:#e2e2e2!important}}.u{{background:#f7f7f7!important;color:#999}}
.m tr.flagged th{{background:{FLAGGED_COLOUR};font-weight:bold}}.m tr.flagged{{outline:2px solid #c22;outline-offset:-1px}}
.m tbody tr:hover th{{background:#dde6f5}}#only:checked~table tbody tr:not(.flagged){{display:none}}
.legend span{{display:inline-block;padding:1px 6px;margin-right:6px;background:#cdebd3}}
.detail{{border-left:4px solid #c22;padding:2px 12px;margin:10px 0;background:#fff7f7}}
table.t{{border-collapse:collapse;margin:4px 0}}.t td,.t th{{border:1px solid #dde;padding:2px 6px;text-align:left;vertical-align:top}}
.t td.s{{font:11px ui-monospace,monospace;word-break:break-all;max-width:900px}}
.charts{{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:10px 16px}}
figure{{margin:0}}figcaption{{font-size:11px;overflow-wrap:anywhere}}svg{{background:#fafbfc;border:1px solid #e3e6ea}}
.b{{fill:#cfe0ff}}.o{{fill:none;stroke:#24466b;stroke-width:1.3}}.x{{fill:#d40000}}"""
# Nothing loads from anywhere: the page is all there is.
_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def render(
    table: str,
    run_id: str,
    log: pa.Table,
    *,
    rejected: Mapping[str | None, Sequence[Mapping]],
    lineage: Mapping[str, Sequence[str]],
    raw_asset: str,
    generated_at: dt.datetime,
    trend_days: int = TREND_DAYS,
) -> str:
    """The quality report of `table`'s run `run_id`, one HTML document, from the table's whole
    quality log `log` (every run; this run's rows included), the run's `rejected` row samples per
    partition, and `lineage` (trusted column -> raw fields of `raw_asset`)."""
    run = _latest(log.filter(pc.equal(log["run_id"], run_id)).to_pylist())
    days = sorted(run, key=lambda p: p or "")
    rules = _rule_order(run, days)
    flagged = [p for p in days if _flagged(run[p])]
    published = sum(1 for p in days if _published(run[p]))
    evaluated = max((r["evaluated_at"] for rows in run.values() for r in rows), default=None)
    noun = "days" if any(p is not None for p in days) else "table versions"
    out = [
        f'<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=Content-Security-Policy content="{_CSP}">',
        f"<title>Quality: {_e(table)} {_e(run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Quality report: {_e(table)}</h1><p class=q>run <code>{_e(run_id)}</code> · generated {_when(generated_at)}",
        f" · judged {_when(evaluated)}</p>" if evaluated else "</p>",
        f"<p class=k><b>{len(days)}</b> {noun} judged by this run · <b>{published}</b> published · ",
        f'<b style="color:{"#c22" if flagged else "#2a7a3b"}">{len(flagged)}</b> flagged</p>',
    ]
    if flagged:
        links = " ".join(f'<a href="#{_anchor(p)}">{_e(_label(p))}</a>' for p in flagged[:FLAGGED_LINKS])
        more = f" and {len(flagged) - FLAGGED_LINKS} more: tick “only the flagged days”" if len(flagged) > FLAGGED_LINKS else ""
        out.append(f"<p>Flagged: {links}{more}</p>")
    out.append(_matrix(run, days, rules, set(flagged)))
    out.append(_details(run, flagged, rejected))
    out.append(_rejected_section(rejected, [p for p in days if p not in set(flagged)]))
    out.append(_trends(log, rules, trend_days))
    out.append(_rules_table(run, days, rules))
    out.append(_lineage(lineage, raw_asset))
    out.append("</body></html>\n")
    return "".join(out)


# --- reading the log -----------------------------------------------------------------------------


def _latest(rows: list[dict]) -> dict[str | None, list[dict]]:
    """Each partition's rows of its latest evaluation: a partition judged twice counts once."""
    newest: dict[str | None, dt.datetime] = {}
    for r in rows:
        if r["partition"] not in newest or r["evaluated_at"] > newest[r["partition"]]:
            newest[r["partition"]] = r["evaluated_at"]
    out: dict[str | None, list[dict]] = {}
    for r in rows:
        if r["evaluated_at"] == newest[r["partition"]]:
            out.setdefault(r["partition"], []).append(r)
    return out


def _rule_order(run: Mapping[str | None, list[dict]], days: Sequence[str | None]) -> list[dict]:
    """One row per rule (its first), in the contract's order; a rule only some layouts have still shows."""
    seen: dict[str, dict] = {}
    for r in (r for p in days for r in run[p]):
        seen.setdefault(r["rule"], r)
    return list(seen.values())


def _state(r: Mapping) -> str:
    """A rule's cell: '' passed, f failed, w warned, d rows dropped, n not applicable, u warming up."""
    if not r["applicable"]:
        return "n"
    if r["violations"]:
        return {"fail": "f", "drop": "d"}.get(r["severity"], "w")
    if r["kind"] == ANOMALY and r["expected_low"] is None and r["expected_high"] is None:
        return "u"
    return ""


def _published(rows: Sequence[Mapping]) -> bool:
    return all(r["published"] for r in rows)


def _flagged(rows: Sequence[Mapping]) -> bool:
    """Worth a person's look: a warn or fail rule broken, or not published."""
    broken = any(r["applicable"] and r["severity"] in ("warn", "fail") and r["violations"] for r in rows)
    return broken or not _published(rows)


def _records(rows: Sequence[Mapping]) -> int | None:
    """Records checked: the most any rule checked rows (the schema rule counts columns, an anomaly rule none)."""
    counted = (r["rows_checked"] for r in rows if r["kind"] not in (SCHEMA, ANOMALY) and r["rows_checked"] is not None)
    return max(counted, default=None)


# --- formatting ----------------------------------------------------------------------------------


def _e(value: object, cut: int | None = None) -> str:
    text = "" if value is None else str(value)
    if cut is not None and len(text) > cut:
        text = text[: cut - 1] + "…"
    return html.escape(text, quote=True)


def _when(moment: dt.datetime | None) -> str:
    return _e(moment.strftime("%Y-%m-%d %H:%M %Z").strip()) if moment else "–"


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _short(count: int) -> str:
    """A violation count that fits a 16-pixel cell."""
    return str(count) if count < 1000 else f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"


def _band(r: Mapping) -> str:
    return f"observed {_num(r['observed'])}, expected [{_num(r['expected_low'])}, {_num(r['expected_high'])}]"


def _label(p: str | None) -> str:
    return p if p is not None else "table"


def _anchor(p: str | None) -> str:
    return _e(f"day-{_label(p)}")


# --- the sections --------------------------------------------------------------------------------


def _matrix(run: Mapping, days: Sequence[str | None], rules: Sequence[dict], flagged: set) -> str:
    """Days as rows, rules as columns; only the cells that did not pass say more (a class, a title)."""
    out = ['<h2 id="matrix">Rules per day</h2><p class="legend">']
    out += ["<span>passed</span>"] + [f'<span class="{k}">{v}</span>' for k, v in _STATES.items()]
    out.append("· ~ an anomaly rule (judged against its own history) · hover a coloured cell for what was measured;")
    out.append(" a flagged day's date links to its details.</p>")
    out.append('<section><input type=checkbox id="only"><label for="only"> only the flagged days</label>')
    out.append("<table class=m><thead><tr><th>day<th>pub<th>records")
    for r in rules:
        name = r["rule"]
        label = name.removeprefix("anomaly_") if r["kind"] == ANOMALY else name
        out.append(f'<th class=r title="{_e(name)}">{"~" if r["kind"] == ANOMALY else ""}{_e(label)}')
    out.append("</thead><tbody>")
    room = [TITLE_BUDGET]  # what the cells' titles may still spend
    for p in days:
        by_rule = {r["rule"]: r for r in run[p]}
        is_flagged = p in flagged
        day = f'<a href="#x-{_anchor(p)}">{_e(_label(p))}</a>' if is_flagged else _e(_label(p))
        pub = "<td>✓" if _published(run[p]) else '<td class=f title="not published">✗'
        records = _records(run[p])
        out.append(f'<tr id="{_anchor(p)}"{" class=flagged" if is_flagged else ""}><th>{day}{pub}')
        out.append(f"<td class=c>{records if records is not None else ''}")
        for rule in rules:
            out.append(_cell(by_rule.get(rule["rule"]), room))
    out.append("</tbody></table></section>")
    return "".join(out)


def _cell(r: Mapping | None, room: list[int]) -> str:
    """A bare cell when the rule passed (most do); else its state, count and, while `room` lasts, a
    title naming the rule (the column headers are far up a long page) and what was measured."""
    state = "n" if r is None else _state(r)
    if not state or r is None:
        return "<td>" if r is not None else "<td class=n>"
    if state == "n" or room[0] <= 0:
        return f"<td class={state}>" + (_short(r["violations"]) if r["violations"] else "")
    if state == "u":
        title = f"observed {_num(r['observed'])}"  # near the headers: a year's first days warm up
    elif r["kind"] == ANOMALY:
        title = f"{r['rule']}: {_band(r)}"
    else:
        title = f"{r['rule']}: {r['measured'] or str(r['violations']) + ' violation(s)'}"
    text = f'<td class={state} title="{_e(title, TITLE_CUT)}">{_short(r["violations"]) if r["violations"] else ""}'
    room[0] -= len(text)
    return text


def _details(run: Mapping, flagged: Sequence[str | None], rejected: Mapping) -> str:
    """What broke on each flagged day, and its rejected rows."""
    if not flagged:
        return '<h2 id="details">Flagged days</h2><p>No day was flagged: every warn and fail rule held, and every day was published.</p>'
    out = ['<h2 id="details">Flagged days</h2>']
    used = 0
    for i, p in enumerate(flagged):
        if used > DETAIL_BUDGET:
            rest = ", ".join(_e(_label(q)) for q in flagged[i:])
            out.append(f"<p>Not detailed here, to keep the page small (their rows in the matrix say what broke): {rest}</p>")
            break
        rows = run[p]
        status = "published" if _published(rows) else "<b>not published</b> (the previous version stays current)"
        block = [f'<div class=detail id="x-{_anchor(p)}"><h3><a href="#{_anchor(p)}">{_e(_label(p))}</a> · {status}</h3><ul>']
        block += [_broken(r) for r in rows if r["applicable"] and r["violations"]]
        block += ["</ul>", _rejected_rows(rejected.get(p, ())), "</div>"]
        text = "".join(block)
        used += len(text)
        out.append(text)
    return "".join(out)


def _broken(r: Mapping) -> str:
    what = f"<li><b class={_state(r)}>&nbsp;{_e(r['rule'])}&nbsp;</b> ({_e(r['severity'])}): "
    if r["kind"] == ANOMALY:
        what += f"out of band: {_band(r)}"
    else:
        what += f"{r['violations']} violation(s)" if r["severity"] != "drop" else f"{r['violations']} row(s) set aside"
    if r["measured"] and r["kind"] != ANOMALY:  # an anomaly's measured text repeats its band
        what += f" <span class=q>({_e(r['measured'], TEXT_CUT)})</span>"
    if r["samples"]:
        what += "; e.g. " + ", ".join(f"<code>{_e(s, SAMPLE_CUT)}</code>" for s in r["samples"])
    if r.get("shares"):
        top = sorted(r["shares"], key=lambda kv: -kv[1])[:6]  # a map arrives as (key, value) pairs
        what += "; shares " + ", ".join(f"{_e(k, 20)} {v:.1%}" for k, v in top)
    return what


def _rejected_rows(rows: Sequence[Mapping]) -> str:
    """Up to five rejected rows: the reason, and the raw record (its fields, or its text)."""
    if not rows:
        return ""
    out = ["<table class=t><tr><th>rejected because<th>raw record"]
    for row in rows[:5]:
        if "record" in row and len(row) <= 2:
            record = str(row["record"])
        else:
            fields = {k: v for k, v in row.items() if k != "_reject_reason"}
            record = "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in fields.items())
        out.append(f"<tr><td>{_e(row.get('_reject_reason'))}<td class=s>{_e(record, RECORD_CUT)}")
    out.append("</table>")
    return "".join(out)


def _rejected_section(rejected: Mapping, days: Sequence[str | None]) -> str:
    """The other days' rejected samples, one closed block per day (flagged days show theirs above)."""
    shown = [p for p in days if rejected.get(p)]
    if not shown:
        return ""
    out = ['<h2 id="rejected">Rejected rows, other days (samples)</h2>']
    used = 0
    for i, p in enumerate(shown):
        if used > REJECTED_BUDGET:
            out.append(f"<p class=q>{len(shown) - i} more days with rejected rows: see their <code>_rejected/</code> files.</p>")
            break
        summary = f"<summary>{_e(_label(p))} · {len(rejected[p])} sample(s)</summary>"
        text = f"<details>{summary}{_rejected_rows(rejected[p])}</details>"
        used += len(text)
        out.append(text)
    return "".join(out)


def _trends(log: pa.Table, rules: Sequence[dict], trend_days: int) -> str:
    """One small chart per anomaly metric, plus the records checked, over the last `trend_days`."""
    rows = log.select(_TREND_COLUMNS).to_pylist()
    partitioned = any(r["partition"] is not None for r in rows)
    points: list[tuple[float, dict[str, dict]]] = []
    if partitioned:
        latest = _latest([r for r in rows if r["partition"] is not None])
        newest = max(dt.date.fromisoformat(p) for p in latest if p)
        start = newest - dt.timedelta(days=trend_days - 1)
        span, gap = float(max(trend_days - 1, 1)), 1.5  # a missing day breaks the line
        for p, evaluation in latest.items():
            day = dt.date.fromisoformat(p or "")
            if day >= start:
                points.append(((day - start).days, {r["rule"]: r for r in evaluation}))
        window = f"{start.isoformat()} → {newest.isoformat()} (by partition date; latest evaluation of each)"
    elif rows:
        # An unpartitioned table: each run's evaluation is a point in time.
        runs: dict[dt.datetime, dict[str, dict]] = {}
        for r in rows:
            runs.setdefault(r["evaluated_at"], {})[r["rule"]] = r
        newest_at = max(runs)
        start_at = newest_at - dt.timedelta(days=trend_days)
        span, gap = float(trend_days), math.inf
        points = [((t - start_at).total_seconds() / 86400, by) for t, by in runs.items() if t >= start_at]
        window = f"{_when(start_at)} → {_when(newest_at)} (by evaluation time)"
    else:
        return ""
    points.sort(key=lambda pt: pt[0])
    out = [f'<h2 id="trends">Trends, last {trend_days} days</h2><p class=q>{window}. ']
    out.append("Line: observed; shaded: the expected band; red: out of band (or, for records, a flagged day).</p>")
    out.append('<div class="charts">')
    records = [(x, _records(list(by.values())), None, None, _flagged(list(by.values()))) for x, by in points]
    out.append(_figure("records checked", records, span, gap))
    for name in (r["rule"] for r in rules if r["kind"] == ANOMALY):
        readings = [(x, by[name]) for x, by in points if name in by]
        series = [(x, r["observed"], r["expected_low"], r["expected_high"], bool(r["violations"])) for x, r in readings]
        out.append(_figure(name, series, span, gap))
    out.append("</div>")
    return "".join(out)


Point = tuple[float, float | None, float | None, float | None, bool]  # x, observed, band low, band high, red


def _figure(name: str, series: Sequence[Point], span: float, gap: float) -> str:
    """A chart under its name, the last value (and band), and the vertical scale."""
    last = next((pt for pt in reversed(series) if pt[1] is not None), None)
    said = f"last {_num(last[1])}" if last else "no value"
    if last and last[2] is not None:
        said += f" in [{_num(last[2])}, {_num(last[3])}]"
    chart, low, high = _chart(series, span, gap)
    scale = f" · y {_num(low)} to {_num(high)}" if chart else ""
    caption = f"<figcaption><b>{_e(name)}</b><br><span class=q>{said}{scale}</span></figcaption>"
    return f"<figure>{caption}{chart or '<p class=q>no data'}</figure>"


def _chart(series: Sequence[Point], span: float, gap: float) -> tuple[str, float, float]:
    """An inline SVG: the band as shaded polygons, the observed values as polylines, red dots.
    Whole-pixel coordinates keep the markup small."""
    values = [v for pt in series for v in pt[1:4] if v is not None and math.isfinite(v)]
    if not values:
        return "", 0.0, 0.0
    low, high = min(values), max(values)
    if high - low < 1e-12:  # a flat line sits mid-height
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad

    def xy(x: float, v: float | None) -> str:
        v = low if v is None else v  # never: callers pass checked values; this keeps the types honest
        px = round(2 + x / span * (CHART_W - 4)) if span else CHART_W // 2
        return f"{px},{round(CHART_H - 2 - (v - low) / (high - low) * (CHART_H - 4))}"

    def runs(ok) -> list[list[Point]]:
        """Consecutive points that `ok` keeps, split where a point fails it or a day is missing."""
        out: list[list[Point]] = []
        for pt in series:
            if not ok(pt):
                out.append([])
            elif out and out[-1] and pt[0] - out[-1][-1][0] <= gap:
                out[-1].append(pt)
            else:
                out.append([pt])
        return [run for run in out if run]

    def finite(*vs: float | None) -> bool:
        return all(v is not None and math.isfinite(v) for v in vs)

    svg = [f'<svg width={CHART_W} height={CHART_H} viewBox="0 0 {CHART_W} {CHART_H}">']
    for run in runs(lambda pt: finite(pt[2], pt[3])):
        edge = [xy(pt[0], pt[3]) for pt in run] + [xy(pt[0], pt[2]) for pt in reversed(run)]
        svg.append(f'<polygon class=b points="{" ".join(edge)}"/>')
    for run in runs(lambda pt: finite(pt[1])):
        if len(run) > 1:
            svg.append(f'<polyline class=o points="{" ".join(xy(pt[0], pt[1]) for pt in run)}"/>')
        else:
            cx, cy = xy(run[0][0], run[0][1]).split(",")
            svg.append(f"<circle class=o cx={cx} cy={cy} r=1.5 />")
    for pt in series:
        if pt[4] and finite(pt[1]):
            cx, cy = xy(pt[0], pt[1]).split(",")
            svg.append(f"<circle class=x cx={cx} cy={cy} r=2.5 />")
    svg.append("</svg>")
    return "".join(svg), low, high


def _rules_table(run: Mapping, days: Sequence[str | None], rules: Sequence[dict]) -> str:
    """Every rule of the run: what it promises, and on how many days it did not pass."""
    index = {p: {r["rule"]: r for r in run[p]} for p in days}
    out = ['<h2 id="rules">The rules</h2><table class=t><tr><th>rule<th>kind<th>severity<th>days not passing<th>what it promises']
    for rule in rules:
        name = rule["rule"]
        states = [_state(index[p][name]) for p in days if name in index[p]]
        bad = sum(1 for s in states if s in ("f", "w", "d"))
        extra = [f"{states.count(k)} {v}" for k, v in _STATES.items() if k in "un" and states.count(k)]
        counted = f"{bad} of {len(states)}" + (f" ({', '.join(extra)})" if extra else "")
        out.append(f"<tr><td><code>{_e(name)}</code><td>{_e(rule['kind'])}<td>{_e(rule['severity'])}<td>{counted}")
        out.append(f"<td>{_e(rule['description'], TEXT_CUT)}")
    out.append("</table>")
    return "".join(out)


def _lineage(lineage: Mapping[str, Sequence[str]], raw_asset: str) -> str:
    if not lineage:
        return ""
    out = ['<h2 id="lineage">Column lineage</h2><table class=t><tr><th>trusted column']
    out.append(f"<th>← fields of <code>{_e(raw_asset)}</code>")
    for column, fields in lineage.items():
        out.append(f"<tr><td><code>{_e(column)}</code><td>{', '.join(f'<code>{_e(f)}</code>' for f in fields) or '–'}")
    out.append("</table>")
    return "".join(out)
