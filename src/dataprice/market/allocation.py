"""The buyer's choice of sellers: ``S*(b) = argmax_S v(S) - sum_{j in S} b_j``.

Two allocation rules:

* :class:`ExactAllocation` maximises welfare at the reports over all ``2^n`` coalitions
  of a tabulated game (n <= 22). It is monotone (a seller who lowers its report stays
  selected), which is what makes Myerson's critical-bid payment truthful, and it is
  welfare-maximising, which is what makes VCG truthful.
* :class:`GreedyAllocation` adds, one at a time, the seller with the largest positive
  marginal welfare ``v(S + j) - v(S) - b_j``; it needs ``O(n^2)`` evaluations instead of
  ``2^n`` (far fewer on a submodular game, evaluated lazily: :class:`GreedyAllocation`).
  It is welfare-maximising for additive games but not in general (it can miss
  complements). It is monotone for *any* game: lowering ``b_j`` raises j's net marginal at
  every step, so the run is unchanged until j is picked, at its original step or earlier.
  Critical-bid (Myerson) payments on it are therefore truthful (tested by brute force on
  arbitrary games); VCG payments computed with a greedy welfare are not. The report says
  which rule was used.

An optional ``reserve`` is the highest report the buyer accepts: sellers reporting more
are never selected. It is the constrained case in which VCG pays more than Myerson.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation import folds
from dataprice.valuation.folds import subset_sums
from dataprice.valuation.game import (
    Game,
    GrowingCoalition,
    TabulatedGame,
    coalitions_to_masks,
    masks_to_coalitions,
)

if TYPE_CHECKING:
    from dataprice.engine.base import Engine

_TIE = 1e-12
#: Lazy greedy's rounding allowance: a net gain evaluated earlier bounds the seller's gain
#: now up to this fraction of the values involved (see :attr:`Game.submodular`).
_LAZY_RTOL = 1e-9
#: Candidates a lazy step evaluates in its first batch (then twice as many per batch).
_LAZY_BATCH = 8


@dataclass(frozen=True)
class Allocation:
    """Which sellers the buyer takes, and the value and welfare at the reports."""

    selected: NDArray[np.bool_]
    value: float  # v(S*)
    welfare_at_bids: float  # v(S*) - sum of bids in S*

    @property
    def members(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.selected)


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

    def __init__(self) -> None:
        # the last welfare table and what it was built from: settling a market builds it
        # for the allocation and again for the payments (Myerson's A_j, VCG's W_-j)
        self._last: tuple[weakref.ref, bytes, float | None, NDArray[np.float64]] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_last": None}  # a weak reference does not travel to workers

    def welfare_table(
        self, table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None = None
    ) -> NDArray[np.float64]:
        """``w[mask] = v(mask) - b(mask)``, with ``-inf`` for infeasible masks (read-only;
        the last table is remembered, so the payments of a settlement reuse the allocation's)."""
        bids = np.asarray(bids, dtype=np.float64)
        last = self._last
        if last is not None and last[0]() is table and last[1] == bids.tobytes() and last[2] == reserve:
            return last[3]
        welfare = self._welfare(table, bids, reserve)
        welfare.flags.writeable = False
        self._last = (weakref.ref(table), bids.tobytes(), reserve, welfare)
        return welfare

    @staticmethod
    def _welfare(table: TabulatedGame, bids: NDArray[np.float64], reserve: float | None) -> NDArray[np.float64]:
        welfare = table.values - subset_sums(bids)
        feasible = feasible_masks(bids, reserve)
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
            rows = self._welfare(table, others, reserve).reshape(-1, 2, half)
            with_own_excluded[j] = rows[:, 1, :].max()
        return with_own_excluded, best_without


@dataclass(frozen=True)
class GreedyTrace:
    """One greedy run, step by step: what the allocation and the critical bids need.

    ``order[t]`` is the seller taken at step ``t``, ``values[t] = v(S_t)``, and ``best[t] =
    max_k v(S_t + k) - v(S_t) - b_k`` the best net gain over the candidates at step ``t``
    (``-inf`` if none). The last state is where the run stopped (``best <= 0``).

    ``prefix[s]`` is the part of the critical bid of ``j = order[s]`` that comes from the
    steps before ``j`` was taken, where ``j`` lost to ``order[t]``:
    ``max_{t < s} [m_j(S_t) - max(g_t, 0)]`` with ``m_j(S_t) - b_j`` the net gain of ``j``
    at step ``t`` and ``g_t = best[t]`` (``prefix[0] = -inf``: the first winner lost to no
    one). A lazy run
    (``lazy``) keeps, in ``bounds``, the gains it evaluated at each step: upper bounds that
    let a run restarted from any ``S_s`` (a winner's run without it) start lazily too.
    """

    allocation: Allocation
    order: NDArray[np.int64]  # (steps,)
    values: NDArray[np.float64]  # v(S_t), (steps + 1,)
    best: NDArray[np.float64]  # (steps + 1,)
    prefix: NDArray[np.float64]  # (steps,)
    lazy: bool = False
    bounds: _Bounds | None = None


@dataclass(frozen=True)
class _Bounds:
    """The net gains a lazy run evaluated: at step ``t``, sellers ``updates[t][0]`` had gains
    ``updates[t][1]`` at ``S_t`` (step 0: every candidate), and ``scale[t]`` is the largest
    ``|v|`` seen up to then (the scale of the rounding allowance)."""

    n_players: int
    updates: list[tuple[NDArray[np.int64], NDArray[np.float64]]]
    scale: list[float]

    def at(self, step: int) -> NDArray[np.float64]:
        """Each seller's latest evaluated gain by the end of ``step`` (``+inf``: never
        evaluated). For a submodular game it bounds the seller's gain at any ``S ⊇ S_step``."""
        keys = np.full(self.n_players, np.inf)
        for sellers, gains in self.updates[: step + 1]:
            keys[sellers] = gains
        return keys


class GreedyAllocation:
    """Add the seller with the largest positive marginal welfare until none is positive.

    Each step asks the game's growing coalition (:meth:`Game.growing`) for ``v(S + j)``.
    Ties go to the lowest index. On a submodular game (:attr:`Game.submodular`) the steps
    are lazy (Minoux's accelerated greedy): ``m_j(S) = v(S + j) - v(S)`` only shrinks as
    ``S`` grows, so a net gain evaluated at an earlier step bounds the gain now; the seller
    with the largest bound is re-evaluated until the best fresh gain beats every other
    bound. Bounds get a rounding allowance of ``1e-9`` of the values involved, and the
    best fresh gain is exactly the largest gain with the lowest index among ties, so the
    lazy run takes exactly the sellers, in the order, with the values of the full one.

    Critical bids without bisection (:meth:`critical_bids`). Fix ``b_{-j}`` and let
    ``S_0 ⊂ S_1 ⊂ ...`` be the run *without* ``j``, with ``g_t`` the best other net gain at
    step ``t`` (``-inf`` if no candidate is left). Until ``j`` is taken the run with ``j``
    reporting ``u`` is this run, and at step ``t`` it takes ``j`` iff
    ``m_j(S_t) - u > max(g_t, 0)`` with ``m_j(S) = v(S + j) - v(S)``. So

        ``p_j = sup{u : j in S*(u, b_-j)} = max_t [m_j(S_t) - max(g_t, 0)]``  (capped at the reserve).

    The run without ``j`` equals the actual run before ``j`` was taken (``j`` was not the
    best there), so only its suffix is recomputed: ``O(n)`` evaluations per remaining step
    (a few, lazily) instead of a full greedy run per bisection step. The winners' suffix
    runs are independent: with an ``engine`` (:mod:`dataprice.engine`) they are spread over
    its workers, with the same results as in this process.

    Args:
        lazy: evaluate lazily; ``None`` (default): when the game declares itself submodular.
            ``True`` on a game that does not is an error (lazy greedy would be wrong there).
        engine: where :meth:`critical_bids` runs the winners' suffix runs (``None``: here).
    """

    name = "greedy"

    def __init__(self, *, lazy: bool | None = None, engine: Engine | None = None) -> None:
        self.lazy = lazy
        self.engine = engine
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

    def _is_lazy(self, game: Game) -> bool:
        if self.lazy and not game.submodular:
            raise ValueError(
                f"lazy greedy needs a submodular game; {type(game).__name__} does not declare itself "
                "submodular (Game.submodular)"
            )
        return game.submodular if self.lazy is None else self.lazy

    def trace(
        self, game: Game, bids: NDArray[np.float64], reserve: float | None = None
    ) -> GreedyTrace:
        """Run the greedy rule and keep what the critical bids need of every step."""
        bids = np.asarray(bids, dtype=np.float64)
        if self._same_market(game, bids, reserve) and self._trace is not None:
            return self._trace
        allowed = _allowed(bids, reserve)
        lazy = self._is_lazy(game)
        growth = game.growing()
        start = float(game(growth.selected[None, :])[0])
        if lazy:
            run = _lazy_run(growth, bids, np.flatnonzero(allowed), start, None, 0.0, None, exact_last=True, record=True)
            bounds: _Bounds | None = _Bounds(game.n_players, run.updates, run.scales)
        else:
            run = _greedy_run(growth, bids, allowed, start, None)
            bounds = None
        order = np.array(run.order, dtype=np.int64)
        best = np.array(run.best)
        prefix = _prefix_thresholds(game, bids, order, np.array(run.values), best, None if lazy else run.gains)
        allocation = Allocation(run.selected, run.value, run.value - float(bids[run.selected].sum()))
        self._trace = GreedyTrace(allocation, order, np.array(run.values), best, prefix, lazy, bounds)
        return self._trace

    def critical_bids(
        self,
        game: Game,
        bids: NDArray[np.float64],
        reserve: float | None = None,
        *,
        engine: Engine | None = None,
        sellers: Sequence[int] | NDArray[np.int64] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Critical bid ``p_j`` and greedy welfare without ``j``, ``W_{-j}``, of every
        selected seller (0 and ``nan`` for the others); see the class docstring.

        ``engine`` (default: the rule's own) runs the winners' suffix runs on its workers.
        ``sellers``: only these selected sellers (the others read 0 and ``nan``; not
        memoised), e.g. to time a few.
        """
        bids = np.asarray(bids, dtype=np.float64)
        trace = self.trace(game, bids, reserve)
        if self._critical is not None and sellers is None:
            return self._critical[0].copy(), self._critical[1].copy()
        n = game.n_players
        steps = list(range(trace.order.size))
        if sellers is not None:
            position = {int(j): s for s, j in enumerate(trace.order)}
            missing = [int(j) for j in sellers if int(j) not in position]
            if missing:
                raise ValueError(f"sellers {missing} are not selected: they have no critical bid")
            steps = sorted(position[int(j)] for j in sellers)
        engine = engine if engine is not None else self.engine
        results = _winner_runs(game, bids, reserve, trace, steps) if engine is None or len(steps) < 2 \
            else _winner_runs_on(engine, game, bids, reserve, trace, steps)
        critical = np.zeros(n)
        welfare_without = np.full(n, np.nan)
        for step, (price, without) in zip(steps, results, strict=True):
            j = int(trace.order[step])
            critical[j], welfare_without[j] = price, without
        if sellers is None:
            self._critical = (critical, welfare_without)
        return critical.copy(), welfare_without.copy()


def _winner_runs(
    game: Game, bids: NDArray[np.float64], reserve: float | None, trace: GreedyTrace, steps: Sequence[int]
) -> list[tuple[float, float]]:
    """``(p_j, W_{-j})`` of the winners taken at ``steps``: the run without each from the
    step it was taken (a task an engine can run: it needs nothing but its arguments)."""
    allowed = _allowed(bids, reserve)
    out = []
    for step in steps:
        j = int(trace.order[step])
        growth = game.growing()
        for k in trace.order[:step]:  # S_step, built in the run's order (the same floats)
            growth.add(int(k))
        current = float(trace.values[step])
        if trace.lazy:
            assert trace.bounds is not None
            candidates = np.flatnonzero(allowed & ~growth.selected)
            candidates = candidates[candidates != j]
            run = _lazy_run(growth, bids, candidates, current, trace.bounds.at(step), trace.bounds.scale[step], j,
                            exact_last=False, record=False)
        else:
            others = allowed.copy()
            others[j] = False
            run = _greedy_run(growth, bids, others, current, j)
        suffix = np.asarray(run.watched) - np.maximum(np.asarray(run.best), _TIE)
        best = max(float(trace.prefix[step]), suffix.max(initial=-np.inf))
        out.append((best if reserve is None else min(best, reserve), run.value - float(bids[run.selected].sum())))
    return out


def _winner_runs_on(
    engine: Engine, game: Game, bids: NDArray[np.float64], reserve: float | None, trace: GreedyTrace,
    steps: Sequence[int],
) -> list[tuple[float, float]]:
    """:func:`_winner_runs` spread over an engine: one task per worker, winners dealt
    round-robin (a winner taken early has a long suffix run, a late one a short one, so
    each task gets a similar mix); the game and trace are shipped once (``engine.put``)."""
    workers = engine.describe().get("workers") or 1
    tasks = max(1, min(int(workers), len(steps)))
    dealt = [list(steps[i::tasks]) for i in range(tasks)]
    game_ref, trace_ref = engine.put(game), engine.put(trace)
    futures = [engine.submit(_winner_runs, game_ref, bids, reserve, trace_ref, chunk) for chunk in dealt]
    by_step: dict[int, tuple[float, float]] = {}
    for chunk, future in zip(dealt, futures, strict=True):
        by_step.update(zip(chunk, future.result(), strict=True))
    return [by_step[step] for step in steps]


def _prefix_thresholds(
    game: Game,
    bids: NDArray[np.float64],
    order: NDArray[np.int64],
    values: NDArray[np.float64],
    best: NDArray[np.float64],
    rows: list[NDArray[np.float64]] | None,
) -> NDArray[np.float64]:
    """``prefix[s] = max_{t < s} [gain_t(order[s]) + b_j - max(best[t], 0)]`` (see
    :class:`GreedyTrace`). ``rows``: the full gain rows of a run that evaluated everyone;
    ``None`` (lazy run): each winner's gains at the earlier steps are evaluated now, the
    run replayed in its order with one batch per step (the winners still to come), which
    gives the same floats as evaluating everyone."""
    steps = order.size
    prefix = np.full(steps, -np.inf)
    if rows is not None:
        for s in range(1, steps):
            j = int(order[s])
            gains = np.array([rows[t][j] for t in range(s)])
            prefix[s] = (gains + bids[j] - np.maximum(best[:s], _TIE)).max()
        return prefix
    growth = game.growing()
    for t in range(steps - 1):
        later = order[t + 1 :]
        gains = growth.values(later) - values[t] - bids[later]
        prefix[t + 1 :] = np.maximum(prefix[t + 1 :], gains + bids[later] - max(float(best[t]), _TIE))
        growth.add(int(order[t]))
    return prefix


@dataclass
class _Run:
    selected: NDArray[np.bool_]
    value: float
    order: list[int]
    values: list[float]  # v(S_t)
    gains: list[NDArray[np.float64]]  # full gain rows (a full run without a watched seller)
    best: list[float]  # best net gain among candidates at each state (-inf if none)
    watched: list[float]  # m_watch(S_t) at each state (only when a seller is watched)
    updates: list[tuple[NDArray[np.int64], NDArray[np.float64]]]  # lazy: gains evaluated per step
    scales: list[float]  # lazy: largest |v| seen by each step


def _allowed(bids: NDArray[np.float64], reserve: float | None) -> NDArray[np.bool_]:
    return np.ones(bids.shape[0], dtype=bool) if reserve is None else bids <= reserve


def _greedy_run(
    growth: GrowingCoalition,
    bids: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    current: float,
    watch: int | None,
) -> _Run:
    """Greedy from ``growth``'s coalition (worth ``current``) over ``allowed`` sellers,
    evaluating every candidate at every step; with ``watch``, also record that (excluded)
    seller's marginal value ``v(S_t + watch) - v(S_t)`` at every state."""
    n = bids.shape[0]
    selected = growth.selected.copy()
    run = _Run(selected, current, [], [], [], [], [], [], [])
    while True:
        candidates = np.flatnonzero(~selected & allowed)
        asked = candidates if watch is None else np.append(candidates, watch)
        values = growth.values(asked) if asked.size else np.zeros(0)
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
        growth.add(chosen)
        run.order.append(chosen)
        current = current + best_gain + float(bids[chosen])
    run.value = current
    return run


def _lazy_run(
    growth: GrowingCoalition,
    bids: NDArray[np.float64],
    candidates: NDArray[np.int64],
    current: float,
    bounds: NDArray[np.float64] | None,
    scale: float,
    watch: int | None,
    *,
    exact_last: bool,
    record: bool,
) -> _Run:
    """Greedy from ``growth``'s coalition (worth ``current``) over ``candidates``, lazily.

    ``bounds[k]``: a net gain of ``k`` evaluated at a smaller coalition (``None``: the first
    step evaluates every candidate). At each step the candidates are taken off a heap by
    bound (largest first, lowest index among equal bounds) and evaluated, a batch at a
    time, until the best fresh gain ``g*`` (lowest index among ties) exceeds every
    remaining bound plus its rounding allowance ``1e-9 (scale + |bound|)``: then no other
    candidate can beat or tie it, so ``g*`` is the step's exact best gain, as in
    :func:`_greedy_run`. ``scale`` is the largest ``|v|`` seen so far, here or in the run
    the bounds came from. With ``exact_last=False`` the last step stops as soon as no
    bound exceeds 0 (the best gain then only needs to be known to be <= 0).
    ``watch`` and ``record`` as in :func:`_greedy_run` and :class:`_Bounds`.
    """
    run = _Run(growth.selected.copy(), current, [], [], [], [], [], [], [])
    heap: list[tuple[float, int]] = []
    if bounds is not None:
        heap = list(zip((-bounds[candidates]).tolist(), candidates.tolist(), strict=True))
        heapq.heapify(heap)
    everyone = bounds is None
    while True:
        run.values.append(current)
        best_gain, best_k = -np.inf, -1
        seen: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
        pending = watch
        size = _LAZY_BATCH
        while True:
            if everyone:
                batch, everyone = candidates, False
            else:
                picked: list[int] = []
                while heap and len(picked) < size:
                    top = -heap[0][0]
                    allowance = top + _LAZY_RTOL * (scale + abs(top)) if top > -np.inf else top
                    if best_k >= 0 and allowance < best_gain:
                        break  # neither this candidate nor any below can beat or tie the best
                    if not exact_last and allowance <= _TIE and best_gain <= _TIE:
                        break  # none can exceed 0: the run stops here
                    picked.append(heapq.heappop(heap)[1])
                if not picked:
                    break
                batch = np.array(picked, dtype=np.int64)
                size *= 2
            asked = batch if pending is None else np.append(batch, pending)
            values = growth.values(asked) if asked.size else np.zeros(0)
            if pending is not None:
                run.watched.append(float(values[-1]) - current)
                values, pending = values[:-1], None
            if batch.size == 0:
                continue
            gains = values - current - bids[batch]
            scale = max(scale, abs(current), float(np.max(np.abs(values))))
            seen.append((batch, gains))
            top_gain = float(gains.max())
            if top_gain >= best_gain:  # lowest index among the best (nan never wins)
                k = int(batch[gains == top_gain].min())
                if top_gain > best_gain or k < best_k:
                    best_gain, best_k = top_gain, k
        if pending is not None:  # no candidate evaluated: the watched seller alone
            run.watched.append(float(growth.values(np.array([pending], dtype=np.int64))[0]) - current)
        run.best.append(best_gain)
        evaluated = np.concatenate([b for b, _ in seen]) if seen else np.zeros(0, dtype=np.int64)
        fresh = np.concatenate([g for _, g in seen]) if seen else np.zeros(0)
        if record:
            run.updates.append((evaluated, fresh))
            run.scales.append(scale)
        take = best_gain > _TIE
        for k, g in zip(evaluated.tolist(), fresh.tolist(), strict=True):
            if not (take and k == best_k) and g == g:  # back on the heap, bounded by this gain
                heapq.heappush(heap, (-g, k))
        if not take:
            break
        run.selected[best_k] = True
        growth.add(best_k)
        run.order.append(best_k)
        current = current + best_gain + float(bids[best_k])
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
