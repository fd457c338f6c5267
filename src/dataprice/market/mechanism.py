"""``settle``: one round of any market, from reports to an :class:`Outcome`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Outcome:
    """Result of one settlement, in either market.

    ``quantities[j]`` is how much of seller ``j``'s data the buyer uses: 0 or 1 in the
    subset market, ``f_j(W) = sum_i w_ij^2`` in the continuous market; a seller's cost is
    ``c_j * quantities[j]``. ``utilities`` and ``welfare`` are at the true costs when they
    were given (else NaN). ``sold`` marks sellers the buyer bought from even where their
    quantity is 0 (a per-query item listed at price 0 is sold, but costs nothing); ``None``:
    a seller is selected when its quantity is positive.
    """

    rule: str
    bids: NDArray[np.float64]
    quantities: NDArray[np.float64]
    payments: NDArray[np.float64]
    value: float  # buyer's gross value v(S*) (or V(W))
    costs: NDArray[np.float64] | None = None
    sold: NDArray[np.bool_] | None = None

    @property
    def selected(self) -> NDArray[np.bool_]:
        positive = self.quantities > 0
        return positive if self.sold is None else positive | self.sold

    @property
    def buyer_surplus(self) -> float:
        """``v(S*) - sum_j p_j``."""
        return self.value - float(self.payments.sum())

    @property
    def total_paid(self) -> float:
        return float(self.payments.sum())

    @property
    def utilities(self) -> NDArray[np.float64]:
        """``u_j = p_j - c_j x_j`` at the true costs."""
        if self.costs is None:
            return np.full(self.payments.shape, np.nan)
        return self.payments - self.costs * self.quantities

    @property
    def welfare(self) -> float:
        """``v(S*) - sum_j c_j x_j`` (buyer surplus plus seller utilities)."""
        if self.costs is None:
            return float("nan")
        return self.value - float(self.costs @ self.quantities)


def settle(market, bids: NDArray[np.float64], rule, costs: NDArray[np.float64] | None = None) -> Outcome:
    """Allocate in ``market`` at the reports ``bids`` and pay under ``rule`` (a name from
    :data:`~dataprice.market.rules.RULES`, or a :class:`~dataprice.market.rules.PaymentRule`).

    Works for every market kind (:class:`~dataprice.market.protocol.Market`): the market
    allocates, the rule pays for that kind, the market says what was bought.
    """
    from dataprice.market.rules import get_rule

    rule = get_rule(rule)
    bids = np.asarray(bids, dtype=np.float64)
    allocation = market.allocate(bids)
    payments = rule.payments(market, bids, allocation)
    return market.outcome(rule.name, bids, allocation, payments, costs)
