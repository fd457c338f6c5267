"""The buyer's choice of sellers: ``S*(b) = argmax_S v(S) - sum_{j in S} b_j``.

Two allocation rules:

* :class:`ExactAllocation` maximises welfare at the reports over all ``2^n`` coalitions
  of a tabulated game (n <= 22). It is monotone (a seller who lowers its report stays
  selected), which is what makes Myerson's critical-bid payment truthful, and it is
  welfare-maximising, which is what makes VCG truthful.
* :class:`GreedyAllocation` adds, one at a time, the seller with the largest positive
  marginal welfare ``v(S + j) - v(S) - b_j``; it needs ``O(n^2)`` evaluations instead of
  ``2^n``. It is welfare-maximising for additive games but not in general (it can miss
  complements). It is monotone for *any* game: lowering ``b_j`` raises j's net marginal at
  every step, so the run is unchanged until j is picked, at its original step or earlier.
  Critical-bid (Myerson) payments on it are therefore truthful (tested by brute force on
  arbitrary games); VCG payments computed with a greedy welfare are not. The report says
  which rule was used.

An optional ``reserve`` is the highest report the buyer accepts: sellers reporting more
are never selected. It is the constrained case in which VCG pays more than Myerson.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game, TabulatedGame, coalitions_to_masks, masks_to_coalitions

_TIE = 1e-12


@dataclass(frozen=True)
class Allocation:
    """Which sellers the buyer takes, and the value and welfare at the reports."""

    selected: NDArray[np.bool_]
    value: float  # v(S*)
    welfare_at_bids: float  # v(S*) - sum of bids in S*

    @property
    def members(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.selected)


def subset_sums(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``out[mask] = sum_{j in mask} weights[j]`` for all ``2^n`` masks, in ``O(2^n)``."""
    n = weights.shape[0]
    out = np.zeros(2**n)
    for j in range(n):
        half = 1 << j
        out[half : 2 * half] = out[:half] + weights[j]
    return out


def feasible_masks(bids: NDArray[np.float64], reserve: float | None) -> NDArray[np.bool_] | None:
    """Which masks avoid every seller reporting above the reserve (None: all feasible)."""
    if reserve is None:
        return None
    over = bids > reserve
    if not over.any():
        return None
    bad = int(coalitions_to_masks(over[None, :])[0])
    masks = np.arange(2 ** bids.shape[0], dtype=np.int64)
    return (masks & bad) == 0


class ExactAllocation:
    """Welfare maximisation over all coalitions of a tabulated game.

    Ties are broken towards the smallest bitmask, a fixed order that keeps the rule
    monotone.
    """

    name = "exact"

    def welfare_table(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> NDArray[np.float64]:
        """``w[mask] = v(mask) - b(mask)``, with ``-inf`` for infeasible masks."""
        welfare = table.values - subset_sums(np.asarray(bids, dtype=np.float64))
        feasible = feasible_masks(np.asarray(bids), reserve)
        if feasible is not None:
            welfare = np.where(feasible, welfare, -np.inf)
        return welfare

    def __call__(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> Allocation:
        table = _as_table(game)
        welfare = self.welfare_table(table, bids, reserve)
        best = int(np.argmax(welfare >= welfare.max() - _TIE))
        selected = masks_to_coalitions([best], table.n_players)[0]
        return Allocation(selected, float(table.values[best]), float(welfare[best]))

    def best_welfare_without(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> NDArray[np.float64]:
        """``W_{-j}(b) = max_{S ∌ j} v(S) - b(S)`` for every seller ``j``."""
        welfare = self.welfare_table(table, bids, reserve)
        masks = np.arange(welfare.shape[0], dtype=np.int64)
        return np.array(
            [welfare[(masks & (1 << j)) == 0].max() for j in range(table.n_players)]
        )

    def best_welfare_with_own_bid_excluded(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> NDArray[np.float64]:
        """``A_j = max_{S ∋ j} v(S) - b(S \\ {j})``: j's best coalition ignoring its own report."""
        bids = np.asarray(bids, dtype=np.float64)
        masks = np.arange(2**table.n_players, dtype=np.int64)
        out = np.empty(table.n_players)
        for j in range(table.n_players):
            others = bids.copy()
            others[j] = 0.0
            welfare = self.welfare_table(table, others, reserve)
            out[j] = welfare[(masks & (1 << j)) != 0].max()
        return out


class GreedyAllocation:
    """Add the seller with the largest positive marginal welfare until none is positive.

    Each step evaluates ``v(S + j)`` for all remaining ``j`` in one batch. Ties go to the
    lowest index.
    """

    name = "greedy"

    def __call__(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> Allocation:
        bids = np.asarray(bids, dtype=np.float64)
        n = game.n_players
        selected = np.zeros(n, dtype=bool)
        allowed = np.ones(n, dtype=bool) if reserve is None else bids <= reserve
        current = float(game(selected[None, :])[0])
        while True:
            candidates = np.flatnonzero(~selected & allowed)
            if candidates.size == 0:
                break
            trial = np.repeat(selected[None, :], candidates.size, axis=0)
            trial[np.arange(candidates.size), candidates] = True
            gains = game(trial) - current - bids[candidates]
            best = int(np.argmax(gains))
            if gains[best] <= _TIE:
                break
            selected[candidates[best]] = True
            current = current + gains[best] + bids[candidates[best]]
        return Allocation(selected, current, current - float(bids[selected].sum()))


ALLOCATION_RULES = {"exact": ExactAllocation, "greedy": GreedyAllocation}


def _as_table(game: Game) -> TabulatedGame:
    if not isinstance(game, TabulatedGame):
        raise TypeError(
            "exact allocation needs a tabulated game (dataprice.valuation.tabulate); "
            "use the greedy allocation for large markets"
        )
    return game
