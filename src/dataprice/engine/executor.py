"""Any ``concurrent.futures.Executor`` as an engine: the caller's thread or process pool, or
a pool from a library that implements the interface (``distributed.Client.get_executor()``,
``mpi4py.futures.MPIPoolExecutor``, ``loky.get_reusable_executor()``, ...).

The executor belongs to the caller: dataprice submits to it and never shuts it down.
Results are the same as on any other engine (work is addressed by seed paths and folded in
a fixed order; tested against the serial engine with a thread and a process pool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from dataprice.engine.base import _description


class ExecutorEngine:
    """An engine over a caller's :class:`concurrent.futures.Executor`."""

    name = "executor"

    def __init__(self, executor: Executor) -> None:
        if not isinstance(executor, Executor):
            raise TypeError(f"expected a concurrent.futures.Executor, got {type(executor).__name__}")
        self.executor = executor

    def start(self) -> ExecutorEngine:
        return self

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self.executor.submit(fn, *args)

    def put(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        futures = [self.executor.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def describe(self) -> dict[str, Any]:
        kind = type(self.executor)
        workers = getattr(self.executor, "_max_workers", None)
        return _description("executor", int(workers) if isinstance(workers, int) else None, None, False,
                            f"{kind.__module__}.{kind.__qualname__}")

    def shutdown(self) -> None:
        """Nothing: the executor is the caller's to shut down."""


def as_engine(engine: Any) -> Any:
    """``engine`` itself, or an :class:`ExecutorEngine` when it is a plain executor."""
    return ExecutorEngine(engine) if isinstance(engine, Executor) else engine
