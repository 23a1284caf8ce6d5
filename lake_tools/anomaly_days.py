"""Seeded days of `trusted/tmdb` rows with injected anomalies: what the anomaly rules are tested and
benchmarked on (`lake_assets_tests/test_anomalies.py`, `bench/bench_anomalies.py`).

A day is what the publish step sees: the rows it publishes (typed like the trusted table) and the
records the contract set aside, per reason. Days drift as TMDB's top-rated list does: the same
catalogue, a little churn, noisy popularity, slowly growing vote counts. Five days carry one
anomaly each (`INJECTED`); every other day is normal.

`python -m lake_tools.anomaly_days [--days 90] [--seed 7]` prints each day's row count and anomaly.
"""

import argparse
import datetime as dt
import random
import tempfile
import time
from dataclasses import dataclass, field

import pyarrow as pa

from lake_assets.lib.contracts import TMDB
from lake_assets.lib.contracts.anomalies import anomaly_rules, profile
from lake_assets.lib.contracts.evaluate import Observed, judge_in_order, schema_result
from lake_assets.lib.contracts.rules import Anomaly
from lake_assets.lib.contracts.tmdb import COLUMNS
from lake_assets.lib.quality_log import LogReader, entries, log_key, write
from lake_assets.lib.storage import Storage
from lake_assets.lib.storage.local import LocalStorage

FIRST_DAY = dt.date(2026, 1, 1)
CATALOGUE = 1200  # movies a day's list is drawn from
DAILY_ROWS = 300
LANGUAGES = {"en": 0.42, "ja": 0.1, "it": 0.08, "fr": 0.08, "ko": 0.06, "pt": 0.05, "es": 0.05, "hi": 0.04, "de": 0.04}
OTHER_LANGUAGES = ("sv", "da", "zh", "ru", "pl", "fa", "tr")  # the remaining 8% between them
NULL_RATES = {"imdb_id": 0.02, "visao_geral": 0.03, "duracao_minutos": 0.01, "orcamento": 0.4, "receita": 0.45}
# Day index -> the anomaly injected that day (after the 14-day warm-up, spread out).
INJECTED = {
    24: "a third of the rows",
    37: "titulo_original 40% null",
    51: "media_de_votos shifted by -2",
    66: "8% duplicated tmdb_id",
    79: "idioma_original distribution flipped (en <-> pt)",
}
DUPLICATES_REASON = "one_row_per_movie_per_day"  # the contract's Unique rule on tmdb_id


@dataclass
class Day:
    partition: str
    rows: pa.Table
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    anomaly: str | None = None


def days(count: int = 90, seed: int = 7) -> list[Day]:
    """`count` consecutive days from FIRST_DAY, the same for the same seed."""
    rng = random.Random(seed)
    catalogue = [_movie(rng, movie_id) for movie_id in range(1, CATALOGUE + 1)]
    return [_day(rng, catalogue, index) for index in range(count)]


def _movie(rng: random.Random, movie_id: int) -> dict:
    language = rng.choices(list(LANGUAGES) + ["*"], weights=list(LANGUAGES.values()) + [0.08])[0]
    return {
        "tmdb_id": 1000 + movie_id,
        "imdb_id": f"tt{rng.randrange(10**6, 10**7):07d}",
        "titulo": f"Filme {movie_id}",
        "titulo_original": f"Movie {movie_id}",
        "data_de_lancamento": dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(33_000)),
        "visao_geral": f"Sinopse do filme {movie_id}.",
        "popularidade": rng.lognormvariate(3.0, 0.8),
        "votos": int(rng.lognormvariate(8.0, 1.0)),
        "media_de_votos": round(rng.uniform(7.2, 8.8), 3),
        "idioma_original": language if language != "*" else rng.choice(OTHER_LANGUAGES),
        "generos": rng.choice([["Drama"], ["Romance"], ["Drama", "Romance"], ["Drama", "História"]]),
        "produtoras": [f"Produtora {rng.randrange(200)}"],
        "paises_de_origem": [rng.choice(["US", "JP", "IT", "FR", "KR", "BR"])],
        "duracao_minutos": rng.randrange(80, 200),
        "orcamento": rng.randrange(10**5, 10**8),
        "receita": rng.randrange(10**5, 10**9),
        "status": "Released",
    }


def _day(rng: random.Random, catalogue: list[dict], index: int) -> Day:
    anomaly = INJECTED.get(index)
    wanted = round(DAILY_ROWS * rng.uniform(0.95, 1.05))
    if anomaly == "a third of the rows":
        wanted //= 3
    # The list churns slowly: a window over the catalogue that moves a few movies a day.
    start = index * 3 % (CATALOGUE - DAILY_ROWS * 2)
    picked = rng.sample(catalogue[start : start + DAILY_ROWS * 2], wanted)
    rows = []
    for movie in picked:
        row = dict(movie)
        row["popularidade"] = movie["popularidade"] * rng.uniform(0.9, 1.1)
        row["votos"] = movie["votos"] + index * rng.randrange(0, 5)
        for column, rate in NULL_RATES.items():
            if rng.random() < rate:
                row[column] = None
        rows.append(row)
    rejected: dict[str, int] = {}
    if anomaly == "titulo_original 40% null":
        for row in rng.sample(rows, int(len(rows) * 0.4)):
            row["titulo_original"] = None
    elif anomaly == "media_de_votos shifted by -2":
        for row in rows:
            row["media_de_votos"] = round(row["media_de_votos"] - 2, 3)
    elif anomaly == "8% duplicated tmdb_id":
        # Published rows stay one per movie: the contract sets the copies aside as duplicates.
        rejected[DUPLICATES_REASON] = round(len(rows) * 0.08)
    elif anomaly == "idioma_original distribution flipped (en <-> pt)":
        swap = {"en": "pt", "pt": "en"}
        for row in rows:
            row["idioma_original"] = swap.get(row["idioma_original"], row["idioma_original"])
    partition = (FIRST_DAY + dt.timedelta(days=index)).isoformat()
    return Day(partition, pa.Table.from_pylist(rows, schema=_SCHEMA), rejected, anomaly)


_ARROW_TYPES = {
    "bigint": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "string": pa.string(),
    "date": pa.date32(),
    "array<string>": pa.list_(pa.string()),
}
_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in COLUMNS.items()])


@dataclass
class Judged:
    day: Day
    flagged: list[str]  # the anomaly rules out of band
    read_seconds: float  # reading the history from the quality log's files
    judge_seconds: float  # judging the day's readings against it


def replay(all_days: list[Day], storage: Storage) -> list[Judged]:
    """Each day as its daily run judges it: profile the rows, read the history from the quality log
    the runs before wrote to `storage`, judge, write the day's log."""
    layout = "tmdb_details"
    schema = schema_result(TMDB, layout, list(COLUMNS.items()))
    window = max(r.window for r in anomaly_rules(TMDB, layout))
    judged = []
    for index, day in enumerate(all_days):
        rows, rejected = day.rows.num_rows, sum(day.rejected_by_reason.values())
        observed = Observed(
            rows={day.partition: rows},
            rejected={day.partition: rejected},
            rejected_by_reason={day.partition: day.rejected_by_reason},
            source_records={day.partition: rows + rejected},
            readings={day.partition: profile(TMDB, layout, day.rows, day.rejected_by_reason)},
        )
        at = dt.datetime.combine(dt.date.fromisoformat(day.partition), dt.time(6), tzinfo=dt.UTC)
        started = time.perf_counter()
        earlier = LogReader(storage, TMDB.table).covering(day.partition, window)
        read = time.perf_counter()
        results = judge_in_order(TMDB, layout, [day.partition], observed, schema, earlier, at)[day.partition]
        done = time.perf_counter()
        run_id = f"{index:08d}-replay"
        write(storage, entries(TMDB.table, run_id, at, {day.partition: (results, True)}), log_key(TMDB.table, run_id, at))
        flagged = [r.name for r in results if isinstance(r.rule, Anomaly) and r.violations]
        judged.append(Judged(day, flagged, read - started, done - read))
    return judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        judged_days = replay(days(args.days, args.seed), LocalStorage(folder))
    for judged in judged_days:
        day = judged.day
        print(day.partition, day.rows.num_rows, day.anomaly or "-", ", ".join(judged.flagged) or "-")


if __name__ == "__main__":
    main()
