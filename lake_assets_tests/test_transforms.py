"""Pure transforms on small DataFrames (real Spark, no Dagster, no storage)."""

import datetime as dt

import pytest
from pyspark.sql import types as T

from lake_assets.transforms.columns import normalise_column_name
from lake_assets.transforms.filmes import Dialect, detect_dialect, filmes_from_strings
from lake_assets.transforms.tmdb import DETAILS_SCHEMA, movies_by_company, movies_by_language, standardise_details


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Data de lançamento", "data_de_lancamento"),
        ("Média de votos", "media_de_votos"),
        ("País de Origem", "pais_de_origem"),
        ("Gêneros", "generos"),
        ("Visão geral", "visao_geral"),
        ("tituloPincipal", "titulo_pincipal"),
        ("numeroVotos", "numero_votos"),
        ("  Título -- (Original)  ", "titulo_original"),
        ("id", "id"),
    ],
)
def test_column_name_rule(raw, expected):
    assert normalise_column_name(raw) == expected


def test_dialect_detection():
    assert detect_dialect("id|tituloPincipal|tituloOriginal") is Dialect.PIPE
    assert detect_dialect("Titulo,Data de lançamento,Visão geral") is Dialect.SEED


def _strings(spark, header, rows):
    schema = T.StructType([T.StructField(c, T.StringType()) for c in header])
    return spark.createDataFrame(rows, schema)


def test_types_nulls_and_rejections(spark):
    header = ["Titulo", "Data de lançamento", "Votos", "Média de votos", "Gêneros", "_corrupt_record"]
    rows = [
        ("Central do Brasil", "1998-04-03", "1200", "8.1", "Drama, Romance", None),
        ("Sem data", "", "\\N", " ", "Drama", None),
        ("Votos ruins", "2001-01-01", "muitos", "7.0", "Drama", None),
        ("Linha quebrada", None, None, None, None, "Linha quebrada,,1"),
    ]
    result = filmes_from_strings(_strings(spark, header, rows), Dialect.SEED)
    good = {r["titulo"]: r for r in result.good.collect()}
    assert set(good) == {"Central do Brasil", "Sem data"}
    assert good["Central do Brasil"]["data_de_lancamento"] == dt.date(1998, 4, 3)
    assert good["Central do Brasil"]["votos"] == 1200
    assert good["Central do Brasil"]["media_de_votos"] == pytest.approx(8.1)
    assert good["Central do Brasil"]["generos"] == ["Drama", "Romance"]
    # "", "\N" and blank all become real nulls, not strings and not rejections
    assert good["Sem data"]["data_de_lancamento"] is None and good["Sem data"]["votos"] is None
    assert good["Sem data"]["media_de_votos"] is None
    rejected = {r["Titulo"] if "Titulo" in r else r["titulo"]: r["_reject_reason"] for r in result.rejected.collect()}
    assert rejected == {
        "Votos ruins": "unparseable value in: votos",
        "Linha quebrada": "malformed row: field count differs from the header",
    }
    assert dict(result.good.dtypes) == {
        "titulo": "string",
        "data_de_lancamento": "date",
        "votos": "bigint",
        "media_de_votos": "double",
        "generos": "array<string>",
    }


def _detail(id, dt_, **fields):
    base = {
        "id": id,
        "imdb_id": None,
        "title": f"Filme {id}",
        "original_title": f"Movie {id}",
        "release_date": "",
        "overview": "",
        "popularity": 1.0,
        "vote_count": 10,
        "vote_average": 7.0,
        "original_language": "pt",
        "genres": [{"id": 18, "name": "Drama"}],
        "production_companies": [],
        "production_countries": [],
        "runtime": 100,
        "budget": 0,
        "revenue": 0,
        "status": "Released",
        "_corrupt_record": None,
    }
    base.update(fields)
    return {**base, "dt": dt_}


def test_tmdb_details_typed_and_deduplicated(spark):
    schema = T.StructType(DETAILS_SCHEMA.fields + [T.StructField("dt", T.StringType())])
    rows = [
        _detail(
            238,
            "2024-03-01",
            imdb_id="tt0068646",
            release_date="1972-03-14",
            overview="Uma família mafiosa.",
            production_companies=[{"id": 4, "name": "Paramount Pictures"}, {"id": 10211, "name": "Alfran Productions"}],
            production_countries=[{"iso_3166_1": "US", "name": "United States of America"}],
            original_language="en",
        ),
        _detail(238, "2024-03-01", vote_count=5),  # same movie twice in one collection
        _detail(238, "2024-03-02", vote_count=11),  # same movie, another day: kept
        _detail(19404, "2024-03-01", original_language="hi"),
        _detail(None, "2024-03-01"),
    ]
    trusted, rejected = standardise_details(spark.createDataFrame(rows, schema))
    out = {(r["tmdb_id"], r["dt"]): r for r in trusted.collect()}
    assert set(out) == {(238, "2024-03-01"), (238, "2024-03-02"), (19404, "2024-03-01")}
    godfather = out[(238, "2024-03-01")]
    assert godfather["votos"] == 10 and godfather["imdb_id"] == "tt0068646"
    assert godfather["data_de_lancamento"] == dt.date(1972, 3, 14)
    assert godfather["produtoras"] == ["Paramount Pictures", "Alfran Productions"]
    assert godfather["paises_de_origem"] == ["United States of America"]
    assert godfather["generos"] == ["Drama"]
    assert godfather["orcamento"] is None  # TMDB's 0 means unknown
    ddlj = out[(19404, "2024-03-01")]
    assert ddlj["visao_geral"] is None and ddlj["data_de_lancamento"] is None and ddlj["imdb_id"] is None
    assert [r["_reject_reason"] for r in rejected.collect()] == ["record has no id"]

    by_language = {r["idioma_original"]: r["filmes"] for r in movies_by_language(trusted).collect()}
    assert by_language == {"en": 1, "pt": 1, "hi": 1}
    companies = {r["produtora"]: r["filmes"] for r in movies_by_company(trusted).collect()}
    assert companies == {"Paramount Pictures": 1, "Alfran Productions": 1}
