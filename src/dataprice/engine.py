"""Where work runs: serially, in local worker processes (loky), or on a Dask or Ray cluster.

An engine offers ``submit(fn, *args) -> future`` (with ``result()`` and ``cancel()``),
``put(obj)`` (ship a heavy object once; tasks receive the handle and see the object),
``map(fn, items)`` (ordered results) and ``shutdown()``. Work is addressed by seed paths
(see :mod:`dataprice.rng`), and drivers fold results in a fixed order, so results do not
depend on the engine, the number of workers or the order in which tasks finish.

* ``serial``: in this process (futures complete at submission).
* ``loky``: local processes, no server (the default for parallel work on one machine).
* ``dask``: ``dask.distributed`` -- a local cluster of ``workers`` processes, or an
  existing scheduler at ``address`` (then nothing else changes).
* ``ray``: Ray -- a local instance with ``workers`` CPUs, or an existing cluster at
  ``address`` (optional: ``pip install "dataprice[ray]"``).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from typing import Any, Protocol

from dataprice.errors import EngineError

# Worker processes use one BLAS/OpenMP thread each (numpy, scikit-learn, torch), so
# ``workers`` processes use ``workers`` cores.
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
                env=dict(_ONE_THREAD),
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
                raise EngineError("engine.kind: 'dask' needs dask.distributed: pip install 'dask[distributed]'") from None
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


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, restored after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _apply(fn: Callable, *args: Any) -> Any:
    """The one Ray task: call ``fn`` on ``args`` (Ray has resolved top-level object refs)."""
    return fn(*args)


class RayFuture(Future):
    """A :class:`concurrent.futures.Future` for one Ray task (``ref``: its ``ObjectRef``).

    It completes when the task does; ``cancel()`` also asks Ray to cancel the task
    (best-effort: a queued task never runs; a running one gets a ``KeyboardInterrupt`` at
    its next Python bytecode, so a long C call such as ``time.sleep`` runs to its end).
    A task cancelled in Ray reads as a cancelled future.
    """

    def __init__(self, ref: Any, ray: Any) -> None:
        super().__init__()
        self.ref, self._ray = ref, ray
        self._cancel_lock, self._notified = threading.RLock(), False
        ref.future().add_done_callback(self._complete)

    def _complete(self, done: Future) -> None:
        exc = done.exception()
        if isinstance(exc, self._ray.exceptions.TaskCancelledError):
            self._cancel_here()  # cancelled in Ray: reads as a cancelled future
            return
        try:
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(done.result())
        except InvalidStateError:  # cancelled here first: the outcome is not wanted
            pass

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        try:
            self._ray.cancel(self.ref)
        except Exception:  # noqa: BLE001 - best-effort: already finished, or the cluster is gone
            pass
        return self._cancel_here()

    def _cancel_here(self) -> bool:
        with self._cancel_lock:  # from the caller or from Ray's callback thread
            if not Future.cancel(self):
                return False
            if not self._notified:  # wakes concurrent.futures.wait / as_completed
                self._notified = True
                self.set_running_or_notify_cancel()
            return True


class RayEngine:
    """Ray: a local instance with ``workers`` CPUs (``address=None``) or an existing cluster.

    ``put`` stores an object once in Ray's object store; tasks receive the handle as a
    (top-level) argument and Ray hands them the object. Objects from the store are
    read-only in workers (numpy arrays without a copy), so tasks must not modify them;
    numpy arrays in results come back read-only too.
    Workers use one BLAS/OpenMP thread each. Ray is started on first use; ``shutdown()``
    stops it (or disconnects from the cluster) only if this engine started it -- if Ray
    was already running in this process, the engine uses it as it is (and ignores
    ``workers``).
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        self.workers, self.address = workers, address
        self._ray = None
        self._task = None
        self._started = False

    def _get(self):
        if self._ray is None:
            try:
                import ray
            except ImportError:
                raise EngineError("engine.kind: 'ray' needs Ray: pip install \"dataprice[ray]\"") from None
            if not ray.is_initialized():
                import logging

                options: dict[str, Any] = dict(
                    ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING,
                )
                if self.address:
                    ray.init(address=self.address, runtime_env={"env_vars": dict(_ONE_THREAD)}, **options)
                else:
                    # local workers inherit the environment of the processes ray.init starts;
                    # cheaper than a runtime_env, with which Ray replaces its prestarted workers
                    with _environment(_ONE_THREAD):
                        ray.init(num_cpus=self.workers, include_dashboard=False, **options)
                self._started = True
            self._ray, self._task = ray, ray.remote(_apply)
        return self._ray

    def submit(self, fn: Callable, *args: Any) -> RayFuture:
        ray = self._get()
        return RayFuture(self._task.remote(fn, *args), ray)

    def put(self, obj: Any):
        return self._get().put(obj)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        ray = self._get()
        return ray.get([self._task.remote(fn, item) for item in items])

    def shutdown(self) -> None:
        if self._ray is not None and self._started:
            self._ray.shutdown()
        self._ray, self._task, self._started = None, None, False


def make_engine(kind: str = "serial", workers: int = 2, address: str | None = None) -> Engine:
    """An engine by name: ``serial``, ``loky``, ``dask`` or ``ray``."""
    if kind == "serial":
        return SerialEngine()
    if kind == "loky":
        return LokyEngine(workers)
    if kind == "dask":
        return DaskEngine(workers, address)
    if kind == "ray":
        return RayEngine(workers, address)
    raise ValueError(f"unknown engine {kind!r}; choose 'serial', 'loky', 'dask' or 'ray'")
