"""A raw CSV seen without Spark: its encoding checked, its header read, its records counted.

These run in the first seconds of a run (so a wrong file fails before any Spark job starts), and the
record count is an independent reading of the file (pyarrow's CSV reader, not Spark's) that the
trusted table must reconcile with: rows in = rows published + rows rejected.
"""

import codecs
from collections.abc import Callable
from typing import BinaryIO, Literal, get_args

import pyarrow as pa
import pyarrow.csv as pv
from dagster import Failure

from lake_assets.transforms.filmes import Dialect

Encoding = Literal["utf-8", "latin-1", "cp1252"]  # cp1252/latin-1: what Excel in Brazil saves
ENCODINGS: tuple[str, ...] = get_args(Encoding)
_CHUNK = 1 << 20


def check_encoding(open_source: Callable[[], BinaryIO], encoding: str, where: str) -> None:
    """Decode the whole file; the first byte that is not valid in `encoding` fails with one line
    naming the byte, its offset and line, and the config to set."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    with open_source() as source:
        while chunk := source.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as bad:
                at = offset + bad.start
                line = lines + chunk[: bad.start].count(b"\n")
                others = [e for e in ENCODINGS if e != encoding]
                raise Failure(
                    f"{where} is not valid {encoding}: byte 0x{chunk[bad.start]:02x} at offset {at:,} (line {line:,}). "
                    f"If the file was saved as {' or '.join(others)}, set the `encoding` config of raw/filmes_csv and trusted/filmes."
                ) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Failure(f"{where} is not valid {encoding}: it ends in the middle of a character (offset {offset:,}).") from None


def header_line(head: bytes, encoding: str, where: str) -> str:
    """The first line of the file, decoded; an empty file fails with one line."""
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    if not text.strip():
        raise Failure(f"{where} is empty ({len(head)} bytes, no header line): nothing to load.")
    return text.splitlines()[0]


def count_records(open_source: Callable[[], BinaryIO], dialect: Dialect, encoding: str, first_column: str) -> int:
    """Data records as pyarrow's CSV reader reads the dialect (quoted line breaks do not start a
    record); records with the wrong number of fields are counted too, as Spark keeps them (rejected)."""
    malformed = 0

    def count_malformed(row) -> str:
        nonlocal malformed
        malformed += 1
        return "skip"

    if dialect is Dialect.PIPE:
        parse = pv.ParseOptions(delimiter="|", quote_char=False, invalid_row_handler=count_malformed)
    else:
        parse = pv.ParseOptions(delimiter=dialect.separator, newlines_in_values=True, invalid_row_handler=count_malformed)
    with open_source() as source:
        reader = pv.open_csv(
            source,
            read_options=pv.ReadOptions(encoding=encoding, block_size=8 << 20),
            parse_options=parse,
            # Convert one column only, as text: counting needs no types.
            convert_options=pv.ConvertOptions(include_columns=[first_column], column_types={first_column: pa.string()}),
        )
        rows = sum(batch.num_rows for batch in reader)
    return rows + malformed
