"""Pure transforms on small DataFrames (real Spark, no Dagster, no storage)."""

import datetime as dt

import pyarrow as pa
import pytest
from pyspark.sql import types as T

from lake_assets.lib.contracts import TMDB
from lake_assets.lib.contracts.filmes import SEED
from lake_assets.lib.summaries import movies_by_company, movies_by_language
from lake_assets.lib.transforms.columns import normalise_column_name
from lake_assets.lib.transforms.filmes import Dialect, detect_dialect, filmes_from_strings, header_columns
from lake_assets.lib.transforms.tmdb import DETAILS_SCHEMA, standardise_details


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
    assert detect_dialect("Titulo;Data de lançamento;Média de votos") is Dialect.SEMICOLON
    assert detect_dialect('"Titulo; o filme",Votos,Média') is Dialect.SEED  # more commas than semicolons
    with pytest.raises(ValueError, match="no column separator"):
        detect_dialect("Titulo")
    assert header_columns('Titulo;"Média; de votos";Votos\r', Dialect.SEMICOLON) == ["Titulo", "Média; de votos", "Votos"]


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
    result = filmes_from_strings(_strings(spark, header, rows), Dialect.SEED, SEED).collect()
    good = {r["titulo"]: r for r in result if r["_reject_reason"] is None}
    assert set(good) == {"Central do Brasil", "Sem data"}
    assert good["Central do Brasil"]["data_de_lancamento"] == dt.date(1998, 4, 3)
    assert good["Central do Brasil"]["votos"] == 1200
    assert good["Central do Brasil"]["media_de_votos"] == pytest.approx(8.1)
    assert good["Central do Brasil"]["generos"] == ["Drama", "Romance"]
    # "", "\N" and blank all become real nulls, not strings and not rejections
    assert good["Sem data"]["data_de_lancamento"] is None and good["Sem data"]["votos"] is None
    assert good["Sem data"]["media_de_votos"] is None
    rejected = {r["_raw"]["titulo"]: r["_reject_reason"] for r in result if r["_reject_reason"] is not None}
    assert rejected == {
        "Votos ruins": "unparseable value in: votos",
        "Linha quebrada": "malformed row: field count differs from the header",
    }
    assert result[2]["_raw"]["votos"] == "muitos"  # the quarantine keeps the original strings


def test_decimal_comma_of_a_semicolon_export(spark):
    header = ["Titulo", "Média de votos", "Popularidade", "Votos"]
    rows = [("A", "7,5", "1.234,5", "120"), ("B", "8.25", "12", "7"), ("C", "dez", "1", "1")]
    result = {r["titulo"]: r for r in filmes_from_strings(_strings(spark, header, rows), Dialect.SEMICOLON, SEED).collect()}
    assert result["A"]["media_de_votos"] == pytest.approx(7.5) and result["A"]["popularidade"] == pytest.approx(1234.5)
    assert result["B"]["media_de_votos"] == pytest.approx(8.25)  # a dot without a comma stays a decimal point
    assert result["C"]["_reject_reason"] == "unparseable value in: media_de_votos"


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


def test_tmdb_details_typed_then_the_contract_sets_duplicates_and_missing_ids_aside(spark):
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
        _detail(19404, "2024-03-01", original_language="hi", runtime=0),
        _detail(None, "2024-03-01"),
        {**_detail(None, "2024-03-01"), "_corrupt_record": '{"id": 7, "title": "cortado'},
    ]
    typed = standardise_details(spark.createDataFrame(rows, schema))
    flagged = TMDB.apply(typed, "tmdb_details").collect()
    kept = {(r["tmdb_id"], r["dt"]): r for r in flagged if r["_reject_reason"] is None}
    assert set(kept) == {(238, "2024-03-01"), (238, "2024-03-02"), (19404, "2024-03-01")}
    godfather = kept[(238, "2024-03-01")]
    assert godfather["votos"] == 10 and godfather["imdb_id"] == "tt0068646"  # the copy with most votes stays
    assert godfather["data_de_lancamento"] == dt.date(1972, 3, 14)
    assert godfather["produtoras"] == ["Paramount Pictures", "Alfran Productions"]
    assert godfather["paises_de_origem"] == ["United States of America"]
    assert godfather["generos"] == ["Drama"]
    assert godfather["orcamento"] is None  # TMDB's 0 means unknown
    ddlj = kept[(19404, "2024-03-01")]
    assert ddlj["visao_geral"] is None and ddlj["data_de_lancamento"] is None and ddlj["imdb_id"] is None
    assert ddlj["duracao_minutos"] is None  # runtime 0: unknown
    reasons = sorted(r["_reject_reason"] for r in flagged if r["_reject_reason"] is not None)
    assert reasons == ["malformed JSON line", "one_row_per_movie_per_day", "tmdb_id_present"]
    assert any(r["_raw"]["record"] == '{"id": 7, "title": "cortado' for r in flagged)


def test_the_summaries_count_distinct_movies_and_say_so():
    day = pa.table(
        {
            "tmdb_id": [1, 2, 3],
            "titulo": ["Um", "Dois", "Três"],
            "idioma_original": ["pt", "pt", "en"],
            "produtoras": [["Globo Filmes", "Conspiração"], ["Globo Filmes"], []],
        }
    )
    companies = movies_by_company(day, "collected 2024-03-01")
    assert companies.splitlines()[0] == "Top 2 of 2 production companies by distinct movies, collected 2024-03-01."
    assert "| Globo Filmes | 2 | Dois, Um |" in companies and "| Conspiração | 1 | Um |" in companies
    languages = movies_by_language(day, "collected 2024-03-01")
    assert "| pt | 2 |" in languages and "| en | 1 |" in languages
