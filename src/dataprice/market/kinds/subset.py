"""The subset market: the buyer takes a set of sellers ``S*`` and values it ``v(S*)``.

``S*(b)`` comes from the allocation rule (:mod:`dataprice.market.allocation`): exact welfare
maximisation over a tabulated game (``max_S v(S) - sum_{j in S} b_j``), or the greedy rule
for large markets, optionally with a reserve (the highest report the buyer accepts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dataprice.market.allocation import Allocation, ExactAllocation, GreedyAllocation
from dataprice.market.mechanism import Outcome, settle
from dataprice.valuation.game import Game, TabulatedGame
from dataprice.valuation.methods.auto import AutoShapley
from dataprice.valuation.methods.exact import ExactShapley


@dataclass
class SubsetMarket:
    """A market where the buyer takes a subset of sellers.

    Attributes:
        game: the buyer's value ``v(S)`` (a :class:`TabulatedGame` for exact allocation).
        allocation: the allocation rule.
        reserve: highest acceptable report (None: no reserve).
        shapley_scope: ``"selected"`` (Shapley payments in ``v`` restricted to ``S*``) or
            ``"all"`` (in ``v`` over all sellers).
        shapley_values: Shapley values on the full game, when ``shapley_scope="all"``; if
            not given they are computed exactly (tabulated game) or by permutation sampling.
        seed: seed of any Monte Carlo Shapley payment.
    """

    game: Game
    allocation: ExactAllocation | GreedyAllocation = field(default_factory=ExactAllocation)
    reserve: float | None = None
    shapley_scope: str = "selected"
    shapley_values: NDArray[np.float64] | None = None
    seed: int = 0

    kind = "subset"

    def allocate(self, bids: NDArray[np.float64]) -> Allocation:
        return self.allocation(self.game, np.asarray(bids, dtype=np.float64), self.reserve)

    def outcome(self, rule: str, bids: NDArray[np.float64], allocation: Allocation,
                payments: NDArray[np.float64], costs: NDArray[np.float64] | None) -> Outcome:
        return Outcome(
            rule=rule,
            bids=bids,
            quantities=allocation.selected.astype(np.float64),
            payments=payments,
            value=allocation.value,
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
        )

    def settle(self, bids: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        return settle(self, bids, rule, costs)

    @property
    def is_exact(self) -> bool:
        return isinstance(self.allocation, ExactAllocation)

    def full_shapley(self) -> NDArray[np.float64]:
        if self.shapley_values is None:
            if isinstance(self.game, TabulatedGame):
                self.shapley_values = ExactShapley().fit(self.game).result.values
            else:
                method = AutoShapley(max_evaluations=50 * self.game.n_players**2, seed=self.seed)
                self.shapley_values = method.fit(self.game).result.values
        return self.shapley_values

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """``max_S v(S) - c(S)`` (exact when the game is tabulated; else the allocation rule's)."""
        if isinstance(self.game, TabulatedGame):
            return float(ExactAllocation().welfare_table(self.game, costs).max())
        return self.allocation(self.game, costs).welfare_at_bids

    def value_span(self) -> float:
        """``|v(N) - v(empty)|``: the scale of useful reports."""
        return abs(self.game.grand_value() - self.game.empty_value())
