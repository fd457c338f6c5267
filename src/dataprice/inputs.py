"""The input boundary: every file a user hands to dataprice is checked here, once.

Scenario files, data files (documents, questions, preference pairs, replay scores), report
directories and paths given on the command line reach a parser only through this module,
which rejects what would otherwise surface as a traceback deep inside a library:

* **paths**: empty, containing a NUL byte, ``.``/``..`` where a file is expected, missing,
  a directory, not a regular file (a FIFO or ``/dev/zero`` would block or never end),
  unreadable;
* **size**: each kind of file has a limit (scenario files :data:`MAX_SCENARIO_BYTES`; data
  files :func:`max_data_bytes`, raised with ``DATAPRICE_MAX_INPUT_MB``), checked before
  anything is read;
* **bytes**: text must be UTF-8 (a byte-order mark is allowed) with no NUL bytes;
* **YAML** (:func:`load_yaml`): nesting depth and size after alias expansion are bounded,
  duplicate keys are rejected, and scalars follow the YAML 1.2 core schema (``1e-3`` is a
  number; ``yes``/``no``/``on``/``off`` and dates stay strings), so what a file says is
  what the schema sees. Only plain data is constructed: no tags that build objects.

Every error is one line that names the file (or field) and says what is allowed; values
quoted in an error are cut to a short excerpt (:func:`excerpt`), whatever their size.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from dataprice.errors import DataError, DatapriceError

#: Largest scenario file read (scenarios are settings; data belongs in data files).
MAX_SCENARIO_BYTES = 2 * 2**20
#: Deepest nesting of mappings and lists accepted in a YAML file.
MAX_YAML_DEPTH = 32
#: Most YAML nodes accepted, counting every use of an alias (bounds "billion laughs").
MAX_YAML_NODES = 200_000
#: Default limit on one data file, in MiB (``DATAPRICE_MAX_INPUT_MB`` changes it).
DEFAULT_MAX_DATA_MB = 256
#: Characters of a bad value quoted in an error message.
EXCERPT_CHARS = 60


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the full length noted."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def shorten(text: str, limit: int = 200) -> str:
    """``text`` itself when short, else its first ``limit`` characters and the full length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def max_data_bytes() -> int:
    """The size limit of one data file: ``DATAPRICE_MAX_INPUT_MB`` MiB (default 256)."""
    raw = os.environ.get("DATAPRICE_MAX_INPUT_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_DATA_MB
    except ValueError:
        raise DataError(f"DATAPRICE_MAX_INPUT_MB: not a number ({excerpt(raw)}); give a size in MiB, e.g. 1024") from None
    if not mb > 0 or mb != mb or mb == float("inf"):
        raise DataError(f"DATAPRICE_MAX_INPUT_MB: must be a positive number of MiB (got {excerpt(raw)})")
    return int(mb * 2**20)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def path_problem(path: Any) -> str | None:
    """What is wrong with ``path`` as a path at all (before looking at the disk), or None."""
    if not isinstance(path, str | os.PathLike):
        return f"expected a path, got {type(path).__name__}"
    text = os.fspath(path)
    if isinstance(text, bytes):
        return "expected a text path, got bytes"
    if not text.strip():
        return "the path is empty"
    if "\x00" in text:
        return "the path contains a NUL byte"
    return None


def checked_file(path: Any, what: str, *, error: type[DatapriceError] = DataError, limit: int | None = None) -> Path:
    """``path`` as a :class:`Path` to an existing, readable regular file of at most
    ``limit`` bytes; else ``error`` with one line naming ``what`` and the path."""
    problem = path_problem(path)
    if problem:
        raise error(f"{what}: {problem} (got {excerpt(path)})")
    p = Path(path)
    if p.name in {"", ".", ".."}:
        raise error(f"{what} {excerpt(str(p))}: a directory, expected a file")
    try:
        info = p.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {excerpt(str(p), 200)}") from None
    except NotADirectoryError:
        raise error(f"{what} not found: {excerpt(str(p), 200)} (a parent is a file, not a folder)") from None
    except PermissionError:
        raise error(f"{what} {excerpt(str(p), 200)}: permission denied") from None
    except OSError as exc:  # name too long, too many symlinks, ...
        raise error(f"{what} {excerpt(str(p), 200)}: cannot be opened ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} {excerpt(str(p), 200)} is a directory; expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {excerpt(str(p), 200)} is not a regular file (a device, pipe or socket)")
    if not os.access(p, os.R_OK):
        raise error(f"{what} {excerpt(str(p), 200)}: permission denied")
    if limit is not None and info.st_size > limit:
        hint = " (raise it with DATAPRICE_MAX_INPUT_MB)" if limit == max_data_bytes() else ""
        raise error(f"{what} {excerpt(str(p), 200)} is {_mib(info.st_size)}; the limit is {_mib(limit)}{hint}")
    return p


def read_bytes(path: Any, what: str, *, limit: int, error: type[DatapriceError] = DataError) -> bytes:
    """The bytes of a checked file (:func:`checked_file`), never more than ``limit``."""
    p = checked_file(path, what, error=error, limit=limit)
    try:
        with p.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} {excerpt(str(p), 200)}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:  # grew since it was checked
        raise error(f"{what} {excerpt(str(p), 200)} is larger than the limit of {_mib(limit)}")
    return data


def decode_text(data: bytes, source: str, what: str, *, error: type[DatapriceError] = DataError) -> str:
    """UTF-8 text (an optional byte-order mark is dropped) with no NUL bytes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"a {what} must be saved as UTF-8"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise error(f"{source}: contains a NUL byte on line {line}; a {what} is text, not binary data")
    return text


def read_text(path: Any, what: str, *, limit: int, error: type[DatapriceError] = DataError) -> str:
    """A checked file's content as text (see :func:`decode_text`)."""
    return decode_text(read_bytes(path, what, limit=limit, error=error), str(path), what, error=error)


# --- YAML ------------------------------------------------------------------------------------

# YAML 1.2 core schema scalars (YAML 1.1's yes/no/on/off booleans, sexagesimal numbers,
# octal "010" and timestamps are plain strings here).
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _CoreResolver(yaml.resolver.Resolver):
    yaml_implicit_resolvers: dict = {}


for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"]),
]:
    _CoreResolver.add_implicit_resolver(_tag, _regexp, _first)


class _SafeLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                  yaml.constructor.SafeConstructor, _CoreResolver):
    """PyYAML's safe loader with the core schema, a depth limit and duplicate-key checks."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _CoreResolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: PyYAML reports it below
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {excerpt(key)} appears twice (first on line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):  # noqa: ANN001
        value = self.construct_scalar(node)
        sign = -1 if value.startswith("-") else 1
        digits = value.lstrip("+-")
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)

    def construct_yaml_float(self, node):  # noqa: ANN001
        value = self.construct_scalar(node)
        lowered = value.lower()
        if lowered.lstrip("+-") == ".inf":
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(value)


# (types-PyYAML admits only PyYAML's own loader classes here: hence the ignores)
_SafeLoader.add_constructor("tag:yaml.org,2002:int", _SafeLoader.construct_yaml_int)  # type: ignore[type-var]
_SafeLoader.add_constructor("tag:yaml.org,2002:float", _SafeLoader.construct_yaml_float)  # type: ignore[type-var]
# timestamps are not resolved implicitly; an explicit !!timestamp tag stays a string too
_SafeLoader.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str
)


class SafeDumper(yaml.SafeDumper):
    """A dumper whose quoting matches :func:`load_yaml` (a string that the core schema would
    read as a number or a boolean is quoted), so a dumped scenario loads back unchanged."""

    yaml_implicit_resolvers = _CoreResolver.yaml_implicit_resolvers


def dump_yaml(data: Any) -> str:
    """YAML text that :func:`load_yaml` reads back as ``data`` (keys in the given order)."""
    return yaml.dump(data, Dumper=SafeDumper, sort_keys=False, allow_unicode=True)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of nodes once every alias is expanded (linear time with ``memo``)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_YAML_NODES + 1  # a node that contains itself is too large
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_NODES + 1)
    return memo[id(node)]


def load_yaml(text: str, source: str, *, error: type[DatapriceError] = DataError) -> Any:
    """Parse YAML text safely (see the module docstring); errors name ``source`` and the line."""
    loader = None
    try:
        loader = _SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise error(
                f"{source}: more than {MAX_YAML_NODES:,} values once anchors and aliases are expanded; "
                "a scenario holds settings, put large data in data files"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.reader.ReaderError):
            where, problem = f"character {exc.position + 1}: ", f"control character #x{exc.character:04x} is not allowed"
        raise error(f"{source}: not valid YAML: {where}{shorten(problem)}") from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise error(f"{source}: nested too deeply; at most {MAX_YAML_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Any, what: str, *, limit: int = MAX_SCENARIO_BYTES, error: type[DatapriceError] = DataError) -> Any:
    """A YAML file through every check of this module."""
    return load_yaml(read_text(path, what, limit=limit, error=error), str(path), error=error)
