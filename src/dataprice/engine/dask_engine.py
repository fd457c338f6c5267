"""The Dask engine: ``dask.distributed``, a local cluster or an existing scheduler."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from dataprice.engine.address import (
    _check_timeout,
    _reason,
    _tcp_problem,
    _unreachable,
    checked_address,
)
from dataprice.engine.base import DEFAULT_CONNECT_TIMEOUT, _description, _version
from dataprice.errors import EngineError
from dataprice.inputs import excerpt, shorten


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
        self._client: Any = None  # distributed.Client once started
        self._cluster: Any = None  # a LocalCluster when this engine started one

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
        address, host, port = checked_address("dask", self.address)
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
