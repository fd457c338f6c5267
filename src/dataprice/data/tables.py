"""Tables in user files (documents, questions, preference pairs, replay scores, tabular
training data), read once.

:func:`read_records` reads a CSV, TSV, JSON-lines (``.jsonl``), JSON (``.json``: an array
of objects, or one object per line) or Parquet (``.parquet``) file through the checks of
:mod:`dataprice.inputs` (a regular file, at most :func:`~dataprice.inputs.max_data_bytes`;
text formats must be UTF-8 with no NUL byte), parses it from the bytes already read, in one
pass, and keeps only the columns the caller asks for. A Parquet record's "line" is its row
number (1-based; messages say ``row``). Every record remembers the line it starts on, so the checks of
:class:`Records` (:meth:`~Records.text`, :meth:`~Records.unique`,
:meth:`~Records.optional`, :meth:`~Records.numbers`) fail with one line::

    docs.jsonl: line 7, column 'text': missing (null); every record needs a text

Cells are ``str`` or ``None``: a JSON ``null`` or a missing key (or a CSV row with too few
fields) is ``None``; a JSON number or boolean becomes its text (``1`` -> ``"1"``, as
``pandas`` ``astype(str)`` did); a JSON object or list where a value is expected is an error.
Parquet cells follow the same rules (a number's text is its shortest round-trip form, so
``float(cell)`` gives the stored value back; a list or struct cell is an error).
An empty CSV cell is ``""``. Values are never stripped (a DPO answer ``" B"`` keeps its space).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataprice.errors import DataError
from dataprice.inputs import checked_file, decode_text, excerpt, max_data_bytes, read_bytes, shorten

#: File suffixes :func:`read_records` reads, and the format of each.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
#: Column names listed in a "columns found" message before it is cut.
LISTED_COLUMNS = 12

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip_whitespace(text: str, start: int = 0) -> int:
    """Index of the first character at or after ``start`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, start)
    assert match is not None  # the pattern matches the empty string
    return match.end()


Cell = str | None


def display(path: Path | str) -> str:
    """``path`` as printed in an error: itself when short and printable, else an excerpt."""
    text = str(path)
    return text if len(text) <= 200 and text.isprintable() else excerpt(text, 200)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


@dataclass
class Records:
    """The requested columns of a user table, one cell per record.

    Attributes:
        path: the file.
        what: what the file holds, for messages (``documents``, ``preference``, ...).
        lines: the 1-based line each record starts on.
        cells: requested column -> its cells (only columns present in the file).
        found: every column name of the file, in order of first appearance.
        unit: what ``lines`` count in messages: ``line`` (text files) or ``row`` (Parquet).
    """

    path: Path
    what: str
    lines: list[int]
    cells: dict[str, list[Cell]]
    found: list[str]
    unit: str = "line"

    def __len__(self) -> int:
        return len(self.lines)

    def has(self, column: str) -> bool:
        return column in self.cells

    def columns_found(self) -> str:
        """The file's column names, for a message (cut after :data:`LISTED_COLUMNS`)."""
        return _columns_found(self.found)

    def where(self, row: int, column: str | None = None) -> str:
        """``"<file>: line 7, column 'text'"`` for record ``row`` (0-based)."""
        at = f"{display(self.path)}: {self.unit} {self.lines[row]}"
        return f"{at}, column {excerpt(column)}" if column is not None else at

    def error(self, row: int, column: str | None, problem: str) -> DataError:
        return DataError(f"{self.where(row, column)}: {problem}")

    def text(self, column: str, meaning: str | None = None) -> list[str]:
        """The cells of a required column, each a non-blank string.

        ``meaning`` names the value in the message (``"every document needs a text"``).
        """
        values = self.cells[column]
        need = f"; {meaning}" if meaning else ""
        for row, value in enumerate(values):
            if value is None:
                raise self.error(row, column, f"missing (null){need}")
            if not value.strip():
                raise self.error(row, column, f"empty ({excerpt(value)}){need}")
        return values  # type: ignore[return-value]

    def unique(self, column: str, noun: str) -> list[str]:
        """:meth:`text`, and no value twice (``noun``: ``"document id"``)."""
        values = self.text(column, f"every {noun} must be given")
        first: dict[str, int] = {}
        for row, value in enumerate(values):
            seen = first.setdefault(value, row)
            if seen != row:
                raise self.error(
                    row, column,
                    f"{noun} {excerpt(value)} appears twice (first on {self.unit} {self.lines[seen]}); ids must be unique",
                )
        return values

    def optional(self, column: str, nulls: frozenset[str] = frozenset({""})) -> list[str | None]:
        """The cells of an optional column, ``None`` for null, absent or a value in ``nulls``."""
        if column not in self.cells:
            return [None] * len(self)
        return [None if v is None or v.strip() in nulls else v for v in self.cells[column]]

    def numbers(self, column: str) -> np.ndarray:
        """A required column of finite numbers, as ``float64``."""
        out = np.empty(len(self), dtype=np.float64)
        for row, value in enumerate(self.text(column, "a number is needed")):
            try:
                number = float(value)
            except ValueError:
                raise self.error(row, column, f"not a number ({excerpt(value)})") from None
            if not math.isfinite(number):
                raise self.error(row, column, f"{excerpt(value)} is not a finite number")
            out[row] = number
        return out

    def prices(self, column: str) -> np.ndarray:
        """A required column of prices: finite numbers ``>= 0`` (one line naming the first
        negative one)."""
        out = self.numbers(column)
        negative = np.flatnonzero(out < 0)
        if negative.size:
            row = int(negative[0])
            raise self.error(row, column, f"a price of {out[row]:g}; prices must be >= 0")
        return out


def _columns_found(found: Sequence[str]) -> str:
    shown = ", ".join(excerpt(c, 40) if not c.isprintable() or len(c) > 40 else c for c in found[:LISTED_COLUMNS])
    more = f", ... ({len(found)} columns)" if len(found) > LISTED_COLUMNS else ""
    return (shown + more) if found else "none"


def read_records(
    path: str | Path,
    what: str,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    default_format: str | None = None,
    every_column: bool = False,
) -> Records:
    """Read the columns ``required`` (all must be present) and ``optional`` of a user table.

    Args:
        path: a ``.csv``, ``.tsv``, ``.jsonl``, ``.json`` or ``.parquet`` file.
        what: what the file holds, in messages: ``"<what> file not found"``,
            ``"<what> column 'x' is missing"``.
        required, optional: the columns to keep.
        default_format: format of a file with another suffix (``"csv"``); by default such a
            file is refused.
        every_column: keep every column of the file (``required`` must still be present).

    Raises:
        DataError: one line naming the file (and the line and column where it applies).
    """
    checked = checked_file(path, f"{what} file", limit=max_data_bytes())
    fmt = FORMATS.get(checked.suffix.lower(), default_format)
    if fmt is None:
        raise DataError(
            f"{display(checked)}: unsupported {what} format {excerpt(checked.suffix)}; use {', '.join(FORMATS)}"
        )
    data = read_bytes(checked, f"{what} file", limit=max_data_bytes())
    wanted: list[str] | None = None if every_column else list(dict.fromkeys([*required, *optional]))
    if fmt == "parquet":
        if not data:
            raise DataError(f"{display(checked)}: the {what} file is empty")
        lines, cells, found = _parquet(data, checked, what, wanted)
        unit = "row"
    else:
        text = decode_text(data, display(checked), f"{what} file")
        del data
        if not text.strip():
            raise DataError(f"{display(checked)}: the {what} file is empty")
        parse = _csv if fmt in {"csv", "tsv"} else _json
        lines, cells, found = parse(text, checked, what, wanted, fmt)
        del text
        unit = "line"
    records = Records(checked, what, lines, {c: v for c, v in cells.items() if c in found}, found, unit)
    if not len(records):
        raise DataError(f"{display(checked)}: the {what} file has no rows")
    missing = [c for c in required if c not in records.cells]
    if missing:
        raise DataError(
            f"{display(checked)}: {what} column {excerpt(missing[0])} is missing; "
            f"columns found: {_columns_found(found)}"
        )
    return records


# --- CSV / TSV ---------------------------------------------------------------------------------


def _physical_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ends, without a list of them all in memory."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        end = size if end < 0 else end + 1
        yield text[start:end]
        start = end


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "a quoted value is not closed before the end of the file"
    if "expected after" in text:
        return "text after a closing quote; a quote inside a quoted value is written twice: \"\""
    return text[:120]


def _csv(text: str, path: Path, what: str, wanted: list[str] | None, fmt: str):
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(max_data_bytes(), 2**31 - 1))  # a document may be long
    try:
        # strict: a quote left open at the end of the file, or text after a closing quote,
        # is an error (not a value that silently swallows the rest of the file)
        reader = csv.reader(_physical_lines(text), delimiter="\t" if fmt == "tsv" else ",", strict=True)
        try:
            header = next(reader)
            while not header:  # leading blank lines
                header = next(reader)
        except StopIteration:  # pragma: no cover - the text is not blank
            raise DataError(f"{display(path)}: the {what} file is empty") from None
        except csv.Error as exc:
            raise DataError(f"{display(path)}: line 1: not valid CSV ({_csv_problem(exc)})") from None
        found = [name if name else f"Unnamed: {i}" for i, name in enumerate(header)]
        if wanted is None:
            wanted = found
        position: dict[str, int] = {}
        for i, name in enumerate(found):
            if name in wanted and name in position:
                raise DataError(
                    f"{display(path)}: line {reader.line_num}: column {excerpt(name)} appears twice in the header"
                )
            position.setdefault(name, i)
        take = [(c, position[c]) for c in wanted if c in position]
        cells: dict[str, list[Cell]] = {c: [] for c, _ in take}
        lines: list[int] = []
        width = len(header)
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(f"{display(path)}: line {previous + 1}: not valid CSV ({_csv_problem(exc)})") from None
            start, previous = previous + 1, reader.line_num
            if not row:
                continue
            if len(row) > width:
                raise DataError(
                    f"{display(path)}: line {start}: {len(row)} fields, but the header has {width}; "
                    "quote values that contain the separator"
                )
            lines.append(start)
            n = len(row)
            for column, i in take:
                cells[column].append(row[i] if i < n else None)
        return lines, cells, found
    finally:
        csv.field_size_limit(old_limit)


# --- JSON lines / JSON array -------------------------------------------------------------------


def _cell(value: Any, where: str, column: str) -> Cell:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise DataError(f"{where}, column {excerpt(column)}: holds {_json_kind(value)}; expected a string or a number")


def _decode(decoder: json.JSONDecoder, text: str, start: int, path: Path, line: int) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, character {exc.colno}" if line == 0 else f"line {line}, character {exc.colno}"
        raise DataError(f"{display(path)}: {where}: not valid JSON ({exc.msg})") from None
    except ValueError:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise DataError(f"{display(path)}: line {line or 1}: not valid JSON (a number with too many digits)") from None
    except RecursionError:
        raise DataError(f"{display(path)}: line {line or 1}: JSON nested too deeply") from None


def _json_values(text: str, path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` of each record: in a ``.json`` file that starts with ``[``, the
    elements of that array; else one JSON value per non-blank line."""
    decoder = json.JSONDecoder()
    start = _skip_whitespace(text)
    if fmt == "json" and text.startswith("[", start):
        line, counted = 1, 0
        i = _skip_whitespace(text, start + 1)
        if text.startswith("]", i):
            i = _skip_whitespace(text, i + 1)
        else:
            while True:
                line += text.count("\n", counted, i)
                counted = i
                value, end = _decode(decoder, text, i, path, 0)
                yield line, value
                i = _skip_whitespace(text, end)
                if text.startswith(",", i):
                    i = _skip_whitespace(text, i + 1)
                    continue
                if text.startswith("]", i):
                    i = _skip_whitespace(text, i + 1)
                    break
                line += text.count("\n", counted, i)
                counted = i
                got = excerpt(text[i : i + 20]) if i < len(text) else "the end of the file"
                raise DataError(
                    f"{display(path)}: line {line}: not valid JSON (expected ',' or ']' after a record, got {got})"
                )
        if i < len(text):
            line = text.count("\n", 0, i) + 1
            raise DataError(f"{display(path)}: line {line}: not valid JSON (extra data after the closing ']')")
        return
    for number, raw in enumerate(_physical_lines(text), start=1):
        raw = raw.rstrip("\r\n")  # so that an error's character counts within this line
        i = _skip_whitespace(raw)
        if i == len(raw):
            continue
        value, end = _decode(decoder, raw, i, path, number)
        if _skip_whitespace(raw, end) != len(raw):
            raise DataError(
                f"{display(path)}: line {number}: not valid JSON (extra data after the value; one record per line)"
            )
        yield number, value


def _json(text: str, path: Path, what: str, wanted: list[str] | None, fmt: str):
    every = wanted is None
    cells: dict[str, list[Cell]] = {c: [] for c in (wanted or [])}
    found: dict[str, None] = {}
    lines: list[int] = []
    for line, record in _json_values(text, path, fmt):
        if not isinstance(record, dict):
            raise DataError(
                f"{display(path)}: line {line}: expected a JSON object with the {what} columns, "
                f"got {_json_kind(record)}"
            )
        for key in record:
            if key not in found:
                found[key] = None
                if every:
                    cells[key] = [None] * len(lines)  # earlier records lack it
        where = f"{display(path)}: line {line}"
        for column in cells:
            cells[column].append(_cell(record.get(column), where, column))
        lines.append(line)
    return lines, cells, list(found)


# --- Parquet ------------------------------------------------------------------------------------


def _parquet_text(value: Any, where: str, column: str) -> Cell:
    """A Parquet cell as text: numbers in their shortest round-trip form (``repr``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list | tuple | bytes):
        kind = "binary data" if isinstance(value, bytes) else _json_kind(list(value) if isinstance(value, tuple) else value)
        raise DataError(f"{where}, column {excerpt(column)}: holds {kind}; expected a string or a number")
    return str(value)  # dates, times, decimals: their text


def _parquet(data: bytes, path: Path, what: str, wanted: list[str] | None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data), columns=None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{display(path)}: not a readable Parquet file ({shorten(problem, 100)})") from None
    found = [str(name) for name in table.column_names]
    if wanted is None:
        wanted = found
    position: dict[str, int] = {}
    for i, name in enumerate(found):
        if name in wanted and name in position:
            raise DataError(f"{display(path)}: column {excerpt(name)} appears twice in the Parquet schema")
        position.setdefault(name, i)
    cells: dict[str, list[Cell]] = {}
    for column in wanted:
        if column not in position:
            continue
        values = table.column(position[column]).to_pylist()
        out: list[Cell] = []
        for row, value in enumerate(values, start=1):
            out.append(_parquet_text(value, f"{display(path)}: row {row}", column))
        cells[column] = out
    return list(range(1, table.num_rows + 1)), cells, found
