"""The historical movies CSV: its dialects, and its rows typed by the contract's declared types."""

import csv
from enum import StrEnum

from pyspark.sql import DataFrame

from lake_assets.lib.transforms.columns import CORRUPT, apply_types, normalise_columns


class Dialect(StrEnum):
    r"""`seed`: the original design's filmes.csv (`,`, quoted fields with commas, quotes and line
    breaks). `pipe`: the programme's movies.csv/series.csv extract (`|`, no quoting, `\N`, CRLF).
    `semicolon`: a spreadsheet export as Brazilian Excel writes it (`;`, quoted, decimal comma)."""

    SEED = "seed"
    PIPE = "pipe"
    SEMICOLON = "semicolon"

    @property
    def separator(self) -> str:
        return {Dialect.SEED: ",", Dialect.PIPE: "|", Dialect.SEMICOLON: ";"}[self]

    @property
    def decimal_comma(self) -> bool:
        return self is Dialect.SEMICOLON


def detect_dialect(header_line: str) -> Dialect:
    """The separator the header uses most: `|`, `;` or `,`. A header with none of them is one column,
    which no accepted layout is: the caller reports it."""
    counts = {dialect: header_line.count(dialect.separator) for dialect in Dialect}
    best = max(counts, key=counts.__getitem__)
    if counts[best] == 0:
        raise ValueError(f"no column separator (',', ';' or '|') in the header {header_line[:80]!r}")
    return best


def header_columns(header_line: str, dialect: Dialect) -> list[str]:
    """The column names of a header line, as the dialect splits it."""
    line = header_line.lstrip("\ufeff").rstrip("\r\n")
    if dialect is Dialect.PIPE:
        return line.split("|")
    return next(csv.reader([line], delimiter=dialect.separator))


# Python's codec names (the config's) as the JVM names them.
JAVA_CHARSETS = {"utf-8": "UTF-8", "latin-1": "ISO-8859-1", "cp1252": "windows-1252"}


def csv_options(dialect: Dialect, encoding: str) -> dict[str, str]:
    """Spark's CSV reader options: every field read as text, a row it cannot split kept in CORRUPT."""
    common = {"header": "true", "encoding": JAVA_CHARSETS[encoding], "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    if dialect is Dialect.PIPE:
        # No quoting at all: a `"` is data. Lines are independent, so the file stays splittable.
        return {**common, "sep": "|", "quote": "\u0000", "escape": "\u0000"}
    # Quoted line breaks need multiLine (else Spark silently splits rows); it makes the file
    # unsplittable, one task, which is the price of correctness for these dialects.
    return {**common, "sep": dialect.separator, "quote": '"', "escape": '"', "multiLine": "true"}


def filmes_from_strings(raw: DataFrame, dialect: Dialect, types: dict[str, str]) -> DataFrame:
    """Name and type rows read as strings (with Spark's CORRUPT column if present): the typed columns,
    the original strings in `_raw`, and `_reject_reason` for a row that could not be parsed."""
    corrupt = CORRUPT if CORRUPT in raw.columns else None
    return apply_types(
        normalise_columns(raw, keep=(CORRUPT,)), types, corrupt_column=corrupt, decimal_comma=dialect.decimal_comma
    )
