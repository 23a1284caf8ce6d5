"""TMDB movie-details JSON Lines -> the trusted `tmdb` table, and its summaries."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lake_assets.lib.lineage import TMDB_FIELDS
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
    and value rules are the contract's business (`lake_assets.lib.contracts.tmdb`). Each column reads
    the field `TMDB_FIELDS` names for it: one home for the mapping and the column lineage."""
    original = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[c for c in details.columns if c not in (CORRUPT, "dt")])))

    def kept(column: str):
        return F.col(TMDB_FIELDS[column]).alias(column)

    def text(column: str):
        return _text(TMDB_FIELDS[column]).alias(column)

    def names(column: str):
        return _names(TMDB_FIELDS[column]).alias(column)

    def known(column: str):
        # TMDB writes 0 for an unknown runtime, budget or revenue.
        field = F.col(TMDB_FIELDS[column])
        return F.when(field > 0, field).alias(column)

    return details.select(
        kept("tmdb_id"),
        text("imdb_id"),
        text("titulo"),
        text("titulo_original"),
        F.try_to_date(_text(TMDB_FIELDS["data_de_lancamento"]), "yyyy-MM-dd").alias("data_de_lancamento"),
        text("visao_geral"),
        kept("popularidade"),
        kept("votos"),
        kept("media_de_votos"),
        text("idioma_original"),
        names("generos"),
        names("produtoras"),
        names("paises_de_origem"),
        known("duracao_minutos"),
        known("orcamento"),
        known("receita"),
        text("status"),
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
