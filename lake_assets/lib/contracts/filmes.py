"""The contract of `trusted/filmes`: the historical movies CSV, typed.

The source comes in three accepted layouts (by normalised header): the original design's
`filmes.csv`, and the programme's `movies.csv` and `series.csv` extracts. A header that matches none
of them fails the schema contract before any data is read.

Severities, for a batch file loaded once: a row that breaks a value rule is quarantined (`drop`), so
one bad line never holds back a million good ones, while a file with nothing good in it, or with
more than 5% of its rows rejected, is not published at all (`fail`): the previous table stays.
Oddities that a person should see but that do not make a row wrong are `warn`.
"""

import datetime as dt

from lake_assets.lib.contracts.rules import (
    Between,
    Contract,
    DateBetween,
    Matches,
    MaxRejectedShare,
    MinRows,
    NotEmpty,
    NotNull,
    ReconcilesWithSource,
)
from lake_assets.lib.contracts.rules import Severity as S
from lake_assets.lib.registry import TRUSTED_FILMES

SEED = {
    "titulo": "string",
    "data_de_lancamento": "date",
    "visao_geral": "string",
    "popularidade": "double",
    "votos": "bigint",
    "media_de_votos": "double",
    "pais_de_origem": "string",
    "idioma_original": "string",
    "generos": "array<string>",
}
PROGRAMME_MOVIES = {
    "id": "string",
    "titulo_pincipal": "string",
    "titulo_original": "string",
    "ano_lancamento": "int",
    "tempo_minutos": "int",
    "genero": "array<string>",
    "nota_media": "double",
    "numero_votos": "bigint",
    "genero_artista": "string",
    "personagem": "string",
    "nome_artista": "string",
    "ano_nascimento": "int",
    "ano_falecimento": "int",
    "profissao": "array<string>",
    "titulos_mais_conhecidos": "array<string>",
}
PROGRAMME_SERIES = {**PROGRAMME_MOVIES, "ano_termino": "int"}

DESCRIPTIONS = {
    "titulo": "The movie's title.",
    "data_de_lancamento": "The release date.",
    "visao_geral": "The synopsis.",
    "popularidade": "TMDB popularity score when the file was made.",
    "votos": "Vote count.",
    "media_de_votos": "Vote average, 0 to 10.",
    "pais_de_origem": "Country of origin.",
    "idioma_original": "The original language, an ISO 639-1 code.",
    "generos": "Genre names.",
    "id": "The IMDb title id (tt…).",
    "titulo_pincipal": "The main title (the source's own column name, misspelling kept).",
    "titulo_original": "The title in the original language.",
    "ano_lancamento": "The release year.",
    "tempo_minutos": "The runtime in minutes.",
    "genero": "Genre names.",
    "nota_media": "Average rating, 0 to 10.",
    "numero_votos": "Vote count.",
    "genero_artista": "The artist's gender, as the source codes it.",
    "personagem": "The character the artist played.",
    "nome_artista": "The artist's name.",
    "ano_nascimento": "The artist's birth year.",
    "ano_falecimento": "The artist's death year (empty while alive).",
    "profissao": "The artist's professions.",
    "titulos_mais_conhecidos": "IMDb ids of the artist's best-known titles.",
    "ano_termino": "The year the series ended.",
}

FIRST_FILM = dt.date(1870, 1, 1)  # nothing was filmed before; an earlier date is a typo

FILMES = Contract(
    table=TRUSTED_FILMES.path,
    description="The historical movies CSV, typed; one of three accepted source layouts.",
    layouts={"seed": SEED, "programme_movies": PROGRAMME_MOVIES, "programme_series": PROGRAMME_SERIES},
    columns=DESCRIPTIONS,
    rules=[
        ReconcilesWithSource(
            "rows_reconcile_with_source",
            S.FAIL,
            "Every raw record (counted by pyarrow, not Spark) is a published row or a rejected one: nothing is lost or split.",
        ),
        MinRows("at_least_one_row", S.FAIL, "A file with no data rows (header only) is never published over the current table."),
        MaxRejectedShare(
            "rejected_at_most_5_percent",
            S.FAIL,
            "More than 5% of rows rejected means a wrong file or dialect: not published.",
            share=0.05,
        ),
        # the original design's filmes.csv
        NotNull("titulo_present", S.DROP, "Every movie has a title.", column="titulo"),
        Between(
            "media_de_votos_0_to_10", S.DROP, "A vote average lies between 0 and 10.", column="media_de_votos", low=0, high=10
        ),
        Between("votos_not_negative", S.DROP, "A vote count is never negative.", column="votos", low=0),
        Between("popularidade_not_negative", S.WARN, "TMDB popularity is never negative.", column="popularidade", low=0),
        DateBetween(
            "data_de_lancamento_1870_to_today",
            S.DROP,
            "A release date lies between 1870 and the day the table is built.",
            column="data_de_lancamento",
            earliest=FIRST_FILM,
            not_after_collection=True,
        ),
        Matches(
            "idioma_original_iso_639_1",
            S.WARN,
            "The original language is an ISO 639-1 code (two lower-case letters).",
            column="idioma_original",
            pattern="[a-z]{2}",
        ),
        NotEmpty("generos_not_empty", S.WARN, "A movie has at least one genre.", column="generos"),
        # the programme's movies.csv / series.csv
        Matches(
            "id_is_an_imdb_id", S.DROP, "The id is an IMDb title id (tt followed by 7+ digits).", column="id", pattern=r"tt\d{7,}"
        ),
        Between("nota_media_0_to_10", S.DROP, "An average rating lies between 0 and 10.", column="nota_media", low=0, high=10),
        Between("numero_votos_not_negative", S.DROP, "A vote count is never negative.", column="numero_votos", low=0),
        Between(
            "ano_lancamento_1870_to_2100",
            S.WARN,
            "A release year lies between 1870 and 2100.",
            column="ano_lancamento",
            low=1870,
            high=2100,
        ),
    ],
)
