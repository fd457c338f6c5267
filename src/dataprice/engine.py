"""Where work runs: serially, or in local worker processes (loky).

An engine maps a picklable function over a list of items and returns results in order.
Work is addressed by seed paths (see :mod:`dataprice.rng`), so results do not depend on
the engine or the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Engine(Protocol):
    """``map(fn, items) -> list`` in the order of ``items``; ``shutdown()`` frees workers."""

    name: str

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...

    def shutdown(self) -> None: ...


class SerialEngine:
    """Runs everything in this process."""

    name = "serial"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [fn(item) for item in items]

    def shutdown(self) -> None:
        pass


class LokyEngine:
    """Local worker processes through loky's reusable executor (no server needed).

    Each worker limits BLAS/OpenMP threads (numpy, scikit-learn, torch) to one, so
    ``workers`` processes use ``workers`` cores.
    """

    name = "loky"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor = None

    def _get(self):
        if self._executor is None:
            from loky import get_reusable_executor

            self._executor = get_reusable_executor(
                max_workers=self.workers,
                env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
        return self._executor

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._get().map(fn, items))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def make_engine(kind: str = "serial", workers: int = 2) -> Engine:
    """An engine by name: ``serial`` or ``loky``."""
    if kind == "serial":
        return SerialEngine()
    if kind == "loky":
        return LokyEngine(workers)
    raise ValueError(f"unknown engine {kind!r}; choose 'serial' or 'loky'")
