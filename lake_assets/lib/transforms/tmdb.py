"""TMDB movie-details JSON Lines -> the trusted `tmdb` table, and its summaries."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.lib.transforms.columns import CORRUPT, RAW, REJECT_REASON

_NAMED = T.ArrayType(T.StructType([T.StructField("id", T.LongType()), T.StructField("name", T.StringType())]))
_COUNTRIES = T.ArrayType(T.StructType([T.StructField("iso_3166_1", T.StringType()), T.StructField("name", T.StringType())]))

# The fields of GET /movie/{id} that the trusted table keeps. An explicit schema means no
# inference pass over the files, and a missing field is a null rather than a failed job.
DETAILS_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("imdb_id", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("original_title", T.StringType()),
        T.StructField("release_date", T.StringType()),
        T.StructField("overview", T.StringType()),
        T.StructField("popularity", T.DoubleType()),
        T.StructField("vote_count", T.LongType()),
        T.StructField("vote_average", T.DoubleType()),
        T.StructField("original_language", T.StringType()),
        T.StructField("genres", _NAMED),
        T.StructField("production_companies", _NAMED),
        T.StructField("production_countries", _COUNTRIES),
        T.StructField("runtime", T.IntegerType()),
        T.StructField("budget", T.LongType()),
        T.StructField("revenue", T.LongType()),
        T.StructField("status", T.StringType()),
        T.StructField(CORRUPT, T.StringType()),
    ]
)


def _text(column: str):
    value = F.trim(F.col(column))
    return F.when(value == "", None).otherwise(value)


def _names(column: str):
    return F.transform(F.coalesce(F.col(column), F.array()), lambda item: item["name"])


def standardise_details(details: DataFrame) -> DataFrame:
    """TMDB's detail records typed into the trusted columns, with `dt`, the original record in `_raw`
    (for the quarantine) and `_reject_reason` for a line that is not a JSON record. Keys, duplicates
    and value rules are the contract's business (`lake_assets.lib.contracts.tmdb`)."""
    original = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[c for c in details.columns if c not in (CORRUPT, "dt")])))
    return details.select(
        F.col("id").alias("tmdb_id"),
        _text("imdb_id").alias("imdb_id"),
        _text("title").alias("titulo"),
        _text("original_title").alias("titulo_original"),
        F.try_to_date(_text("release_date"), "yyyy-MM-dd").alias("data_de_lancamento"),
        _text("overview").alias("visao_geral"),
        F.col("popularity").alias("popularidade"),
        F.col("vote_count").alias("votos"),
        F.col("vote_average").alias("media_de_votos"),
        _text("original_language").alias("idioma_original"),
        _names("genres").alias("generos"),
        _names("production_companies").alias("produtoras"),
        _names("production_countries").alias("paises_de_origem"),
        # TMDB writes 0 for an unknown runtime, budget or revenue.
        F.when(F.col("runtime") > 0, F.col("runtime")).alias("duracao_minutos"),
        F.when(F.col("budget") > 0, F.col("budget")).alias("orcamento"),
        F.when(F.col("revenue") > 0, F.col("revenue")).alias("receita"),
        _text("status").alias("status"),
        "dt",
        F.struct(original.alias("record")).alias(RAW),
        F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed JSON line")).alias(REJECT_REASON),
    )


def movies_by_company(trusted: DataFrame) -> DataFrame:
    """The seed's first summary: movies grouped by production company."""
    return (
        trusted.select(F.explode("produtoras").alias("produtora"), "titulo")
        .groupBy("produtora")
        .agg(F.count("*").alias("filmes"), F.array_sort(F.collect_set("titulo")).alias("titulos"))
        .orderBy(F.desc("filmes"), "produtora")
    )


def movies_by_language(trusted: DataFrame) -> DataFrame:
    """The seed's second summary: movie count per original language."""
    return trusted.groupBy("idioma_original").agg(F.count("*").alias("filmes")).orderBy(F.desc("filmes"), "idioma_original")
