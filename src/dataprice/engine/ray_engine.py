"""The Ray engine: a local Ray instance (watched by a reaper process) or an existing cluster."""

from __future__ import annotations

import math
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataprice.engine.address import (
    _check_timeout,
    _reason,
    _tcp_problem,
    _unreachable,
    address_problem,
    checked_address,
)
from dataprice.engine.base import (
    _ONE_THREAD,
    DEFAULT_CONNECT_TIMEOUT,
    PARENT_POLL_S,
    _description,
    _version,
)
from dataprice.errors import EngineError
from dataprice.inputs import excerpt, shorten


class _Reaper:
    """A reaper process (:mod:`dataprice.engine._reaper`) guarding the processes an engine started.

    Linux only (it reads ``/proc``); elsewhere :meth:`start` returns None and only the
    library's own fate-sharing applies.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process

    @classmethod
    def start(cls) -> _Reaper | None:
        if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
            return None
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).with_name("_reaper.py")), str(os.getpid()),
             str(PARENT_POLL_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def adopt(self, pids: set[int]) -> None:
        """Watch ``pids`` and, from now on, every process descending from them."""
        if pids and self._process.stdin is not None:
            self._process.stdin.write(" ".join(map(str, sorted(pids))) + "\n")
            self._process.stdin.flush()

    def stop(self) -> None:
        """End the reaper without killing anything (the engine has shut down cleanly)."""
        try:
            if self._process.stdin is not None:
                self._process.stdin.write("bye\n")
                self._process.stdin.close()
            self._process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()


def _children(pid: int) -> set[int]:
    """The pids of the direct children of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    from dataprice.engine._reaper import table

    try:
        return {child for child, (parent, _start, _state) in table().items() if parent == pid}
    except OSError:
        return set()



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


#: Seconds allowed for importing Ray in the GCS probe (not counted in ``connect_timeout``).
_RAY_IMPORT_ALLOWANCE = 60.0


def _ray_gcs_problem(address: str, timeout: float) -> str | None:
    """None if the Ray GCS at ``address`` (``HOST:PORT``) answers within ``timeout`` s, else
    why not (``"auth"``: a GCS answered but refused this process's token, or its lack).

    Ray's own connection waits cannot be bounded from this process: they are C++ settings
    read once, when Ray is imported. Measured with Ray 2.60: ``ray.init(address=...)``
    against a closed port, or a loopback server that accepts and never answers, or one
    that answers garbage, was still waiting after 150 s (each of 20 attempts waits
    5 s + 5 s + 30 s), and ``RAY_NUM_REDIS_GET_RETRIES`` is read at import too. So the
    check runs in a child process with those settings lowered to ``timeout``
    (``RAY_gcs_rpc_server_connect_timeout_s``, ``RAY_py_gcs_connect_timeout_s``) and is
    killed if it has not answered ``timeout`` s after importing Ray. A Ray whose internal
    API changed answers "cannot tell" and the check is skipped.
    """
    seconds = str(max(1, math.ceil(timeout)))
    env = dict(
        os.environ,
        RAY_gcs_rpc_server_connect_timeout_s=seconds,
        RAY_py_gcs_connect_timeout_s=seconds,
    )
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_ray_probe.py")), address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, name="dataprice-ray-probe", daemon=True).start()
    try:
        if lines.get(timeout=_RAY_IMPORT_ALLOWANCE) != "ready":
            return None  # Ray could not be imported there, or its API changed: cannot tell
        answer = lines.get(timeout=timeout)
        if answer is None:
            return None if process.wait() == 3 else f"no answer within {timeout:g} s"
        return None if answer == "ok" else answer  # "auth" or the error
    except queue.Empty:
        return f"no answer within {timeout:g} s"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _call_in_lasting_thread(fn: Callable[[], Any]) -> threading.Event | None:
    """Call ``fn`` here if this is the main thread, else in a thread that waits, after
    ``fn`` returns, until the returned event is set (the caller sets it at shutdown).

    Ray starts its GCS, raylet and helpers with ``PR_SET_PDEATHSIG``, which fires when the
    *thread* that started them exits. Measured: ``ray.init()`` in a thread that then ended
    killed the local GCS at once, and the driver died 60 s later. Starting Ray from a thread
    that lasts as long as the engine keeps the instance alive while this process lives.
    """
    if threading.current_thread() is threading.main_thread():
        fn()
        return None
    started, release, failure = threading.Event(), threading.Event(), []

    def keep() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
        started.set()
        if not failure:
            release.wait()

    threading.Thread(target=keep, name="dataprice-ray-keeper", daemon=True).start()
    started.wait()
    if failure:
        raise failure[0]
    return release


class RayEngine:
    """Ray: a local instance with ``workers`` CPUs (``address=None``) or an existing cluster.

    ``put`` stores an object once in Ray's object store; tasks receive the handle as a
    (top-level) argument and Ray hands them the object. Objects from the store are
    read-only in workers (numpy arrays without a copy), so tasks must not modify them;
    numpy arrays in results come back read-only too.
    Workers use one BLAS/OpenMP thread each. Ray is started on first use (or by
    :meth:`start`); ``shutdown()`` stops it (or disconnects from the cluster) only if this
    engine started it -- if Ray was already running in this process, the engine uses it as
    it is (and ignores ``workers`` and ``address``, once the address is well formed).

    Connecting to ``address`` checks, within ``connect_timeout`` seconds each, that the
    port accepts a TCP connection and answers as a Ray GCS (see :func:`_ray_gcs_problem`),
    then calls ``ray.init``; any failure is one :class:`EngineError` line. A local instance
    is watched by a reaper process: if this process dies, Ray's GCS, raylet and workers
    follow within about 2 s on their own (measured), but its dashboard and runtime-env
    agents wait 60 s to report the raylet's death to the dead GCS; the reaper ends them
    (and anything else left of the instance) within about a second.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.workers, self.address, self.connect_timeout = workers, address, connect_timeout
        self._ray: Any = None  # the ray module once started
        self._task: Any = None  # ray.remote(_apply) once started
        self._started = False  # this engine called ray.init (and shuts Ray down)
        self._own_instance = False  # ... and that started a local instance
        self._reaper: _Reaper | None = None
        self._keeper: threading.Event | None = None

    def _get(self):
        if self._ray is None:
            try:
                import ray
            except ImportError:
                raise EngineError(
                    "engine.kind: 'ray' needs Ray: pip install \"dataprice[ray]\""
                ) from None
            problem = address_problem("ray", self.address)
            if problem:  # checked even when Ray already runs here (and the address goes unused)
                raise EngineError(f"engine.address: {problem}")
            if not ray.is_initialized():
                if self.address is not None:
                    self._connect(ray, self.address)
                else:
                    self._start_local(ray)
                self._started = True
            self._ray, self._task = ray, ray.remote(_apply)
        return self._ray

    @staticmethod
    def _options() -> dict[str, Any]:
        import logging

        return dict(ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING)

    def _start_local(self, ray: Any) -> None:
        """Start a local instance of ``workers`` CPUs, with a reaper watching its processes."""
        reaper = _Reaper.start()
        before = _children(os.getpid())

        def init() -> None:
            # local workers inherit the environment of the processes ray.init starts;
            # cheaper than a runtime_env, with which Ray replaces its prestarted workers
            # address="local": a new instance even if `ray start` left a cluster (or its stale
            # /tmp/ray/ray_current_cluster file) on this machine, which address=None would join
            with _environment(_ONE_THREAD):
                ray.init(
                    address="local",
                    num_cpus=self.workers,
                    include_dashboard=False,
                    **self._options(),
                )

        try:
            self._keeper = _call_in_lasting_thread(init)
        except BaseException:
            if reaper is not None:
                reaper.stop()
            raise
        if reaper is not None:
            reaper.adopt(_children(os.getpid()) - before - {reaper.pid})
        self._reaper, self._own_instance = reaper, True

    def _connect(self, ray: Any, address: str) -> None:
        """Connect to the cluster at ``address``, or raise a one-line EngineError."""
        timeout = _check_timeout(self.connect_timeout)
        target = address
        if address.startswith("ray://"):
            import importlib.util

            if importlib.util.find_spec("grpc") is None:
                raise EngineError(
                    f"engine.address: {excerpt(address)} needs Ray Client: pip install 'ray[client]' "
                    "(or give the GCS address HOST:PORT)"
                )
            _, host, port = checked_address("ray", address)
            reason = _tcp_problem(host, port, timeout)
            if reason:
                raise _unreachable(
                    "ray",
                    address,
                    timeout,
                    reason,
                    "start its Ray Client server (port 10001 by default)",
                )
        else:
            target = self._bootstrap_address(ray, address)
            shown = (
                excerpt(address)
                if target == address
                else f"{excerpt(address)} (Ray connects to {target})"
            )
            gcs_host, _, gcs_port = target.rpartition(":")
            reason = _tcp_problem(gcs_host, int(gcs_port), timeout)
            if reason:
                raise EngineError(
                    f"engine.address: cannot reach the Ray cluster at {shown} within {timeout:g} s ({reason}); "
                    "start it (ray start --head) or fix the address"
                )
            reason = _ray_gcs_problem(target, timeout)
            if reason == "auth":
                if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                    raise EngineError(
                        f"engine.address: the Ray cluster at {shown} requires token authentication; set "
                        "RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN, or the token in ~/.ray/auth_token)"
                    )
                reason = None  # a token is configured: let ray.init present it (and report if it is wrong)
            if reason:
                raise EngineError(
                    f"engine.address: something listens at {shown} but it did not answer as a Ray GCS "
                    f"({shorten(reason, 120)}); give the head node's GCS port (6379 by default)"
                )
        try:
            # the GCS answered; bound ray.init's own retries (1 s apart, read at call time)
            with _environment({"RAY_gcs_server_port_wait_time_s": str(max(1, math.ceil(timeout)))}):
                ray.init(
                    address=target, runtime_env={"env_vars": dict(_ONE_THREAD)}, **self._options()
                )
        except Exception as exc:  # noqa: BLE001 - any failure to connect is one line for the user
            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001 - nothing more to undo
                pass
            raise EngineError(
                f"engine.address: cannot connect to the Ray cluster at {excerpt(address)} ({_reason(exc)})"
            ) from None

    @staticmethod
    def _bootstrap_address(ray: Any, address: str) -> str:
        """``HOST:PORT`` that ``ray.init`` will use for ``address``: ``auto`` looked up, and
        ``localhost``/``127.0.0.1`` replaced by this node's IP address, as Ray does."""
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # Ray moved its helper: check the address as given
            if address == "auto":
                raise EngineError(
                    "engine.address: 'auto' cannot be resolved with this Ray; give HOST:PORT"
                ) from None
            return address
        try:
            target = canonicalize_bootstrap_address(address)
        except Exception as exc:  # noqa: BLE001 - "no running instance" and the like
            raise EngineError(
                f"engine.address: {excerpt(address)}: {shorten(_reason(exc), 100)}; start a cluster (ray start --head) "
                "or give its HOST:PORT"
            ) from None
        if not target or ":" not in target:
            raise EngineError(
                f"engine.address: {excerpt(address)} found no Ray cluster; start one (ray start --head) "
                "or give its HOST:PORT"
            )
        return target

    def start(self) -> RayEngine:
        """Start the local instance, or connect to the cluster, now."""
        self._get()
        return self

    def submit(self, fn: Callable, *args: Any) -> RayFuture:
        ray = self._get()
        return RayFuture(self._task.remote(fn, *args), ray)

    def put(self, obj: Any):
        return self._get().put(obj)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        ray = self._get()
        return ray.get([self._task.remote(fn, item) for item in items])

    def describe(self) -> dict[str, Any]:
        """Kind, workers (the cluster's CPUs once connected), address, and whether this
        engine started the Ray instance."""
        workers: int | None = self.workers if self.address is None else None
        if self._ray is not None:
            try:
                workers = int(self._ray.cluster_resources().get("CPU", 0))
            except Exception:  # noqa: BLE001 - provenance is best-effort; the run goes on
                pass
        own = self._own_instance or (self._ray is None and self.address is None)
        return _description("ray", workers, self.address, own, _version("ray"))

    def shutdown(self) -> None:
        if self._ray is not None and self._started:
            self._ray.shutdown()
        if self._reaper is not None:
            self._reaper.stop()
        if self._keeper is not None:
            self._keeper.set()
        self._ray, self._task, self._started, self._own_instance = None, None, False, False
        self._reaper = self._keeper = None


#: How to build each kind of engine from (workers, address, connect_timeout).
