"""The historical movies CSV: its two dialects, the declared types, and the trusted table."""

import csv
from dataclasses import dataclass
from enum import StrEnum

from pyspark.sql import DataFrame

from lake_assets.transforms.columns import CORRUPT, apply_types, normalise_columns, split_rejected


class Dialect(StrEnum):
    """`seed`: the original design's filmes.csv (`,`, quoted fields with commas, quotes and line
    breaks). `pipe`: the programme's movies.csv/series.csv extract (`|`, no quoting, `\\N`, CRLF)."""

    SEED = "seed"
    PIPE = "pipe"


# Declared types of the columns we know, by normalised name; any other column stays a string.
FILMES_TYPES = {
    "data_de_lancamento": "date",
    "popularidade": "double",
    "votos": "bigint",
    "media_de_votos": "double",
    "generos": "array<string>",
    # movies.csv / series.csv
    "ano_lancamento": "int",
    "ano_termino": "int",
    "tempo_minutos": "int",
    "genero": "array<string>",
    "nota_media": "double",
    "numero_votos": "bigint",
    "ano_nascimento": "int",
    "ano_falecimento": "int",
    "profissao": "array<string>",
    "titulos_mais_conhecidos": "array<string>",
}


def detect_dialect(header_line: str) -> Dialect:
    """The pipe extract's header has `|` and no comma; the seed CSV's has commas."""
    return Dialect.PIPE if "|" in header_line and "," not in header_line else Dialect.SEED


def csv_options(dialect: Dialect) -> dict[str, str]:
    if dialect is Dialect.PIPE:
        # No quoting at all: a `"` is data. Lines are independent, so the file stays splittable.
        return {"sep": "|", "quote": "\u0000", "escape": "\u0000"}
    # Quoted line breaks need multiLine (else Spark silently splits rows); it makes the file
    # unsplittable, one task, which is the price of correctness for this dialect.
    return {"sep": ",", "quote": '"', "escape": '"', "multiLine": "true"}


@dataclass(frozen=True)
class FilmesRead:
    dialect: Dialect
    good: DataFrame
    rejected: DataFrame


def header_columns(header_line: str, dialect: Dialect) -> list[str]:
    """The column names of a header line, as the dialect splits it."""
    line = header_line.lstrip("\ufeff").rstrip("\r\n")
    return line.split("|") if dialect is Dialect.PIPE else next(csv.reader([line]))


def filmes_from_strings(raw: DataFrame, dialect: Dialect) -> FilmesRead:
    """Name, type and split rows read as strings (with Spark's `_corrupt_record` if present)."""
    corrupt = CORRUPT if CORRUPT in raw.columns else None
    parsed = apply_types(normalise_columns(raw, keep=(CORRUPT,)), FILMES_TYPES, corrupt_column=corrupt)
    good, rejected = split_rejected(parsed)
    return FilmesRead(dialect, good, rejected)
