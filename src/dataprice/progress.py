"""Progress that reads well where it is shown: a live bar on a terminal, plain lines in a log.

:func:`progress` returns a tqdm bar when standard error is a terminal. Anywhere else (a CI
log, a file, a pipe) a live bar would leave carriage returns and escape codes in the text,
so it returns a :class:`LineProgress` instead: the same interface (iteration, ``update``,
``close``, a context manager), writing one plain line now and then, e.g.
``replicates: 2/4 (12 s)``: at most one every :data:`EVERY` seconds, and a last line when a
top-level bar (``leave=True``) ends. Nothing is written when ``enabled`` is false.

:func:`announce` is for single long events (loading a model): one plain line when it starts,
e.g. ``loading all-MiniLM-L6-v2 (safetensors, 91 MB) from /path ...``, and one when it ends,
``... loaded in 4.2 s``, the same text on a terminal and in a log.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm.auto import tqdm

#: Seconds between two lines of a :class:`LineProgress`.
EVERY = 30.0


def _terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class LineProgress:
    """tqdm's interface, written as plain lines (see the module docstring)."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: float = 0, leave: bool = True, file: IO[str] | None = None,
                 every: float = EVERY) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n, self.leave = total, desc, unit, initial, leave
        self.file = file if file is not None else sys.stderr
        self.every = every
        self.started = self.last = time.monotonic()
        self.closed = False

    def _line(self) -> None:
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        unit = "" if self.unit == "it" else f" {self.unit}"
        print(f"{self.desc}: {count}{unit} ({time.monotonic() - self.started:.0f} s)", file=self.file, flush=True)
        self.last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self._line()

    def close(self) -> None:
        if not self.closed and self.leave:
            self._line()
        self.closed = True

    def __iter__(self) -> Iterator:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, leave: bool = True, initial: float = 0) -> Any:
    """A progress display for ``iterable`` (or ``total`` units fed by ``update``): a tqdm bar
    on a terminal, plain lines elsewhere, nothing when not ``enabled``."""
    if enabled and not _terminal(sys.stderr):
        return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=not enabled)


def _say(line: str, stream: IO[str]) -> None:
    if _terminal(stream):  # above any live bar, which tqdm redraws below the line
        tqdm.write(line, file=stream)
    else:
        print(line, file=stream, flush=True)


@contextlib.contextmanager
def announce(what: str, *, enabled: bool, done: str = "loaded", file: IO[str] | None = None) -> Iterator[None]:
    """Say on stderr (or ``file``) that ``what`` starts, as ``"<what> ..."``, and when it has
    ended, as ``"... <done> in 4.2 s"``: two plain lines, no bar and no escape codes, on a
    terminal or in a log. Nothing when not ``enabled``, and no end line when the block raises
    (its error says what happened).

    Example::

        with announce(f"loading SmolLM2-135M (GGUF, 98 MB) from {path}", enabled=progress):
            model = load(path)
    """
    if not enabled:
        yield
        return
    stream = file if file is not None else sys.stderr
    _say(f"{what} ...", stream)
    started = time.monotonic()
    yield
    _say(f"... {done} in {time.monotonic() - started:.1f} s", stream)


__all__ = ["EVERY", "LineProgress", "announce", "progress"]
