"""The engine protocol, the settings every engine shares, and its provenance record."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

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
