"""Column naming and typing rules shared by every trusted table."""

import re
import unicodedata

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lake_assets.lib.partitions import DtLayout, file_path_pattern

NULL_MARKERS = ("", "\\N")  # empty strings and the programme's literal \N both mean "no value"
DATE_FORMATS = ("yyyy-MM-dd", "dd/MM/yyyy")
REJECT_REASON = "_reject_reason"  # why a row is in `_rejected/`: a rule's name or a parse failure
RAW = "_raw"
CORRUPT = "_corrupt_record"  # Spark's column for a line its CSV/JSON reader could not parse


def normalise_column_name(name: str) -> str:
    """The one naming rule: split camelCase, strip accents, lower case, every run of
    non-alphanumerics becomes one `_` (trimmed at the ends).

    `Data de lançamento` -> `data_de_lancamento`, `Média de votos` -> `media_de_votos`,
    `tituloPincipal` -> `titulo_pincipal`.
    """
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def normalise_columns(df: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
    """Rename every column by the naming rule, except the technical ones named in `keep`."""
    names = [c if c in keep else normalise_column_name(c) for c in df.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"columns collide after normalising names: {duplicates} (from {df.columns})")
    return df.toDF(*names)


def nullify(column: str) -> Column:
    """Trimmed text, with the null markers turned into real nulls."""
    trimmed = F.trim(F.col(column))
    return F.when(trimmed.isin(*NULL_MARKERS), F.lit(None)).otherwise(trimmed)


def typed(column: str, spark_type: str, decimal_comma: bool = False) -> Column:
    """A string column converted to `spark_type`; a value that does not convert becomes null
    (and `apply_types` reports the row). Spark 4's ANSI mode would raise instead, hence try_*.
    With `decimal_comma`, `23,5` and `1.234,5` are read as 23.5 and 1234.5 (a value without a comma
    keeps its dot, so `7.5` stays 7.5)."""
    value = nullify(column)
    if decimal_comma and spark_type == "double":
        value = F.when(value.contains(","), F.translate(F.regexp_replace(value, r"\.", ""), ",", ".")).otherwise(value)
    if spark_type == "date":
        return F.coalesce(*[F.try_to_date(value, fmt) for fmt in DATE_FORMATS])
    if spark_type == "array<string>":
        items = F.transform(F.split(value, ","), lambda item: F.trim(item))
        return F.filter(items, lambda item: item != "")
    if spark_type == "string":
        return value
    return value.try_cast(spark_type)


def apply_types(
    df: DataFrame, types: dict[str, str], corrupt_column: str | None = None, decimal_comma: bool = False
) -> DataFrame:
    """Type every column (unknown ones stay strings) and say why a row is rejected.

    The result has the typed columns, `_raw` (the original strings, for the quarantine) and
    `_reject_reason`: null for a good row; otherwise the malformed-row message or the columns whose
    value could not be converted.
    """
    data_columns = [c for c in df.columns if c != corrupt_column]
    out = [typed(c, types.get(c, "string"), decimal_comma).alias(c) for c in data_columns]
    failures = [
        F.when(nullify(c).isNotNull() & typed(c, t, decimal_comma).isNull(), F.lit(c))
        for c, t in types.items()
        if c in data_columns and t not in ("string", "array<string>")
    ]
    failed = F.concat_ws(", ", *failures) if failures else F.lit("")
    reason = F.when(failed != "", F.concat(F.lit("unparseable value in: "), failed))
    if corrupt_column:
        reason = F.when(F.col(corrupt_column).isNotNull(), F.lit("malformed row: field count differs from the header")).otherwise(
            reason
        )
    raw = F.struct(*[F.col(c) for c in df.columns])
    return df.select(*out, raw.alias(RAW), reason.alias(REJECT_REASON))


def partition_key_column(file_path: Column, layout: DtLayout | str = DtLayout.HIVE) -> Column:
    """`partition_key_from_path` as a Spark column, for a data file's full path (`_metadata.file_path`):
    the key of the partition folder the file sits in, or null. One read of many days' files then knows
    each row's day, instead of one read per day."""
    pattern = file_path_pattern(layout)
    parts = [F.regexp_extract(file_path, pattern, group) for group in (1, 2, 3)]
    return F.when(file_path.rlike(pattern), F.concat_ws("-", *parts))
