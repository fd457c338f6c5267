"""Where work runs: serially, in local worker processes (loky), or on a Dask or Ray cluster.

An engine offers ``start()`` (connect or start workers now, so a bad address fails before
any expensive work), ``submit(fn, *args) -> future`` (with ``result()`` and ``cancel()``),
``put(obj)`` (ship a heavy object once; tasks receive the handle and see the object),
``map(fn, items)`` (ordered results), ``describe()`` (what actually ran the work, for a
run's provenance) and ``shutdown()``. Work is addressed by seed paths (see
:mod:`dataprice.rng`), and drivers fold results in a fixed order, so results do not depend
on the engine, the number of workers or the order in which tasks finish.

* ``serial``: in this process (futures complete at submission).
* ``loky``: local processes, no server (the default for parallel work on one machine).
* ``dask``: ``dask.distributed`` -- a local cluster of ``workers`` processes, or an
  existing scheduler at ``address`` (then nothing else changes).
* ``ray``: Ray -- a local instance with ``workers`` CPUs, or an existing cluster at
  ``address`` (optional: ``pip install "dataprice[ray]"``).

Two promises hold for every engine:

* **A bad address fails fast, in one line.** :func:`address_problem` checks an address's
  form without touching the network (the scenario schema calls it). ``start()`` then checks
  that something listens there and that it speaks the right protocol, each within
  ``connect_timeout`` seconds, before handing the address to Dask or Ray (both can wait for
  minutes, or forever, on an address that accepts connections and never answers).
  Failures raise :class:`~dataprice.errors.EngineError`.
* **Workers do not outlive this process.** If it dies, even by ``kill -9``, every process
  an engine started exits within about a second: loky workers watch their parent, Dask's
  local workers already do (``distributed`` closes them when a pipe from the parent
  closes), and a local Ray instance is watched by a small reaper process (Ray's own agents
  linger 60 s after their raylet dies). Processes of a cluster at ``address`` belong to
  that cluster and are left alone.
"""

from __future__ import annotations

import math
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from dataprice.errors import EngineError
from dataprice.inputs import excerpt, shorten

# Worker processes use one BLAS/OpenMP thread each (numpy, scikit-learn, torch), so
# ``workers`` processes use ``workers`` cores.
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Seconds a Dask or Ray engine waits for its scheduler or cluster before giving up.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds between two looks of a worker (or the reaper) at whether its parent still lives.
PARENT_POLL_S = 0.5

KINDS = ("serial", "loky", "dask", "ray")
_CHOOSE = "choose 'serial', 'loky', 'dask' or 'ray'"
#: The address forms each kind of engine accepts (serial and loky take none).
ADDRESS_FORMS = {
    "dask": "tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT",
    "ray": "HOST:PORT, ray://HOST:PORT or auto",
}
_SCHEMES = {"dask": ("tcp", "tls"), "ray": ("ray",)}
_WHAT = {"dask": "Dask scheduler", "ray": "Ray cluster"}
# a host name or IPv4 address (letters, digits, dots, dashes, underscores), or [IPv6]
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.%A-Za-z]+\]")


# ----------------------------------------------------------------------------- addresses


def _split_address(kind: str, address: str) -> tuple[str | None, str, int] | str:
    """``(scheme or None, host, port)`` of ``address`` for a ``kind`` engine, or what is wrong."""
    forms, what = ADDRESS_FORMS[kind], _WHAT[kind]
    scheme, rest = address.split("://", 1) if "://" in address else (None, address)
    if scheme is not None and scheme.lower() not in _SCHEMES[kind]:
        return f"unknown scheme {excerpt(scheme + '://')} in {excerpt(address)}; a {what} address is {forms}"
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        return f"{excerpt(address)} is not a {what} address (expected HOST:PORT); use {forms}"
    if not _HOST.fullmatch(host):
        return f"{excerpt(address)}: {excerpt(host)} is not a host name or IP address; use {forms}"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{excerpt(address)}: the port must be a number from 1 to 65535 (got {excerpt(port)}); use {forms}"
    return (scheme.lower() if scheme else None), host, int(port)


def address_problem(kind: str, address: Any) -> str | None:
    """What is wrong with ``address`` for an engine of ``kind``, or None if nothing is.

    Pure and cheap (no network, no imports of Dask or Ray), so the scenario schema can
    reject a bad ``engine.address`` before anything runs. The answer is one line without
    a field name (the caller adds ``engine.address:``), quoting at most a short excerpt of
    the value, and says what is allowed: Dask takes ``tcp://HOST:PORT``,
    ``tls://HOST:PORT`` or ``HOST:PORT``; Ray takes ``HOST:PORT`` (the GCS port, 6379 by
    default), ``ray://HOST:PORT`` (Ray Client) or ``auto``; ``serial`` and ``loky`` take
    none. ``None`` means "start a local cluster" for Dask and Ray. An unknown ``kind`` is
    reported too (a problem of ``engine.kind``). Whether something listens at the address
    is for the engine's ``start()`` to find out.
    """
    if kind not in KINDS:
        return f"unknown engine {excerpt(kind)}; {_CHOOSE}"
    if address is None:
        return None
    if kind not in ADDRESS_FORMS:
        return (
            f"the {kind} engine takes no address (got {excerpt(address)}); remove it, "
            "or use kind 'dask' or 'ray' to reach a cluster"
        )
    forms, what = ADDRESS_FORMS[kind], _WHAT[kind]
    if not isinstance(address, str):
        return f"expected a text address, got {type(address).__name__}; a {what} address is {forms}"
    if not address.strip():
        return f"the address is empty; omit it to start a local cluster, or give {forms}"
    if address != address.strip() or any(c.isspace() or not c.isprintable() for c in address):
        return (
            f"{excerpt(address)} contains spaces or control characters; a {what} address is {forms}"
        )
    if kind == "ray" and address == "auto":
        return None
    if kind == "ray" and address == "local":
        return f"'local' is not a cluster address; omit the address to start a local Ray instance, or give {forms}"
    split = _split_address(kind, address)
    return split if isinstance(split, str) else None


def _reason(exc: BaseException) -> str:
    """One short line for an exception from Dask, Ray or the socket layer."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return shorten(f"{type(exc).__name__}: {text}", 160)


def _tcp_problem(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` s, else why not.

    The name lookup runs in a daemon thread too, so a slow resolver cannot stretch the wait
    (a lookup still running when the time is up is left to finish on its own)."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(_reason(exc))

    thread = threading.Thread(target=attempt, name="dataprice-connect-check", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else "no answer"


def _unreachable(
    kind: str, address: str, timeout: float, reason: str, start_hint: str
) -> EngineError:
    """The error for an address where nothing accepts a connection (``start_hint``: how to start it)."""
    return EngineError(
        f"engine.address: cannot reach the {_WHAT[kind]} at {excerpt(address)} within {timeout:g} s "
        f"({reason}); {start_hint} or fix the address"
    )


def _check_timeout(timeout: Any) -> float:
    """``timeout`` as seconds, if it is a positive finite number; else a one-line EngineError."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise EngineError(
            f"engine.connect_timeout: must be a positive number of seconds (got {excerpt(timeout)})"
        )
    return float(timeout)


# ------------------------------------------------------------- workers die with their parent


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


class _Reaper:
    """A reaper process (:mod:`dataprice._reaper`) guarding the processes an engine started.

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
    from dataprice._reaper import table

    try:
        return {child for child, (parent, _start, _state) in table().items() if parent == pid}
    except OSError:
        return set()


# ----------------------------------------------------------------------------- engines


class Engine(Protocol):
    name: str

    def start(self) -> Engine: ...

    def submit(self, fn: Callable, *args: Any) -> Any: ...

    def put(self, obj: Any) -> Any: ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...

    def describe(self) -> dict[str, Any]: ...

    def shutdown(self) -> None: ...


def _description(
    kind: str, workers: int | None, address: str | None, started: bool, library: str | None
) -> dict[str, Any]:
    """The provenance record every engine's ``describe()`` returns (plain JSON types)."""
    return {
        "kind": kind,
        "workers": workers,
        "address": address,
        "started_cluster": started,
        "library": library,
    }


def _version(module: str) -> str | None:
    """``"name version"`` of an imported library (None if it was never imported)."""
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None)
    return f"{module} {version}" if version else None


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


class DaskEngine:
    """``dask.distributed``: a local cluster (``address=None``) or an existing scheduler.

    ``put`` scatters an object to every worker once (tasks receive the future and Dask
    hands them the object).

    Connecting to ``address`` is bounded by ``connect_timeout`` seconds at each of three
    steps: a TCP connection, the Dask comm handshake, then ``Client(address, timeout=...)``.
    The handshake check exists because ``Client`` bounds only the TCP connection: measured
    with distributed 2026.8, ``Client("tcp://127.0.0.1:PORT", timeout=5)`` against a
    loopback server that accepts and never answers was still waiting after 60 s (it reads
    the handshake without a timeout), and against one that answers garbage it raised
    ``MemoryError`` (it read a 3 EiB frame length). A closed port gave ``OSError`` only
    after the whole timeout (30 s by default), a malformed address a raw ``ValueError``.

    The processes of a local cluster (one per worker; the nannies run in this process)
    exit when this process dies: ``distributed`` ends each worker when a pipe from its
    parent closes (measured: gone within 2 s of a ``kill -9`` of the parent).
    """

    name = "dask"

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.workers, self.address, self.connect_timeout = workers, address, connect_timeout
        self._client = None
        self._cluster = None

    def _get(self):
        if self._client is None:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:  # pragma: no cover - depends on the installation
                raise EngineError(
                    "engine.kind: 'dask' needs dask.distributed: pip install 'dask[distributed]'"
                ) from None
            if self.address is not None:
                self._client = self._connect(Client)
            else:
                with warnings.catch_warnings():  # "port in use, hosting elsewhere": harmless here
                    warnings.simplefilter("ignore", UserWarning)
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                self._client = Client(self._cluster)
        return self._client

    def _connect(self, client_class: type):
        """A ``Client`` of the scheduler at ``self.address``, or a one-line EngineError."""
        timeout = _check_timeout(self.connect_timeout)
        problem = address_problem("dask", self.address)
        if problem:
            raise EngineError(f"engine.address: {problem}")
        address = self.address
        _, host, port = _split_address("dask", address)
        hint = "start it (dask scheduler --port PORT)"
        reason = _tcp_problem(host, port, timeout)
        if reason:
            raise _unreachable("dask", address, timeout, reason, hint)
        reason = _dask_handshake_problem(address, timeout)
        if reason:
            raise EngineError(
                f"engine.address: something listens at {excerpt(address)} but it did not answer as a Dask "
                f"scheduler ({reason}); check the host and port (a scheduler's default is 8786)"
            )
        try:
            return client_class(address, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is one line for the user
            raise EngineError(
                f"engine.address: cannot connect to the Dask scheduler at {excerpt(address)} ({_reason(exc)})"
            ) from None

    def start(self) -> DaskEngine:
        """Start the local cluster, or connect to the scheduler, now."""
        self._get()
        return self

    def submit(self, fn: Callable, *args: Any):
        return self._get().submit(fn, *args, pure=False)

    def put(self, obj: Any):
        return self._get().scatter(obj, broadcast=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        client = self._get()
        return client.gather([client.submit(fn, item, pure=False) for item in items])

    def describe(self) -> dict[str, Any]:
        """Kind, workers (as the scheduler counts them once connected), address, and
        whether this engine started the cluster."""
        workers: int | None = self.workers if self.address is None else None
        if self._client is not None:
            try:
                workers = len(self._client.nthreads())
            except Exception:  # noqa: BLE001 - provenance is best-effort; the run goes on
                pass
        return _description(
            "dask",
            workers,
            self.address,
            self.address is None,  # a local cluster is always this engine's own
            _version("distributed"),
        )

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _dask_handshake_problem(address: str, timeout: float) -> str | None:
    """None if ``address`` completes a Dask comm handshake within ``timeout`` s, else why not.

    Runs in its own thread and event loop (so it works under a running loop, e.g. Jupyter);
    ``asyncio.wait_for`` cancels the attempt cleanly when the time is up.
    """
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    async def handshake() -> None:
        args = Security().get_connection_args("client")
        comm = await asyncio.wait_for(connect(address, timeout=timeout, **args), timeout)
        await comm.close()

    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            asyncio.run(handshake())
            outcome.append(None)
        except TimeoutError:
            outcome.append(f"no handshake within {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - garbage on the wire raises anything (MemoryError too)
            outcome.append(f"not the Dask protocol: {shorten(_reason(exc), 80)}")

    thread = threading.Thread(target=attempt, name="dataprice-dask-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 2)
    return outcome[0] if outcome else f"no handshake within {timeout:g} s"


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


# Run in a child process: can the Ray GCS at argv[1] be reached? Prints "ready" once Ray is
# imported, then "ok", "auth" (a GCS answered but wants a token) or the error; exit 3 means
# "cannot tell" (Ray's API changed).
_RAY_GCS_PROBE = r"""
import sys
try:
    from ray._raylet import GcsClient
except Exception:
    sys.exit(3)
print("ready", flush=True)
try:
    GcsClient(address=sys.argv[1])
except (TypeError, AttributeError, NameError):
    sys.exit(3)
except Exception as exc:
    if type(exc).__name__ == "AuthenticationError":  # only a GCS says so
        print("auth", flush=True)
        sys.exit(0)
    print(type(exc).__name__ + ": " + " ".join(str(exc).split())[:160], flush=True)
    sys.exit(1)
print("ok", flush=True)
"""
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
        [sys.executable, "-c", _RAY_GCS_PROBE, address],
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
        self._ray = None
        self._task = None
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
                    self._connect(ray)
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

    def _connect(self, ray: Any) -> None:
        """Connect to the cluster at ``self.address``, or raise a one-line EngineError."""
        timeout = _check_timeout(self.connect_timeout)
        address = target = self.address
        if address.startswith("ray://"):
            import importlib.util

            if importlib.util.find_spec("grpc") is None:
                raise EngineError(
                    f"engine.address: {excerpt(address)} needs Ray Client: pip install 'ray[client]' "
                    "(or give the GCS address HOST:PORT)"
                )
            _, host, port = _split_address("ray", address)
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
            host, _, port = target.rpartition(":")
            reason = _tcp_problem(host, int(port), timeout)
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
ENGINES: dict[str, Callable[[int, str | None, float], Engine]] = {
    "serial": lambda workers, address, timeout: SerialEngine(),
    "loky": lambda workers, address, timeout: LokyEngine(workers),
    "dask": lambda workers, address, timeout: DaskEngine(workers, address, connect_timeout=timeout),
    "ray": lambda workers, address, timeout: RayEngine(workers, address, connect_timeout=timeout),
}
assert tuple(ENGINES) == KINDS


def make_engine(
    kind: str = "serial",
    workers: int = 2,
    address: str | None = None,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Engine:
    """An engine by name: ``serial``, ``loky``, ``dask`` or ``ray``.

    Nothing starts yet (call ``start()`` to connect or start workers now); an unknown
    ``kind`` or a malformed ``address`` raises :class:`EngineError` at once.
    """
    problem = address_problem(kind, address)
    if problem:
        raise EngineError(f"engine.{'address' if kind in KINDS else 'kind'}: {problem}")
    return ENGINES[kind](workers, address, connect_timeout)
