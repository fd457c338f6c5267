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
* any ``concurrent.futures.Executor`` given to ``run_scenario(engine=...)`` or
  ``dp.run(engine=...)`` (:mod:`.executor`): the caller's pool, never shut down by dataprice.

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

Layout: :mod:`.base` (the protocol), :mod:`.address` (address checks), :mod:`.local`
(serial, loky), :mod:`.dask_engine`, :mod:`.ray_engine` (with the reaper script
``_reaper.py`` and the GCS probe ``_ray_probe.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from dataprice.engine.address import ADDRESS_FORMS, address_problem
from dataprice.engine.base import DEFAULT_CONNECT_TIMEOUT, KINDS, PARENT_POLL_S, Engine
from dataprice.engine.dask_engine import DaskEngine
from dataprice.engine.executor import ExecutorEngine, as_engine
from dataprice.engine.local import LokyEngine, SerialEngine
from dataprice.engine.ray_engine import RayEngine, RayFuture
from dataprice.errors import EngineError

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


__all__ = ["ADDRESS_FORMS", "DEFAULT_CONNECT_TIMEOUT", "ENGINES", "KINDS", "PARENT_POLL_S", "DaskEngine", "Engine",
           "ExecutorEngine", "LokyEngine", "RayEngine", "RayFuture", "SerialEngine", "address_problem", "as_engine",
           "make_engine"]
