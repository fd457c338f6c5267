"""Where work runs: serially, in local worker processes (loky), or on a Dask cluster.

An engine offers ``submit(fn, *args) -> future`` (with ``result()`` and ``cancel()``),
``put(obj)`` (ship a heavy object once; tasks receive the handle and see the object),
``map(fn, items)`` (ordered results) and ``shutdown()``. Work is addressed by seed paths
(see :mod:`dataprice.rng`), and drivers fold results in a fixed order, so results do not
depend on the engine, the number of workers or the order in which tasks finish.

* ``serial``: in this process (futures complete at submission).
* ``loky``: local processes, no server (the default for parallel work on one machine).
* ``dask``: ``dask.distributed`` -- a local cluster of ``workers`` processes, or an
  existing scheduler at ``address`` (then nothing else changes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol


class Engine(Protocol):
    name: str

    def submit(self, fn: Callable, *args: Any) -> Any: ...

    def put(self, obj: Any) -> Any: ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...

    def shutdown(self) -> None: ...


class SerialEngine:
    """Runs everything in this process; ``submit`` returns an already completed future."""

    name = "serial"

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, like a pool
            future.set_exception(exc)
        return future

    def put(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [fn(item) for item in items]

    def shutdown(self) -> None:
        pass


class LokyEngine:
    """Local worker processes through loky's reusable executor (no server needed).

    Each worker limits BLAS/OpenMP threads (numpy, scikit-learn, torch) to one, so
    ``workers`` processes use ``workers`` cores. ``put`` is the identity: arguments are
    pickled with each task.
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

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self._get().submit(fn, *args)

    def put(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._get().map(fn, items))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class DaskEngine:
    """``dask.distributed``: a local cluster (``address=None``) or an existing scheduler.

    ``put`` scatters an object to every worker once (tasks receive the future and Dask
    hands them the object).
    """

    name = "dask"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        self.workers, self.address = workers, address
        self._client = None
        self._cluster = None

    def _get(self):
        if self._client is None:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:  # pragma: no cover - depends on the installation
                raise RuntimeError("engine 'dask' needs dask.distributed: pip install 'dask[distributed]'") from None
            if self.address:
                self._client = Client(self.address)
            else:
                with warnings.catch_warnings():  # "port in use, hosting elsewhere": harmless here
                    warnings.simplefilter("ignore", UserWarning)
                    self._cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    )
                self._client = Client(self._cluster)
        return self._client

    def submit(self, fn: Callable, *args: Any):
        return self._get().submit(fn, *args, pure=False)

    def put(self, obj: Any):
        return self._get().scatter(obj, broadcast=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        client = self._get()
        return client.gather([client.submit(fn, item, pure=False) for item in items])

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def make_engine(kind: str = "serial", workers: int = 2, address: str | None = None) -> Engine:
    """An engine by name: ``serial``, ``loky`` or ``dask``."""
    if kind == "serial":
        return SerialEngine()
    if kind == "loky":
        return LokyEngine(workers)
    if kind == "dask":
        return DaskEngine(workers, address)
    raise ValueError(f"unknown engine {kind!r}; choose 'serial', 'loky' or 'dask'")
