"""pyDVL's ``ValuationResult`` and dataprice's, each from the other.

pyDVL (``pydvl.valuation.result.ValuationResult``, 0.10) keeps per data index a value, the
variance of its samples and their count, the data names, the algorithm and a status;
dataprice's :class:`~dataprice.valuation.result.ValuationResult` keeps the same per player.
:func:`to_pydvl` and :func:`from_pydvl` map one onto the other (status ``Converged`` <->
``converged``), so values computed here can be compared or plotted with pyDVL's tools and
the other way round. pyDVL pins numpy below 2, so it is not installed with dataprice: the
conversion imports it when called (in an environment that has both; dataprice's tests run
it in ``.venv-pydvl``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dataprice.errors import DataError
from dataprice.valuation.result import ValuationResult


def to_pydvl(result: ValuationResult) -> Any:
    """``result`` as a pyDVL ``ValuationResult`` (data indices ``0..n-1`` in player order)."""
    try:
        from pydvl.utils.status import Status
        from pydvl.valuation.result import ValuationResult as PyDVLResult
    except ImportError:
        raise DataError("to_pydvl needs pyDVL (pip install pyDVL; it pins numpy below 2, so use its own "
                        "environment)") from None
    return PyDVLResult(values=np.asarray(result.values, dtype=np.float64),
                       variances=np.asarray(result.variances, dtype=np.float64),
                       counts=np.asarray(result.counts, dtype=np.int_),
                       indices=np.arange(result.n_players), data_names=np.array(result.player_names, dtype=object),
                       algorithm=result.method, status=Status.Converged if result.converged else Status.Pending)


def from_pydvl(result: Any, method: str | None = None) -> ValuationResult:
    """A pyDVL ``ValuationResult`` as dataprice's, players in the order of pyDVL's data
    indices (a sorted pyDVL result comes back in index order)."""
    for attribute in ("values", "variances", "counts", "indices", "names", "status"):
        if not hasattr(result, attribute):
            raise DataError(f"from_pydvl: {type(result).__name__} has no {attribute!r}; expected a pyDVL "
                            "ValuationResult")
    order = np.argsort(np.asarray(result.indices), kind="stable")
    status = str(getattr(result.status, "value", result.status))
    return ValuationResult(
        values=np.asarray(result.values, dtype=np.float64)[order],
        variances=np.asarray(result.variances, dtype=np.float64)[order],
        counts=np.asarray(result.counts, dtype=np.int64)[order],
        player_names=tuple(str(x) for x in np.asarray(result.names)[order]),
        method=method or str(getattr(result, "algorithm", "") or "pydvl"),
        converged=status == "converged",
    )
