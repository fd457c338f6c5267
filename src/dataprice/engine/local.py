"""Engines on this machine with no server: ``serial`` (in this process) and ``loky`` (local
worker processes that exit within about a second if this process dies)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from dataprice.engine.base import _ONE_THREAD, PARENT_POLL_S, _description, _version


def _exit_with_parent(parent_pid: int) -> None:
    """loky worker initializer: a daemon thread ends this worker once ``parent_pid`` is gone.

    A process whose parent dies is handed to init (or a subreaper), so ``os.getppid()``
    changes; the thread looks every :data:`PARENT_POLL_S` seconds and then calls
    ``os._exit``. Measured: orphaned loky workers otherwise stayed alive (the adversarial
    test found them 18 minutes after the parent's ``kill -9``); with this, they are gone
    within about a second. ``PR_SET_PDEATHSIG`` is not used: it fires when the *thread*
    that forked the worker exits, and loky forks from whichever thread submits or from its
    manager thread, so it could kill workers while the parent lives.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="dataprice-parent-watch", daemon=True).start()



class SerialEngine:
    """Runs everything in this process; ``submit`` returns an already completed future."""

    name = "serial"

    def start(self) -> SerialEngine:
        return self

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

    def describe(self) -> dict[str, Any]:
        return _description("serial", 1, None, False, None)

    def shutdown(self) -> None:
        pass


class LokyEngine:
    """Local worker processes through loky's reusable executor (no server needed).

    Each worker limits BLAS/OpenMP threads (numpy, scikit-learn, torch) to one, so
    ``workers`` processes use ``workers`` cores. ``put`` is the identity: arguments are
    pickled with each task. Workers exit within about a second if this process dies
    (:func:`_exit_with_parent`).
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
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    def start(self) -> LokyEngine:
        """Create the pool now (loky starts the worker processes as work arrives)."""
        self._get()
        return self

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self._get().submit(fn, *args)

    def put(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._get().map(fn, items))

    def describe(self) -> dict[str, Any]:
        return _description("loky", self.workers, None, True, _version("loky"))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
