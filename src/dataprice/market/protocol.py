"""What every market is: the protocol the runner, the agents and the payment rules use.

A market *kind* (``subset``, ``continuous``, ``per_query`` -- :mod:`dataprice.market.kinds`)
allocates at reports, says what an allocation bought, and knows the best welfare at the
true costs. Payment rules (:mod:`dataprice.market.rules`) are separate objects that pay for
the kinds they support; :func:`~dataprice.market.mechanism.settle` puts the two together.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dataprice.market.mechanism import Outcome


@runtime_checkable
class Market(Protocol):
    """A market of one kind.

    Attributes:
        kind: the market kind; a payment rule is used only in the kinds it supports.
    """

    kind: str

    def allocate(self, bids: NDArray[np.float64]) -> Any:
        """The allocation at the reports (its type is the kind's own)."""

    def outcome(self, rule: str, bids: NDArray[np.float64], allocation: Any, payments: NDArray[np.float64],
                costs: NDArray[np.float64] | None) -> Outcome:
        """The :class:`Outcome` of ``allocation`` with ``payments`` (quantities, the buyer's value)."""

    def settle(self, bids: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        """Allocate and pay under ``rule`` (:func:`~dataprice.market.mechanism.settle`)."""

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """The best welfare at the true ``costs`` (the efficiency benchmark)."""

    def value_span(self) -> float:
        """The scale of the buyer's value (the range of reports worth auditing)."""
