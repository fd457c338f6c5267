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

from dataprice.valuation import folds
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
        """``W_{-j}(b) = max_{S ∌ j} v(S) - b(S)`` for every seller ``j`` (one fold)."""
        return self.welfare_extremes(table, bids, reserve)[1]

    def best_welfare_with_own_bid_excluded(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> NDArray[np.float64]:
        """``A_j = max_{S ∋ j} v(S) - b(S \\ {j})``: j's best coalition ignoring its own report."""
        return self.welfare_extremes(table, bids, reserve)[0]

    def welfare_extremes(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(A_j, W_{-j})`` for every seller from one fold of the welfare table
        (:func:`dataprice.valuation.folds.maxima`): ``W_{-j}`` is the best welfare without
        ``j`` and ``A_j = b_j + max_{S ∋ j} [v(S) - b(S)]``, the best with ``j`` when its own
        report is not counted. A seller above the reserve is barred from every coalition of
        the welfare table, so its ``A_j`` (over coalitions feasible for the others) is read
        from a table with its own report set to 0, one pass per such seller.
        """
        bids = np.asarray(bids, dtype=np.float64)
        welfare = self.welfare_table(table, bids, reserve)
        best_with, best_without = folds.maxima(welfare)
        with_own_excluded = best_with + bids
        barred = np.flatnonzero(bids > reserve) if reserve is not None else np.zeros(0, dtype=np.int64)
        for j in barred:
            others = bids.copy()
            others[j] = 0.0
            half = 1 << int(j)
            rows = self.welfare_table(table, others, reserve).reshape(-1, 2, half)
            with_own_excluded[j] = rows[:, 1, :].max()
        return with_own_excluded, best_without


@dataclass(frozen=True)
class GreedyTrace:
    """One greedy run, step by step.

    ``gains[t, k] = v(S_t + k) - v(S_t) - b_k`` for the candidates at step ``t`` (``-inf``
    for sellers already taken or barred by the reserve); ``order[t]`` is the seller taken at
    step ``t``. The last row is the state where the run stopped (no positive gain).
    """

    allocation: Allocation
    gains: NDArray[np.float64]  # (steps + 1, n)
    order: NDArray[np.int64]  # (steps,)
    values: NDArray[np.float64]  # v(S_t), (steps + 1,)


class GreedyAllocation:
    """Add the seller with the largest positive marginal welfare until none is positive.

    Each step evaluates ``v(S + j)`` for all remaining ``j`` in one batch
    (:meth:`Game.values_with`). Ties go to the lowest index.

    Critical bids without bisection (:meth:`critical_bids`). Fix ``b_{-j}`` and let
    ``S_0 ⊂ S_1 ⊂ ...`` be the run *without* ``j``, with ``g_t`` the best other net gain at
    step ``t`` (``-inf`` if no candidate is left). Until ``j`` is taken the run with ``j``
    reporting ``u`` is this run, and at step ``t`` it takes ``j`` iff
    ``m_j(S_t) - u > max(g_t, 0)`` with ``m_j(S) = v(S + j) - v(S)``. So

        ``p_j = sup{u : j in S*(u, b_-j)} = max_t [m_j(S_t) - max(g_t, 0)]``  (capped at the reserve).

    The run without ``j`` equals the actual run before ``j`` was taken (``j`` was not the
    best there), so only its suffix is recomputed: ``O(n)`` evaluations per remaining step
    instead of a full greedy run per bisection step.
    """

    name = "greedy"

    def __init__(self) -> None:
        # the last market asked about: settling allocates, then prices the same reports
        # (and Myerson and VCG share the runs without each winner), so each is done once
        self._last: tuple | None = None
        self._trace: GreedyTrace | None = None
        self._critical: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def __call__(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> Allocation:
        return self.trace(game, bids, reserve).allocation

    def _same_market(self, game: Game, bids: NDArray[np.float64], reserve: float | None) -> bool:
        """True if (game, bids, reserve) is the market of the memo; else reset the memo."""
        if self._last is not None and self._last[0] is game and self._last[2] == reserve and np.array_equal(
            self._last[1], bids
        ):
            return True
        self._last, self._trace, self._critical = (game, bids.copy(), reserve), None, None
        return False

    def trace(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> GreedyTrace:
        """Run the greedy rule and keep every step's gains (for critical bids)."""
        bids = np.asarray(bids, dtype=np.float64)
        if self._same_market(game, bids, reserve) and self._trace is not None:
            return self._trace
        allowed = _allowed(bids, reserve)
        run = _greedy_run(game, bids, allowed, np.zeros(game.n_players, dtype=bool), None, None)
        allocation = Allocation(run.selected, run.value, run.value - float(bids[run.selected].sum()))
        self._trace = GreedyTrace(allocation, np.array(run.gains), np.array(run.order, dtype=np.int64), np.array(run.values))
        return self._trace

    def critical_bids(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Critical bid ``p_j`` and greedy welfare without ``j``, ``W_{-j}``, of every
        selected seller (0 and ``nan`` for the others); see the class docstring."""
        bids = np.asarray(bids, dtype=np.float64)
        trace = self.trace(game, bids, reserve)
        if self._critical is not None:
            return self._critical[0].copy(), self._critical[1].copy()
        n = game.n_players
        allowed = _allowed(bids, reserve)
        critical = np.zeros(n)
        welfare_without = np.full(n, np.nan)
        for step, j in enumerate(trace.order):
            # before step: j lost to trace.order[t]; threshold m_j(S_t) - max(g_t, 0)
            prefix = trace.gains[:step, j] + bids[j] - np.maximum(trace.gains[np.arange(step), trace.order[:step]], _TIE)
            start = np.zeros(n, dtype=bool)
            start[trace.order[:step]] = True
            others = allowed.copy()
            others[j] = False
            run = _greedy_run(game, bids, others, start, float(trace.values[step]), j)
            suffix = np.asarray(run.watched) - np.maximum(np.asarray(run.best), _TIE)
            best = max(prefix.max(initial=-np.inf), suffix.max(initial=-np.inf))
            critical[j] = best if reserve is None else min(best, reserve)
            welfare_without[j] = run.value - float(bids[run.selected].sum())
        self._critical = (critical, welfare_without)
        return critical.copy(), welfare_without.copy()


@dataclass
class _Run:
    selected: NDArray[np.bool_]
    value: float
    order: list[int]
    values: list[float]  # v(S_t)
    gains: list[NDArray[np.float64]]  # full gain rows (only when no seller is watched)
    best: list[float]  # best net gain among candidates at each state (-inf if none)
    watched: list[float]  # m_watch(S_t) at each state (only when a seller is watched)


def _allowed(bids: NDArray[np.float64], reserve: float | None) -> NDArray[np.bool_]:
    return np.ones(bids.shape[0], dtype=bool) if reserve is None else bids <= reserve


def _greedy_run(
    game: Game,
    bids: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    start: NDArray[np.bool_],
    start_value: float | None,
    watch: int | None,
) -> _Run:
    """Greedy from ``start`` over ``allowed`` sellers; with ``watch``, also record that
    (excluded) seller's marginal value ``v(S_t + watch) - v(S_t)`` at every state."""
    n = game.n_players
    selected = start.copy()
    current = float(game(selected[None, :])[0]) if start_value is None else start_value
    run = _Run(selected, current, [], [], [], [], [])
    while True:
        candidates = np.flatnonzero(~selected & allowed)
        asked = candidates if watch is None else np.append(candidates, watch)
        values = game.values_with(selected, asked) if asked.size else np.zeros(0)
        if watch is not None:
            run.watched.append(float(values[-1]) - current)
            values = values[:-1]
        gains = values - current - bids[candidates]
        run.values.append(current)
        if watch is None:
            row = np.full(n, -np.inf)
            row[candidates] = gains
            run.gains.append(row)
        best = int(np.argmax(gains)) if candidates.size else -1
        best_gain = float(gains[best]) if candidates.size else -np.inf
        run.best.append(best_gain)
        if best_gain <= _TIE:
            break
        chosen = int(candidates[best])
        selected[chosen] = True
        run.order.append(chosen)
        current = current + best_gain + float(bids[chosen])
    run.value = current
    return run


ALLOCATION_RULES: dict[str, type[ExactAllocation] | type[GreedyAllocation]] = {
    "exact": ExactAllocation,
    "greedy": GreedyAllocation,
}


def _as_table(game: Game) -> TabulatedGame:
    if not isinstance(game, TabulatedGame):
        raise TypeError(
            "exact allocation needs a tabulated game (dataprice.valuation.tabulate); "
            "use the greedy allocation for large markets"
        )
    return game
