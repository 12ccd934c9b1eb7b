"""Open a raw bar file of any supported kind and read the columns the loader asks for as an Arrow table.

CSV text (plain, ``.gz``, ``.zst`` or the one CSV inside a ``.zip``) is parsed by pyarrow's streaming CSV
reader: only the needed columns are converted, prices straight to float64, block by block, so a 3 M-bar
file stays well under three times its size in memory. The header line is read first (to detect the separator and
let the loader pick its columns); a value Arrow cannot convert makes the read start over with those
columns as text, so that the loader can name the exact row and value. Parquet files are read whole
(their index becomes the first column).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from ktrdr_assets.core.data.raw.errors import BarsError, one_line
from ktrdr_assets.core.data.raw.sources import SourceOverride

#: Arrow's decompression codec per compressed CSV suffix (both ship with pyarrow).
_CODECS = {".csv": None, ".csv.gz": "gzip", ".csv.zst": "zstd"}
_ZIPS = (".zip", ".csv.zip")
_SEPARATORS = (",", ";", "\t", "|")
_HEADER_LIMIT = 1 << 20
_CONVERSION_ERROR = "CSV conversion error"


class _Unconverted(Exception):
    """A value Arrow could not convert to the column's type: read the columns again as text."""


@dataclass
class RawFile:
    """A raw file opened for reading: its column names (in file order) and how to read some of them."""

    path: Path
    kind: str
    source: SourceOverride
    names: list[str]
    separator: str | None = None
    _parquet: pa.Table | None = field(default=None, repr=False)

    def read(self, columns: list[str], numeric: set[str], text: set[str]) -> pa.Table:
        """The named columns (in the order given): ``numeric`` ones as float64 where Arrow can, ``text``
        ones as strings; a CSV value that does not convert re-reads every column as text."""
        if self._parquet is not None:
            return self._parquet.select(columns)
        types = {name: pa.float64() for name in numeric} | {name: pa.string() for name in text}
        try:
            return self._read_csv(columns, types)
        except _Unconverted:
            return self._read_csv(columns, {name: pa.string() for name in columns}, text_only=True)

    def _read_csv(self, columns: list[str], types: dict[str, pa.DataType], text_only: bool = False) -> pa.Table:
        bad_rows: list = []

        def on_invalid_row(row) -> str:
            bad_rows.append(row)
            return "error"

        parse = pcsv.ParseOptions(delimiter=self.separator, invalid_row_handler=on_invalid_row)
        convert = pcsv.ConvertOptions(
            include_columns=columns, column_types=types, decimal_point=self.source.decimal, strings_can_be_null=False
        )
        read = pcsv.ReadOptions(encoding=_arrow_encoding(self.source.encoding))
        try:  # the streaming reader: about half the peak memory of read_csv, as fast
            with _open_text(self.path, self.kind) as stream:
                table = pcsv.open_csv(
                    stream, read_options=read, parse_options=parse, convert_options=convert
                ).read_all()
            pa.default_memory_pool().release_unused()  # the reader's text blocks, back to the OS
            return table
        except BarsError:
            raise
        except pa.ArrowInvalid as exc:
            if bad_rows:
                raise BarsError(self._field_count_message(bad_rows[0])) from None
            if not text_only and _CONVERSION_ERROR in str(exc) and "UTF8" not in str(exc):
                raise _Unconverted from None
            raise self._error(exc) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, pa.ArrowException) as exc:
            raise self._error(exc) from None

    def _field_count_message(self, row) -> str:
        hint = "an unquoted thousands separator or decimal comma?"
        return (
            f"{self.path}: a data row has {row.actual_columns} fields where the header has {row.expected_columns} "
            f"({row.text!r}); {hint} quote such values, or set separator / thousands / decimal for this file "
            "in data/sources.yaml"
        )

    def _error(self, exc: BaseException) -> BarsError:
        message = one_line(exc)
        if "Empty CSV file" in message:
            return BarsError(f"{self.path}: empty file")
        if "UTF8" in message or isinstance(exc, UnicodeError):
            return BarsError(
                f"{self.path}: not valid {self.source.encoding} text ({message}); set encoding "
                "(e.g. cp1252 or latin-1) for this file in data/sources.yaml"
            )
        return BarsError(f"{self.path}: cannot be read as {self.kind[1:]}: {message}")


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric or timestamp Arrow column as one writeable numpy array (nulls as NaN / NaT), copied once:
    each chunk is viewed where it can be and the views concatenated (``ChunkedArray.to_numpy`` copies twice)."""
    parts = [chunk.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    if len(parts) == 1:
        return parts[0] if parts[0].flags.writeable else parts[0].copy()
    return np.concatenate(parts) if parts else np.empty(0, dtype=column.type.to_pandas_dtype())


def open_raw(path: Path, kind: str, source: SourceOverride) -> RawFile:
    """Open ``path`` as a raw file of ``kind`` (one of the loader's raw suffixes) and read its column names."""
    if not path.is_file():
        raise BarsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BarsError(f"{path}: empty file")
    if kind == ".parquet":
        return _open_parquet(path, source)
    if kind not in _CODECS and kind not in _ZIPS:
        raise ValueError(f"no reader for raw suffix {kind!r}")  # a suffix added to RAW_SUFFIXES without one
    raw = RawFile(path, kind, source, names=[])
    try:
        line = _header_line(path, kind, source.encoding)
    except (OSError, EOFError, UnicodeError, zipfile.BadZipFile, pa.ArrowException) as exc:
        raise raw._error(exc) from None
    if line is None:
        raise BarsError(f"{path}: empty file")
    raw.separator = source.separator or _detect_separator(line)
    raw.names = next(csv.reader([line], delimiter=raw.separator))
    return raw


def _open_parquet(path: Path, source: SourceOverride) -> RawFile:
    try:
        frame = pd.read_parquet(path)
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        frame.columns = [str(name) for name in frame.columns]
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise BarsError(f"{path}: cannot be read as parquet: {one_line(exc)}") from None
    return RawFile(path, ".parquet", source, names=list(table.column_names), _parquet=table)


@contextlib.contextmanager
def _open_text(path: Path, kind: str) -> Iterator[IO[bytes]]:
    """The file's CSV bytes, decompressed: Arrow's gzip / zstd codecs, or the one CSV member of a zip."""
    if kind in _CODECS:
        with pa.input_stream(str(path), compression=_CODECS[kind]) as stream:
            yield stream
        return
    with zipfile.ZipFile(path) as archive, archive.open(_zip_member(path, archive)) as member:
        yield member


def _zip_member(path: Path, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The one ``.csv`` file in the archive (folders, macOS resource forks and hidden files aside)."""
    files = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not Path(info.filename).name.startswith(".")
    ]
    found = [info for info in files if info.filename.lower().endswith(".csv")]
    if len(found) != 1:
        listed = ", ".join(info.filename for info in files) or "nothing"
        what = "no .csv file" if not found else f"{len(found)} .csv files"
        raise BarsError(f"{path}: a raw .zip must hold exactly one .csv file; it holds {what} ({listed})")
    return found[0]


def _header_line(path: Path, kind: str, encoding: str) -> str | None:
    """The first non-empty line of the decompressed text, decoded (a BOM dropped); None for no text."""
    decoder = codecs.getincrementaldecoder(_python_encoding(encoding))()
    text = ""
    read = 0
    with _open_text(path, kind) as stream:
        while read < _HEADER_LIMIT:
            chunk = stream.read(1 << 16)
            read += len(chunk)
            text += decoder.decode(chunk, final=not chunk)
            lines = [line for line in text.splitlines() if line.strip()]
            if len(lines) > 1 or (lines and not chunk):
                return lines[0]
            if not chunk:
                return None
    return text.splitlines()[0] if text.strip() else None


def _detect_separator(header: str) -> str:
    """The most frequent of , ; tab | in the header line (comma on a tie or when none occurs)."""
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts.values())
    return next(sep for sep in _SEPARATORS if counts[sep] == best) if best else ","


def _python_encoding(name: str) -> str:
    """utf-8 read as utf-8-sig, so a byte-order mark does not become part of the first column's name."""
    return "utf-8-sig" if codecs.lookup(name).name == "utf-8" else name


def _arrow_encoding(name: str) -> str:
    """Arrow decodes UTF-8 itself (dropping a BOM); any other encoding is transcoded through Python's codec."""
    return "utf8" if codecs.lookup(name).name == "utf-8" else name
