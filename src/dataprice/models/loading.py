"""Loading models once per process, and saying so.

:func:`loaded_once` caches a loader like :func:`functools.lru_cache`, except that its
keyword ``progress`` (announce the load on stderr, :func:`dataprice.progress.announce`) is
not part of the key: a model loaded quietly is not loaded again to be announced, and one
loaded with an announcement is not loaded again quietly. :func:`weights_size` says how
large a model's weight files are, for those announcements, :func:`first_line` what a
one-line error quotes of a loader's failure, and :func:`quiet_loading` keeps the loaders'
own bars and reports off the terminal.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Files that hold a model's weights.
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth")


def loaded_once(maxsize: int) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A per-process cache of the last ``maxsize`` results of a model loader, keyed by its
    arguments less ``progress``; one load at a time per loader (a second caller of the same
    model waits for the first load instead of loading it too). A load that raises is not
    cached. ``cache_clear()`` forgets every model."""

    def decorate(load: Callable[P, T]) -> Callable[P, T]:
        cache: OrderedDict[Hashable, T] = OrderedDict()
        lock = threading.Lock()

        @functools.wraps(load)
        def loader(*args: P.args, **kwargs: P.kwargs) -> T:
            key = (args, tuple(sorted((k, v) for k, v in kwargs.items() if k != "progress")))
            with lock:
                if key in cache:
                    cache.move_to_end(key)
                    return cache[key]
                value = load(*args, **kwargs)
                cache[key] = value
                while len(cache) > maxsize:
                    cache.popitem(last=False)
                return value

        loader.cache_clear = cache.clear  # type: ignore[attr-defined]
        return loader

    return decorate


_LOADER_LOGGERS = ("sentence_transformers", "transformers")
_quiet_lock = threading.Lock()
_quiet_levels: list[int] = []  # the loggers' levels before the first of overlapping loads
_quiet_depth = 0  # loads in progress


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """While a model loads: no ``Loading weights`` bar from transformers, no load report of
    its own (the tensors of a folder that do not fit its config: the failure becomes one
    line, see :func:`first_line`) and no sentence-transformers notices (e.g. that a plain
    transformers folder gets mean pooling). Their loggers' levels are restored when the last
    of overlapping loads (in threads) ends."""
    from transformers.utils import logging as hf_logging

    global _quiet_depth
    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(name) for name in _LOADER_LOGGERS]
    with _quiet_lock:
        if not _quiet_depth:
            _quiet_levels[:] = [logger.level for logger in loggers]
            for logger in loggers:
                logger.setLevel(logging.CRITICAL)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if not _quiet_depth:
                for logger, level in zip(loggers, _quiet_levels, strict=True):
                    logger.setLevel(level)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), at most
    ``limit`` characters: what a one-line error quotes of a library's failure."""
    text = str(exc).strip()
    if "ignore_mismatched_sizes" in text:  # transformers points at a load report it logged (kept quiet here)
        return "the tensor shapes in its weights do not match its config.json"
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def weights_size(path: str | Path) -> str:
    """The size of a model's weights, e.g. ``"91 MB"`` or ``"1.4 GB"``: a file's size, or the
    weight files' in a folder (``*.safetensors``, ``*.gguf``, ...; the whole folder when it
    has none); ``"size unknown"`` when they cannot be read."""
    p = Path(path)
    try:
        if p.is_file():
            total = p.stat().st_size
        else:
            files = [f for f in p.iterdir() if f.is_file()]
            weights = [f for f in files if f.suffix.lower() in WEIGHT_SUFFIXES]
            total = sum(f.stat().st_size for f in (weights or files))
    except OSError:
        return "size unknown"
    mb = total / 1e6
    return f"{mb / 1e3:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 1 else f"{mb:.1f} MB"


__all__ = ["first_line", "loaded_once", "quiet_loading", "weights_size"]
