"""A seeded mutator of scenario files, and a harness that runs a case and classifies it.

``mutate(text, rng)`` returns hostile variants of a valid scenario file, as bytes: structural
changes (a field deleted, replaced by a value of another type, an extreme number, a path
with a NUL byte or ``..``, an unknown key, a huge string or list, deep nesting) and textual
ones (truncation, flipped bytes, NUL bytes, invalid UTF-8, UTF-16, duplicated lines and
keys, YAML anchors that expand exponentially, tags that would build Python objects, a file
that is empty, binary, or over the size limit). ``check_case`` loads one through the same
public loader as ``dataprice validate`` and says whether it was accepted, cleanly rejected
(a one-line-per-problem :class:`DatapriceError` with short lines), crashed (any other
exception: the traceback is kept), or hung (longer than the time limit).

Used by ``tests/scenario/test_fuzz.py`` (a fast slice in the normal suite, thousands of cases under
``-m slow``) and ``scripts/fuzz_scenarios.py`` (any number of cases, a summary table).
"""

from __future__ import annotations

import copy
import math
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

#: Longest line of an error message a user should get.
MAX_ERROR_LINE = 400

_EXTREME_VALUES = [
    None, True, False, 0, -1, 1, 7, 2**63, -(2**63), 2**200, 1e308, -1e308, 1e-308, 0.5, -0.5, 3.7,
    "", " ", "x" * 100_000, "a\x00b", "../../etc/passwd", "/", ".", "..", "~", "yes", "no", "8", "1e3",
    "nan", "inf", "é∑\u202e", [], {}, [1] * 5000, ["a"] * 3, {"a": 1}, [[[]]], {"task": "rag"},
    "scenarios/quickstart.yaml", "reports/../..", "\x00",
]
_SPECIAL_FLOATS = [".nan", ".inf", "-.inf", "1e309", "-1e309", "1e308", "NaN", "1_000", "0x1F", "0o17", "010"]


def _paths(node, prefix=()):
    """Every (path, value) in a nested dict/list, leaves and containers."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(root, path, value):
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _delete(root, path):
    node = root
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def _deep(depth: int):
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


def _structural(data: dict, rng: np.random.Generator) -> dict:
    try:
        data = copy.deepcopy(data)
    except RecursionError:  # an earlier mutation nested it deeply already
        return data
    paths = [p for p, _ in _paths(data) if p]
    path = paths[int(rng.integers(len(paths)))]
    node = data
    for key in path:
        node = node[key]
    kind = int(rng.integers(9))
    if kind == 0:
        _delete(data, path)
    elif kind == 1:
        _set(data, path, _EXTREME_VALUES[int(rng.integers(len(_EXTREME_VALUES)))])
    elif kind == 2 and isinstance(node, int | float) and not isinstance(node, bool):
        factor = [-1, 0, 10, 1000, 1e6, 1e12, 1e300, -1e300, 0.5, 1.5][int(rng.integers(10))]
        value = node * factor
        _set(data, path, int(value) if isinstance(node, int) and abs(value) < 2**63 and math.isfinite(value) else value)
    elif kind == 3:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            parent[f"unknown_{int(rng.integers(100))}"] = 1
        else:
            parent.append(parent[-1] if parent else 0)
    elif kind == 4:
        _set(data, path, _deep(int(rng.choice([5, 40, 600]))))
    elif kind == 5 and isinstance(node, list):
        _set(data, path, node * int(rng.choice([0, 2, 500])))
    elif kind == 6 and isinstance(node, str):
        _set(data, path, node + ["\x00", "/../..", "\u0000x", "x" * 5000, "'", '"', "\n"][int(rng.integers(7))])
    elif kind == 7:
        _set(data, path, {"nested": node} if not isinstance(node, dict) else list(node.values()))
    else:
        _set(data, path, str(node) if not isinstance(node, str) else 12345)
    return data


def _textual(text: str, rng: np.random.Generator) -> bytes:
    raw = text.encode()
    kind = int(rng.integers(16))
    if kind == 0:
        return raw[: int(rng.integers(len(raw) + 1))]
    if kind == 1:
        buf = bytearray(raw)
        for _ in range(int(rng.integers(1, 8))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
        return bytes(buf)
    if kind == 2:
        at = int(rng.integers(len(raw) + 1))
        return raw[:at] + rng.choice([b"\x00", b"\xff\xfe", b"\x80", b"\x1b[31m", b"\x07"]) + raw[at:]
    if kind == 3:
        return text.encode("utf-16")
    if kind == 4:
        lines = text.splitlines(keepends=True)
        i = int(rng.integers(len(lines)))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :]).encode()
    if kind == 5:
        bomb = "lol: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for k in range(1, 9):
            bomb += f"l{k}: &a{k} [{', '.join(['*a' if k == 1 else f'*a{k - 1}'] * 10)}]\n"
        return (text + bomb).encode()
    if kind == 6:
        return (text + "\nextra: !!python/object/apply:os.system ['touch /tmp/pwned']\n").encode()
    if kind == 7:
        return b""
    if kind == 8:
        return bytes(rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8))
    if kind == 9:
        return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    if kind == 10:
        line = f"description: {'x' * int(rng.choice([10_000, 3_000_000]))}\n"
        return (text + line).encode()
    if kind == 11:
        lines = text.splitlines(keepends=True)
        i = int(rng.integers(len(lines)))
        lines[i] = ("\t" if rng.random() < 0.5 else "   ") + lines[i]
        return "".join(lines).encode()
    if kind == 12:
        value = _SPECIAL_FLOATS[int(rng.integers(len(_SPECIAL_FLOATS)))]
        lines = text.splitlines(keepends=True)
        numeric = [i for i, line in enumerate(lines) if ":" in line and any(c.isdigit() for c in line.split(":", 1)[1])]
        if not numeric:
            return raw
        i = numeric[int(rng.integers(len(numeric)))]
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {value}\n"
        return "".join(lines).encode()
    if kind == 13:
        return ("[" * 600 + "]" * 600 + "\n").encode() if rng.random() < 0.5 else (text + "deep: " + "{a: " * 300 + "1" + "}" * 300 + "\n").encode()
    if kind == 14:
        return (text + "&anchor\n").encode() if rng.random() < 0.5 else text.replace(":", "", 1).encode()
    return (text + f"\n{text.splitlines()[0]}\n").encode()  # a repeated key at the end


def mutate(text: str, rng: np.random.Generator) -> bytes:
    """One hostile variant of a scenario file's text."""
    if rng.random() < 0.55:
        data = yaml.safe_load(text)
        for _ in range(int(rng.integers(1, 4))):
            data = _structural(data, rng)
        try:
            return yaml.safe_dump(data, allow_unicode=bool(rng.random() < 0.5)).encode()
        except (yaml.YAMLError, RecursionError):
            return _textual(text, rng)
    return _textual(text, rng)


@dataclass
class Outcome:
    case: int
    source: str
    status: str  # accepted | rejected | crashed | hung
    seconds: float
    detail: str = ""


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Timeout


def check_case(path: Path, *, case: int, source: str, limit: float = 30.0, run=None) -> Outcome:
    """Load ``path`` like ``dataprice validate`` (and, with ``run``, call ``run(scenario)``);
    classify the outcome. Uses SIGALRM, so call it from the main thread."""
    from dataprice.errors import DatapriceError
    from dataprice.scenario import load_scenario

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        scenario = load_scenario(path)
        if run is not None:
            run(scenario)
        status, detail = "accepted", ""
    except DatapriceError as exc:
        lines = [line.replace(str(path), "FILE") for line in str(exc).splitlines()]
        too_long = [line for line in lines if len(line) > MAX_ERROR_LINE]
        if not lines or too_long:
            status, detail = "crashed", f"error message of {len(lines)} lines, longest {max(map(len, lines), default=0)}"
        else:
            status, detail = "rejected", lines[0]
    except _Timeout:
        status, detail = "hung", f"over {limit} s"
    except BaseException:  # noqa: BLE001 - any other exception is a crash to report
        status, detail = "crashed", traceback.format_exc(limit=-8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(case, source, status, time.monotonic() - started, detail)


def cases(scenario_files: list[Path], n: int, seed: int):
    """``n`` mutants ``(case number, source file, bytes)`` drawn round-robin over the files."""
    rng = np.random.default_rng(seed)
    texts = [(p, p.read_text()) for p in scenario_files]
    for case in range(n):
        path, text = texts[case % len(texts)]
        yield case, path, mutate(text, rng)
