"""The continuous market: a buyer's allocation ``W(a)`` of every seller's data varies
continuously with the reports ``a`` (the published mean-estimation model:
``W(a) = B (C + V + A/kappa)^{-1}``).

Seller ``j``'s *allocation quantity* is ``x_j(a) = f_j(W(a))`` (``sum_i w_ij^2`` in that
model); it decreases in ``j``'s own report, so the market is a single-parameter mechanism
with a monotone allocation and the payment rules of :mod:`dataprice.market.rules` apply
(Myerson through the integral of ``x_j``, VCG through social welfare).

The market works on any task that follows :class:`ContinuousTask`; a report of ``inf``
takes a seller out of the market (used by the agents for sellers who left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from dataprice.market.mechanism import Outcome, settle
from dataprice.valuation.game import Game


class ContinuousTask(Protocol):
    """What the continuous market needs from a buyer's task."""

    @property
    def n_sellers(self) -> int:
        """The number of sellers."""

    def allocation(self, reports: NDArray[np.float64], members: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
        """``W`` at ``reports`` using the sellers in ``members`` (default all)."""

    def quantities(self, allocation: NDArray[np.float64]) -> NDArray[np.float64]:
        """``x_j = f_j(W)`` per seller."""

    def value(self, allocation: NDArray[np.float64]) -> float:
        """The buyers' value ``V(W)``."""

    def welfare(self, allocation: NDArray[np.float64], costs: NDArray[np.float64]) -> float:
        """``V(W) - sum_j c_j f_j(W)``."""

    def coalition_game(self, reports: NDArray[np.float64]) -> Game:
        """``S -> V(W_S(a))``: the game Shapley payments are computed on."""


@dataclass
class ContinuousMarket:
    """A continuous market over ``task`` with an optional reserve (highest accepted report)."""

    task: ContinuousTask
    reserve: float | None = None

    kind = "continuous"

    def members(self, reports: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Sellers in the market: a finite report, at most the reserve."""
        reports = np.asarray(reports)
        members = np.isfinite(reports)
        if self.reserve is not None:
            members &= reports <= self.reserve
        return members

    def allocate(self, reports: NDArray[np.float64], exclude: int | None = None) -> NDArray[np.float64]:
        members = self.members(reports)
        if exclude is not None:
            members = members.copy()
            members[exclude] = False
        return self.task.allocation(reports, members)

    def quantity(self, j: int, u: float, reports: NDArray[np.float64]) -> float:
        """``x_j(u, a_-j)``."""
        trial = np.asarray(reports, dtype=np.float64).copy()
        trial[j] = u
        return float(self.task.quantities(self.allocate(trial))[j])

    def social_welfare(self, reports: NDArray[np.float64], exclude: int | None = None) -> float:
        """``SW_a(S) = V(W_S(a)) - sum_{j in S} a_j f_j(W_S(a))``."""
        finite = np.where(np.isfinite(reports), reports, 0.0)  # sellers out of the market use nothing
        return self.task.welfare(self.allocate(reports, exclude), finite)

    def outcome(self, rule: str, bids: NDArray[np.float64], allocation: NDArray[np.float64],
                payments: NDArray[np.float64], costs: NDArray[np.float64] | None) -> Outcome:
        return Outcome(
            rule=rule,
            bids=bids,
            quantities=self.task.quantities(allocation),
            payments=payments,
            value=self.task.value(allocation),
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
        )

    def settle(self, reports: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        return settle(self, reports, rule, costs)

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """Welfare of the allocation at the true costs (the best possible, no reserve)."""
        return self.task.welfare(self.task.allocation(costs), costs)

    def value_span(self) -> float:
        """The buyers' value with every seller reporting 0: the scale of useful reports."""
        return self.task.value(self.task.allocation(np.zeros(self.task.n_sellers)))
