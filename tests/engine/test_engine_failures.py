"""Engines fail fast and in one line on a bad address, and their workers die with their parent.

Every server here listens on loopback only. Ray replaces ``127.0.0.1`` in an address with
this machine's network address (as ``ray.init`` does), so the servers that must be reached
*through* Ray listen on ``127.0.0.2``, another loopback address Ray leaves alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataprice.engine import (
    ADDRESS_FORMS,
    DaskEngine,
    LokyEngine,
    RayEngine,
    SerialEngine,
    address_problem,
    make_engine,
)
from dataprice.errors import EngineError

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMEOUT = 2.0  # connect_timeout in these tests
LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc")


# ----------------------------------------------------------------------------- helpers


def _closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that was free a moment ago (nothing listens there now)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _server(host: str, reply: bytes | None) -> Iterator[int]:
    """A loopback server that accepts every connection and then says nothing (``reply``
    None: a black hole) or sends ``reply`` once; yields its port."""
    try:
        listener = socket.create_server((host, 0))
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    kept: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            kept.append(conn)  # held open: the client waits for an answer that never comes
            if reply is not None:
                try:
                    conn.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in kept:
            conn.close()
        listener.close()


GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\ngarbage" * 8


@pytest.fixture
def black_hole() -> Iterator[int]:
    yield from _server("127.0.0.1", None)


@pytest.fixture
def garbage_server() -> Iterator[int]:
    yield from _server("127.0.0.1", GARBAGE)


@pytest.fixture
def black_hole_2() -> Iterator[int]:
    yield from _server("127.0.0.2", None)


@pytest.fixture
def garbage_server_2() -> Iterator[int]:
    yield from _server("127.0.0.2", GARBAGE)


def _start_fails(engine, limit: float) -> str:
    """``engine.start()`` raises EngineError within ``limit`` s; its one-line message."""
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        engine.start()
    elapsed = time.monotonic() - started
    engine.shutdown()
    message = str(info.value)
    assert elapsed < limit, f"took {elapsed:.1f} s: {message}"
    assert "\n" not in message and message.startswith("engine.address: "), message
    assert len(message) < 400, message
    return message


@pytest.fixture
def no_ray_running():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # the engine would use that instance and never connect
        pytest.skip("Ray already runs in this process")
    yield


# ----------------------------------------------------------------------------- address forms


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("serial", None),
        ("loky", None),
        ("dask", None),
        ("ray", None),
        ("dask", "tcp://127.0.0.1:8786"),
        ("dask", "tls://scheduler.example.org:8786"),
        ("dask", "127.0.0.1:8786"),
        ("dask", "[::1]:8786"),
        ("dask", "TCP://h:1"),
        ("ray", "127.0.0.1:6379"),
        ("ray", "head-node:6379"),
        ("ray", "ray://head-node:10001"),
        ("ray", "auto"),
    ],
)
def test_the_documented_address_forms_pass(kind, address):
    assert address_problem(kind, address) is None


@pytest.mark.parametrize(
    ("kind", "address", "says"),
    [
        ("dask", "nonsense", "is not a Dask scheduler address"),
        ("dask", "http://127.0.0.1:8786", "unknown scheme 'http://'"),
        ("dask", "ws://127.0.0.1:8786", "unknown scheme 'ws://'"),
        ("dask", "tcp://127.0.0.1", "expected HOST:PORT"),
        ("dask", "127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("dask", "127.0.0.1:65536", "the port must be a number from 1 to 65535"),
        ("dask", "127.0.0.1:port", "the port must be a number"),
        ("dask", "tcp://h:8786/path", "the port must be a number"),
        ("dask", ":8786", "expected HOST:PORT"),
        ("dask", "bad host:8786", "spaces or control characters"),
        ("dask", " 127.0.0.1:8786", "spaces or control characters"),
        ("dask", "", "the address is empty"),
        ("dask", "::1:8786", "is not a host name or IP address"),
        ("dask", 8786, "expected a text address, got int"),
        ("ray", "nonsense", "is not a Ray cluster address"),
        ("ray", "tcp://127.0.0.1:6379", "unknown scheme 'tcp://'"),
        ("ray", "http://127.0.0.1:8265", "unknown scheme 'http://'"),
        ("ray", "os://x:1", "unknown scheme 'os://'"),  # ray.init would import a module named "os"
        ("ray", "local", "omit the address to start a local Ray instance"),
        ("ray", "ray://head", "expected HOST:PORT"),
        ("loky", "127.0.0.1:1", "the loky engine takes no address"),
        ("serial", "x", "the serial engine takes no address"),
        ("spark", None, "unknown engine 'spark'; choose 'serial', 'loky', 'dask' or 'ray'"),
    ],
)
def test_a_bad_address_is_one_line_that_says_what_is_allowed(kind, address, says):
    problem = address_problem(kind, address)
    assert problem is not None and says in problem, problem
    assert "\n" not in problem
    if kind in ADDRESS_FORMS and "empty" not in problem:
        assert ADDRESS_FORMS[kind] in problem


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_a_huge_address_is_quoted_as_a_short_excerpt(kind):
    problem = address_problem(kind, "x" * 100_000 + ":1\x00")
    assert problem is not None and len(problem) < 300 and "(100,008 characters)" in problem


def test_make_engine_rejects_bad_kinds_and_addresses_at_once():
    with pytest.raises(EngineError, match="^engine.kind: unknown engine 'spark'"):
        make_engine("spark")
    with pytest.raises(EngineError, match="^engine.address: the loky engine takes no address"):
        make_engine("loky", 2, "127.0.0.1:1")
    with pytest.raises(
        EngineError, match="^engine.address: 'nonsense' is not a Dask scheduler address"
    ):
        make_engine("dask", 2, "nonsense")
    engine = make_engine("dask", 2, "127.0.0.1:1", connect_timeout=3)
    assert isinstance(engine, DaskEngine) and engine.connect_timeout == 3


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "10", True])
def test_a_bad_connect_timeout_is_one_line(timeout):
    with pytest.raises(
        EngineError, match="^engine.connect_timeout: must be a positive number of seconds"
    ):
        DaskEngine(2, "127.0.0.1:1", connect_timeout=timeout).start()


# ----------------------------------------------------------------------------- Dask


@pytest.mark.parametrize("address", ["nonsense", "http://127.0.0.1:8786", "tcp://127.0.0.1"])
def test_dask_bad_address_fails_before_any_connection(address):
    _start_fails(DaskEngine(2, address, connect_timeout=TIMEOUT), 2.0)


def test_dask_refusing_port():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    message = _start_fails(DaskEngine(2, address, connect_timeout=TIMEOUT), TIMEOUT + 5)
    assert message == (
        f"engine.address: cannot reach the Dask scheduler at {address!r} within 2 s "
        "(connection refused); start it (dask scheduler --port PORT) or fix the address"
    )


def test_dask_black_hole(black_hole):
    # Client(address, timeout=...) alone waits forever here (the handshake read has no timeout)
    message = _start_fails(
        DaskEngine(2, f"127.0.0.1:{black_hole}", connect_timeout=TIMEOUT), TIMEOUT + 5
    )
    assert "did not answer as a Dask scheduler (no handshake within 2 s)" in message


def test_dask_garbage(garbage_server):
    # Client alone raises MemoryError here (it reads a frame length of exabytes)
    message = _start_fails(
        DaskEngine(2, f"tcp://127.0.0.1:{garbage_server}", connect_timeout=TIMEOUT), TIMEOUT + 5
    )
    assert "did not answer as a Dask scheduler (not the Dask protocol" in message


def test_dask_connects_to_a_running_scheduler():
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        engine = DaskEngine(5, cluster.scheduler_address, connect_timeout=TIMEOUT).start()
        try:
            assert engine.map(abs, [-3, 1, -2]) == [3, 1, 2]
            described = engine.describe()
            assert described["library"].startswith("distributed ")
            assert {k: described[k] for k in ("kind", "workers", "address", "started_cluster")} == {
                "kind": "dask",
                "workers": 1,
                "address": cluster.scheduler_address,
                "started_cluster": False,
            }
        finally:
            engine.shutdown()
        assert cluster.status.name == "running", (
            "an engine that did not start the cluster must not stop it"
        )


# ----------------------------------------------------------------------------- Ray


@pytest.mark.parametrize(
    "address", ["nonsense", "tcp://127.0.0.1:6379", "foo://127.0.0.1:1", "local"]
)
def test_ray_bad_address_fails_before_any_connection(address):
    pytest.importorskip("ray")
    _start_fails(RayEngine(2, address, connect_timeout=TIMEOUT), 2.0)


def test_ray_refusing_port(no_ray_running):
    address = f"127.0.0.1:{_closed_port()}"
    message = _start_fails(RayEngine(2, address, connect_timeout=TIMEOUT), TIMEOUT + 5)
    assert "cannot reach the Ray cluster at" in message and "(connection refused)" in message


def test_ray_black_hole(no_ray_running, black_hole_2):
    # ray.init alone was still waiting after 150 s here; the probe waits TIMEOUT after
    # importing Ray in a child process (a second or two), hence the wider margin
    message = _start_fails(
        RayEngine(2, f"127.0.0.2:{black_hole_2}", connect_timeout=TIMEOUT), TIMEOUT + 10
    )
    assert "did not answer as a Ray GCS" in message


def test_ray_garbage(no_ray_running, garbage_server_2):
    message = _start_fails(
        RayEngine(2, f"127.0.0.2:{garbage_server_2}", connect_timeout=TIMEOUT), TIMEOUT + 10
    )
    assert "did not answer as a Ray GCS" in message


def test_ray_client_address_without_ray_client(no_ray_running, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a)
    )
    message = _start_fails(RayEngine(2, "ray://127.0.0.1:10001", connect_timeout=TIMEOUT), 2.0)
    assert "needs Ray Client: pip install 'ray[client]'" in message


# ----------------------------------------------------------------------------- provenance


def test_every_engine_describes_itself():
    assert SerialEngine().describe() == {
        "kind": "serial",
        "workers": 1,
        "address": None,
        "started_cluster": False,
        "library": None,
    }
    loky = LokyEngine(3).describe()
    assert {k: loky[k] for k in ("kind", "workers", "address", "started_cluster")} == {
        "kind": "loky",
        "workers": 3,
        "address": None,
        "started_cluster": True,
    }
    assert DaskEngine(2).describe()["started_cluster"] is True
    remote = DaskEngine(2, "tcp://127.0.0.1:1").describe()
    assert (remote["address"], remote["workers"], remote["started_cluster"]) == (
        "tcp://127.0.0.1:1",
        None,
        False,
    )
    assert RayEngine(4).describe()["workers"] == 4
    assert RayEngine(4, "auto").describe()["started_cluster"] is False


def test_start_is_chainable_and_cheap_for_local_engines():
    serial = SerialEngine().start()
    assert serial.map(abs, [-1]) == [1]
    loky = LokyEngine(2).start()
    try:
        assert loky.map(abs, [-1, -2]) == [1, 2]
    finally:
        loky.shutdown()


# ------------------------------------------------------------ workers die with their parent


def _proc_table() -> dict[int, tuple[int, str]]:
    """{pid: (ppid, state)} of every process, from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                data = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            fields = data[data.rfind(b")") + 2 :].split()
            table[int(name)] = (int(fields[1]), fields[0].decode())
    return table


def _descendants(pid: int) -> set[int]:
    table = _proc_table()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie -- state Z -- has exited: in a container,
    PID 1 may never reap it)."""
    table = _proc_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


_CHILD = """
import os, sys
from dataprice.engine import make_engine
engine = make_engine(sys.argv[1], 2).start()
pids = {engine.submit(os.getpid).result() for _ in range(6)}
print("ready", *sorted(pids), flush=True)
sys.stdin.read()
"""


def _kill_parent_and_time_orphans(kind: str, start_limit: float) -> tuple[set[int], float]:
    """Start an engine of ``kind`` in a child process, SIGKILL the child once tasks ran, and
    return (the processes it had started, seconds until the last of them exited)."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + start_limit
        line = ""
        while not line.startswith("ready") and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert line.startswith("ready"), (
            f"the {kind} engine did not start (exit code {child.poll()})"
        )
        task_pids = {int(p) for p in line.split()[1:]}
        started = _descendants(child.pid)
        assert task_pids and task_pids <= started, (task_pids, started)
    except BaseException:
        for pid in _descendants(child.pid):
            os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()
        raise
    os.kill(child.pid, signal.SIGKILL)
    killed = time.monotonic()
    child.wait()
    while _alive(started) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    left = _alive(started)
    for pid in left:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, (
        f"{kind}: {len(left)} of {len(started)} processes outlived their parent by 10 s: {left}"
    )
    return started, time.monotonic() - killed


needs_proc = pytest.mark.skipif(not LINUX, reason="reads /proc")


@needs_proc
def test_loky_workers_die_with_their_parent():
    started, seconds = _kill_parent_and_time_orphans("loky", 60)
    assert seconds < 5  # measured about 0.7 s; before this change, still alive 18 minutes later


@needs_proc
def test_dask_local_workers_die_with_their_parent():
    pytest.importorskip("dask.distributed")
    started, seconds = _kill_parent_and_time_orphans("dask", 60)
    assert seconds < 5  # distributed closes its workers itself: measured about 0.1 s


@pytest.mark.slow  # about 20 s here: starting Ray in the child takes most of it
@needs_proc
def test_local_ray_instance_dies_with_its_parent():
    pytest.importorskip("ray")
    started, seconds = _kill_parent_and_time_orphans("ray", 90)
    assert len(started) >= 4  # reaper, GCS, raylet, workers, agents...
    assert seconds < 5  # Ray's agents alone linger 60 s; the reaper ends them within a second


def test_loky_workers_started_from_a_thread_outlive_the_thread():
    """Workers watch their parent *process*: a thread that ends does not end them."""
    engine = LokyEngine(2)
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.extend(engine.map(_pid, range(4))))
    thread.start()
    thread.join()
    time.sleep(1.0)  # two looks of the watcher
    try:
        again = engine.map(_pid, range(4))
        assert set(again) & set(first), "the workers of the ended thread's pool were replaced"
    finally:
        engine.shutdown()


def _pid(_: object) -> int:
    return os.getpid()


_RAY_FROM_A_THREAD = """
import threading, time
from dataprice.engine import RayEngine
engine = RayEngine(1)
starter = threading.Thread(target=engine.start)
starter.start()
starter.join()
time.sleep(3)  # Ray's processes die with the thread that started them, unless it lasts
try:
    print("ok", engine.map(abs, [-1, -2]), flush=True)
finally:
    engine.shutdown()
"""


@pytest.mark.slow  # starts Ray: about 10 s here
def test_ray_started_from_a_thread_that_ends_keeps_running():
    pytest.importorskip("ray")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", _RAY_FROM_A_THREAD], capture_output=True, text=True, env=env, timeout=180
    )
    assert "ok [1, 2]" in done.stdout, done.stderr[-2000:]
