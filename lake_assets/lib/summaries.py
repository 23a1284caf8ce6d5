"""The original design's two summaries of `trusted/tmdb`, shown in the UI with each day's
materialisation: movies by production company, and movies per original language.

They are computed with pyarrow from the rows just published for one day (a day is a few hundred
rows), so they cost no Spark job, and each says what it counts: distinct movies, that day, top N.
"""

import pyarrow as pa
import pyarrow.compute as pc

TOP_COMPANIES = 25
TITLES_SHOWN = 5


def movies_by_company(day: pa.Table, label: str) -> str:
    """The companies with the most distinct movies that day, as a Markdown table."""
    pairs = pa.table(
        {
            "produtora": pc.list_flatten(day["produtoras"]),
            "tmdb_id": pc.take(day["tmdb_id"], pc.list_parent_indices(day["produtoras"])),
            "titulo": pc.take(day["titulo"], pc.list_parent_indices(day["produtoras"])),
        }
    )
    if pairs.num_rows == 0:
        return f"No production companies in {label}."
    grouped = pairs.group_by("produtora").aggregate([("tmdb_id", "count_distinct"), ("titulo", "distinct")])
    grouped = grouped.sort_by([("tmdb_id_count_distinct", "descending"), ("produtora", "ascending")])
    shown = grouped.slice(0, TOP_COMPANIES).to_pylist()
    lines = [
        f"Top {min(TOP_COMPANIES, grouped.num_rows)} of {grouped.num_rows} production companies by distinct movies, {label}.",
        "",
        "| produtora | distinct movies | titles |",
        "|---|---|---|",
    ]
    for row in shown:
        titles = sorted(t for t in row["titulo_distinct"] if t)
        more = f" (+{len(titles) - TITLES_SHOWN})" if len(titles) > TITLES_SHOWN else ""
        lines.append(
            f"| {_cell(row['produtora'])} | {row['tmdb_id_count_distinct']} | {_cell(', '.join(titles[:TITLES_SHOWN]) + more)} |"
        )
    return "\n".join(lines)


def movies_by_language(day: pa.Table, label: str) -> str:
    """Distinct movies per original language that day, as a Markdown table."""
    grouped = day.group_by("idioma_original").aggregate([("tmdb_id", "count_distinct")])
    grouped = grouped.sort_by([("tmdb_id_count_distinct", "descending"), ("idioma_original", "ascending")])
    lines = [f"Distinct movies per original language, {label}.", "", "| idioma_original | distinct movies |", "|---|---|"]
    lines += [f"| {_cell(row['idioma_original'])} | {row['tmdb_id_count_distinct']} |" for row in grouped.to_pylist()]
    return "\n".join(lines)


def _cell(value) -> str:
    return "(none)" if value is None else str(value).replace("|", "\\|")
