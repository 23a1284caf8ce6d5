"""A raw CSV seen without Spark: its encoding checked, its header read, its records counted.

These run in the first seconds of a run (so a wrong file fails before any Spark job starts), and the
record count is an independent reading of the file (pyarrow's CSV reader, not Spark's) that the
trusted table must reconcile with: rows in = rows published + rows rejected.
"""

import codecs
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal, get_args

import pyarrow as pa
import pyarrow.csv as pv

from lake_assets.lib.errors import LakeError
from lake_assets.lib.transforms.filmes import Dialect

Encoding = Literal["utf-8", "latin-1", "cp1252"]  # cp1252/latin-1: what Excel in Brazil saves
ENCODINGS: tuple[str, ...] = get_args(Encoding)
_CHUNK = 1 << 20


class CsvError(LakeError):
    """The CSV cannot be read as configured (encoding, empty file): one line naming the file."""


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
                raise CsvError(
                    f"{where} is not valid {encoding}: byte 0x{chunk[bad.start]:02x} at offset {at:,} (line {line:,}). "
                    f"If the file was saved as {' or '.join(others)}, set the `encoding` config of raw/filmes_csv and trusted/filmes."
                ) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvError(
                f"{where} is not valid {encoding}: it ends in the middle of a character (offset {offset:,})."
            ) from None


def header_line(head: bytes, encoding: str, where: str) -> str:
    """The first line of the file, decoded; an empty file fails with one line."""
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    if not text.strip():
        raise CsvError(f"{where} is empty ({len(head)} bytes, no header line): nothing to load.")
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


def split_at_records(source: Path, into: Path, parts: int) -> list[Path]:
    """Cut a quoted CSV (the seed or semicolon dialect) into up to `parts` files at record boundaries,
    each starting with the header, so Spark's single-task multiLine read becomes several tasks.

    A line break ends a record exactly when an even number of `"` precede it: with RFC 4180 quoting a
    quote inside a field is doubled, so only field delimiters change the parity. The cut points are the
    first such line breaks after equal byte offsets; the parts together are the file, byte for byte."""
    size = source.stat().st_size
    with source.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header_end = _record_end(data, 0, 0)
        header = data[:header_end]
        cuts, quotes, position = [header_end], 0, header_end
        for target in (size * k // parts for k in range(1, parts)):
            if target <= cuts[-1]:
                continue
            quotes += data[position:target].count(b'"')
            end = _record_end(data, target, quotes)
            quotes += data[target:end].count(b'"')
            position = end
            if end < size:
                cuts.append(end)
        cuts.append(size)
        paths = []
        for index, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
            path = into / f"part-{index:03d}.csv"
            with path.open("wb") as out:
                out.write(header)
                out.flush()
                _copy_range(file.fileno(), out.fileno(), start, end)
            paths.append(path)
    return paths


def _copy_range(source: int, target: int, start: int, end: int) -> None:
    """Bytes [start, end) of `source` appended to `target` in the kernel (copy_file_range: no pass
    through Python, a reflink where the file system can), falling back to a plain read and write."""
    while start < end:
        try:
            copied = os.copy_file_range(source, target, end - start, start)
        except OSError:
            copied = 0
        if copied == 0:  # not supported here (or across file systems on old kernels)
            os.lseek(target, 0, os.SEEK_END)
            while start < end:
                chunk = os.pread(source, min(_CHUNK, end - start), start)
                os.write(target, chunk)
                start += len(chunk)
            return
        start += copied


def _record_end(data: mmap.mmap, start: int, quotes_before: int) -> int:
    """The offset just after the first line break at or after `start` that ends a record."""
    position = start
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            return len(data)
        quotes_before += data[position:newline].count(b'"')
        if quotes_before % 2 == 0:
            return newline + 1
        position = newline + 1
