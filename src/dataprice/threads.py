"""One BLAS thread where work is already parallel, or runs on the serial engine.

numpy's BLAS (OpenBLAS here) starts a thread per core for every matrix product. The work
dataprice does is many *small* products (one logistic fit per coalition, a block of
coalitions against per-seller masks), where those threads cost more than they give: one
small logistic fit took 257 ms with the default threads against 24.5 ms on one thread,
and the 10,000-seller greedy market 185 s against 42 s (issue 18, 2 cores). Engine
workers already run with one thread each (``OMP_NUM_THREADS=1`` and friends, set before
they start); the serial engine runs in the main process, whose BLAS is limited here for
the duration of the work, with threadpoolctl (scikit-learn's dependency). Only BLAS is
limited: torch's own thread pool (embedding, language-model passes) is left alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def blas_controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded (numpy's among them)."""
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # scikit-learn's dependency

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which the loaded BLAS libraries use one thread (restored on exit)."""
    return blas_controller().limit(limits=1, user_api="blas")
