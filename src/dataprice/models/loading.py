"""Loading models once per process, and saying so.

:func:`loaded_once` caches a loader like :func:`functools.lru_cache`, except that its
keyword ``progress`` (announce the load on stderr, :func:`dataprice.progress.announce`) is
not part of the key: a model loaded quietly is not loaded again to be announced, and one
loaded with an announcement is not loaded again quietly. :func:`weights_size` says how
large a model's weight files are, for those announcements.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
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


__all__ = ["loaded_once", "weights_size"]
