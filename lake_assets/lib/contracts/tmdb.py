"""The contract of `trusted/tmdb`: one typed row per movie per collection date (`dt`).

Severities, for a daily collection from an API: a broken value in the data TMDB sends (a vote
average of 42, a negative vote count, an empty partition) means the API or the collector changed,
so the partition is not published and the previous version stays (`fail`): a person looks before
anything downstream uses it. A movie listed twice, or one with no id or no genres, is set aside
(`drop`) and counted. Odd but possible values are `warn`.
"""

from lake_assets.lib.contracts.filmes import FIRST_FILM
from lake_assets.lib.contracts.rules import (
    Anomaly,
    Between,
    ComparedToPrevious,
    Contract,
    DateBetween,
    Matches,
    MaxRejectedShare,
    Metric,
    MinRows,
    NotEmpty,
    NotNull,
    OneOf,
    ReconcilesWithSource,
    Unique,
)
from lake_assets.lib.contracts.rules import Severity as S
from lake_assets.lib.registry import TRUSTED_TMDB

COLUMNS = {
    "tmdb_id": "bigint",
    "imdb_id": "string",
    "titulo": "string",
    "titulo_original": "string",
    "data_de_lancamento": "date",
    "visao_geral": "string",
    "popularidade": "double",
    "votos": "bigint",
    "media_de_votos": "double",
    "idioma_original": "string",
    "generos": "array<string>",
    "produtoras": "array<string>",
    "paises_de_origem": "array<string>",
    "duracao_minutos": "int",
    "orcamento": "bigint",
    "receita": "bigint",
    "status": "string",
}
DESCRIPTIONS = {
    "tmdb_id": "TMDB's movie id.",
    "imdb_id": "The IMDb title id (tt…), when TMDB knows it.",
    "titulo": "The title in Brazilian Portuguese (pt-BR).",
    "titulo_original": "The title in the original language.",
    "data_de_lancamento": "The release date.",
    "visao_geral": "The synopsis in Brazilian Portuguese.",
    "popularidade": "TMDB's popularity score on the collection date.",
    "votos": "TMDB vote count on the collection date.",
    "media_de_votos": "TMDB vote average (0 to 10) on the collection date.",
    "idioma_original": "The original language, an ISO 639-1 code.",
    "generos": "Genre names in pt-BR (Drama or Romance among them).",
    "produtoras": "Production company names.",
    "paises_de_origem": "Production countries, ISO 3166-1 codes.",
    "duracao_minutos": "The runtime in minutes.",
    "orcamento": "The budget in US dollars (0 when unknown).",
    "receita": "The revenue in US dollars (0 when unknown).",
    "status": "The release status as TMDB names it (Released, Post Production, …).",
}
TMDB_STATUSES = ("Rumored", "Planned", "In Production", "Post Production", "Released", "Canceled")

# The least half-width of each numeric column's band, as a share of its median. Popularity, votes,
# budget and revenue are heavy-tailed: their daily mean moves by 10% with no change upstream.
MEAN_BANDS = {"popularidade": 0.3, "votos": 0.3, "media_de_votos": 0.1, "duracao_minutos": 0.1, "orcamento": 0.3, "receita": 0.3}
# History catches what no fixed threshold can: a day that is valid row by row but unlike the days
# before it. Warnings, not failures: an unusual day may be real (a TMDB catalogue change), and a
# person judges it from the report; the band is the last 14 published days' median ± 5 MADs.
ANOMALIES = [
    Anomaly(
        "anomaly_row_count",
        S.WARN,
        "A day's record count lies in the band of the last 14 published days (at least ±25% of their median).",
        metric=Metric.ROW_COUNT,
        relative=0.25,
    ),
    Anomaly(
        "anomaly_distinct_share_tmdb_id",
        S.WARN,
        "The share of a day's records with a distinct tmdb_id lies in its usual band (at least ±0.02).",
        metric=Metric.DISTINCT_SHARE,
        column="tmdb_id",
        floor=0.02,
    ),
    *[
        Anomaly(
            f"anomaly_null_share_{column}",
            S.WARN,
            f"The share of published rows with no {column} lies in its usual band (at least ±0.10).",
            metric=Metric.NULL_SHARE,
            column=column,
            floor=0.10,
        )
        for column in COLUMNS
    ],
    *[
        Anomaly(
            f"anomaly_mean_{column}",
            S.WARN,
            f"The mean {column} of a day lies in its usual band (at least ±{relative:.0%} of the median).",
            metric=Metric.MEAN,
            column=column,
            relative=relative,
        )
        for column, relative in MEAN_BANDS.items()
    ],
    Anomaly(
        "anomaly_distribution_idioma_original",
        S.WARN,
        "The day's shares of original languages stay close to the window's median shares (total variation at most 0.15 "
        "above its usual distance).",
        metric=Metric.DISTRIBUTION,
        column="idioma_original",
        floor=0.15,
    ),
]

TMDB = Contract(
    table=TRUSTED_TMDB.path,
    description="TMDB movie details, one row per movie per collection date.",
    layouts={"tmdb_details": COLUMNS},
    partition_column="dt",
    columns=DESCRIPTIONS,
    rules=[
        ReconcilesWithSource(
            "rows_reconcile_with_source",
            S.FAIL,
            "Every raw record (counted by pyarrow, not Spark) is a published row or a rejected one: nothing is lost or split.",
        ),
        MinRows("at_least_one_row", S.FAIL, "A collection day with no movie is a failed collection: not published."),
        MaxRejectedShare(
            "rejected_at_most_10_percent", S.FAIL, "More than 10% of a day's records rejected: not published.", share=0.10
        ),
        ComparedToPrevious(
            "rows_at_least_half_of_previous_day",
            S.WARN,
            "A day with under half the movies of the previous one is worth a look.",
            share=0.5,
        ),
        NotNull("tmdb_id_present", S.DROP, "Every record has its TMDB id.", column="tmdb_id"),
        Unique(
            "one_row_per_movie_per_day",
            S.DROP,
            "A movie listed twice in one collection keeps one row (most votes, then most popular); the others are set aside.",
            key=("tmdb_id",),
            keep_first_by=("-votos", "-popularidade"),
        ),
        NotEmpty("generos_not_empty", S.DROP, "A Drama/Romance table holds movies with genres.", column="generos"),
        NotNull("titulo_present", S.WARN, "Every movie has a title.", column="titulo"),
        Between(
            "media_de_votos_0_to_10",
            S.FAIL,
            "TMDB's vote average lies between 0 and 10.",
            column="media_de_votos",
            low=0,
            high=10,
        ),
        Between("votos_not_negative", S.FAIL, "A vote count is never negative.", column="votos", low=0),
        Between("popularidade_not_negative", S.WARN, "Popularity is never negative.", column="popularidade", low=0),
        Between(
            "duracao_minutos_1_to_1000",
            S.WARN,
            "A runtime lies between 1 and 1000 minutes.",
            column="duracao_minutos",
            low=1,
            high=1000,
        ),
        Matches(
            "imdb_id_format", S.WARN, "An IMDb id is tt followed by 7 or more digits.", column="imdb_id", pattern=r"tt\d{7,}"
        ),
        Matches(
            "idioma_original_iso_639_1",
            S.WARN,
            "The original language is an ISO 639-1 code (two lower-case letters).",
            column="idioma_original",
            pattern="[a-z]{2}",
        ),
        DateBetween(
            "data_de_lancamento_1870_to_collection",
            S.WARN,
            "A release date lies between 1870 and the collection date.",
            column="data_de_lancamento",
            earliest=FIRST_FILM,
            not_after_collection=True,
        ),
        OneOf("status_known", S.WARN, "The status is one TMDB documents.", column="status", values=TMDB_STATUSES),
        *ANOMALIES,
    ],
)
