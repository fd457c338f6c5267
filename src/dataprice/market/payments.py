"""Payment rules: how much each selected seller is paid, given the reports.

All rules pay 0 to unselected sellers. For a selected seller ``j`` in ``S* = S*(b)``:

* **LOO**: ``p_j = v(S*) - v(S* \\ {j})``.
* **Shapley**: the Shapley value of ``j`` in ``v`` restricted to ``S*`` (``scope="selected"``)
  or in the full game ``v`` over all sellers (``scope="all"``); ``v(empty)`` counts.
* **Myerson**: the critical bid, the largest report with which ``j`` is still selected,
  ``p_j = sup{u : j in S*(u, b_-j)}``, i.e. ``b_j x_j(b) + int_{b_j}^inf x_j(u, b_-j) du`` for
  a 0/1 allocation. Truthful for any *monotone* allocation rule; with exact welfare
  maximisation it is ``A_j - W_{-j}(b)`` (see :mod:`dataprice.market.allocation`), capped at
  the reserve.
* **VCG** (Clarke pivot): ``p_j = b_j + W(b) - W_{-j}(b)`` with ``W`` the best welfare at the
  reports; truthful when the allocation maximises welfare exactly.
* **Pay-as-bid** (first price): ``p_j = b_j``; the reference manipulable rule (overbidding pays).

LOO and Shapley pay for value created, not for cost incurred: they ignore the report once
the seller is selected, so a seller with a high cost may be paid less than its cost (not
individually rational), and since the report changes who is selected, misreporting can pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dataprice.market.allocation import Allocation, ExactAllocation, GreedyAllocation
from dataprice.valuation.game import CachedGame, Game, TabulatedGame, tabulate
from dataprice.valuation.methods.exact import ExactShapley
from dataprice.valuation.methods.permutation import PermutationShapley

#: Largest selected set for which the restricted Shapley payment is computed exactly.
EXACT_SHAPLEY_SELECTED_MAX = 16


@dataclass
class SubsetMarket:
    """A market where the buyer takes a subset of sellers.

    Attributes:
        game: the buyer's value ``v(S)`` (a :class:`TabulatedGame` for exact allocation).
        allocation: the allocation rule.
        reserve: highest acceptable report (None: no reserve).
        shapley_scope: ``"selected"`` or ``"all"`` (see module docstring).
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

    def allocate(self, bids: NDArray[np.float64]) -> Allocation:
        return self.allocation(self.game, np.asarray(bids, dtype=np.float64), self.reserve)

    @property
    def is_exact(self) -> bool:
        return isinstance(self.allocation, ExactAllocation)

    def full_shapley(self) -> NDArray[np.float64]:
        if self.shapley_values is None:
            if isinstance(self.game, TabulatedGame):
                self.shapley_values = ExactShapley().fit(self.game).result.values
            else:
                method = PermutationShapley(max_evaluations=50 * self.game.n_players**2, seed=self.seed)
                self.shapley_values = method.fit(self.game).result.values
        return self.shapley_values


PaymentRule = Callable[[SubsetMarket, NDArray[np.float64], Allocation], NDArray[np.float64]]


def loo_payment(market: SubsetMarket, bids: NDArray[np.float64], alloc: Allocation) -> NDArray[np.float64]:
    """``p_j = v(S*) - v(S* \\ {j})`` for ``j in S*``."""
    n = market.game.n_players
    members = alloc.members
    payments = np.zeros(n)
    if members.size == 0:
        return payments
    coalitions = np.repeat(alloc.selected[None, :], members.size, axis=0)
    coalitions[np.arange(members.size), members] = False
    payments[members] = alloc.value - market.game(coalitions)
    return payments


def shapley_payment(
    market: SubsetMarket, bids: NDArray[np.float64], alloc: Allocation
) -> NDArray[np.float64]:
    """Shapley value of each selected seller, in ``v|_{S*}`` or in ``v`` (``shapley_scope``)."""
    n = market.game.n_players
    payments = np.zeros(n)
    members = alloc.members
    if members.size == 0:
        return payments
    if market.shapley_scope == "all":
        payments[members] = market.full_shapley()[members]
        return payments
    sub = _restricted(market.game, members)
    if isinstance(sub, TabulatedGame):
        payments[members] = ExactShapley().fit(sub).result.values
    else:
        method = PermutationShapley(max_evaluations=50 * members.size**2, seed=market.seed)
        payments[members] = method.fit(sub).result.values
    return payments


def myerson_payment(
    market: SubsetMarket, bids: NDArray[np.float64], alloc: Allocation
) -> NDArray[np.float64]:
    """Critical bid of each selected seller: closed form for exact allocation, one pass over
    the greedy run for greedy allocation (:meth:`GreedyAllocation.critical_bids`), bisection
    (:func:`critical_bid`) for any other monotone rule."""
    bids = np.asarray(bids, dtype=np.float64)
    payments = np.zeros(market.game.n_players)
    members = alloc.members
    if members.size == 0:
        return payments
    if market.is_exact:
        table = market.game
        rule = market.allocation
        with_j = rule.best_welfare_with_own_bid_excluded(table, bids, market.reserve)
        without_j = rule.best_welfare_without(table, bids, market.reserve)
        critical = with_j - without_j
        if market.reserve is not None:
            critical = np.minimum(critical, market.reserve)
        payments[members] = critical[members]
        return payments
    if isinstance(market.allocation, GreedyAllocation):
        critical, _ = market.allocation.critical_bids(market.game, bids, market.reserve)
        payments[members] = critical[members]
        return payments
    for j in members:
        payments[j] = critical_bid(market, bids, j)
    return payments


def critical_bid(
    market: SubsetMarket, bids: NDArray[np.float64], j: int, *, rtol: float = 1e-9
) -> float:
    """``sup{u : j in S*(u, b_-j)}`` by bisection, for any monotone allocation rule."""
    bids = np.asarray(bids, dtype=np.float64).copy()

    def selected_at(u: float) -> bool:
        bids[j] = u
        return bool(market.allocate(bids).selected[j])

    lo = 0.0
    if not selected_at(lo):
        return 0.0
    hi = max(1.0, abs(market.game.grand_value() - market.game.empty_value()))
    while selected_at(hi):
        hi *= 2.0
        if hi > 1e15:
            raise RuntimeError(f"seller {j} is selected at any report: the allocation is not bounded")
    if market.reserve is not None:
        hi = min(hi, market.reserve * (1 + 1e-12) + 1e-12)
    scale = max(hi, 1.0)
    while hi - lo > rtol * scale:
        mid = 0.5 * (lo + hi)
        if selected_at(mid):
            lo = mid
        else:
            hi = mid
    return lo


def vcg_payment(market: SubsetMarket, bids: NDArray[np.float64], alloc: Allocation) -> NDArray[np.float64]:
    """Clarke pivot: ``p_j = b_j + W(b) - W_{-j}(b)`` for ``j in S*``."""
    bids = np.asarray(bids, dtype=np.float64)
    n = market.game.n_players
    payments = np.zeros(n)
    members = alloc.members
    if members.size == 0:
        return payments
    if market.is_exact:
        without_j = market.allocation.best_welfare_without(market.game, bids, market.reserve)
        payments[members] = bids[members] + alloc.welfare_at_bids - without_j[members]
        return payments
    _, without_j = market.allocation.critical_bids(market.game, bids, market.reserve)
    payments[members] = bids[members] + alloc.welfare_at_bids - without_j[members]
    return payments


def pay_as_bid_payment(
    market: SubsetMarket, bids: NDArray[np.float64], alloc: Allocation
) -> NDArray[np.float64]:
    """First-price procurement: ``p_j = b_j`` for ``j in S*``.

    Individually rational at truthful reports but never truthful: a selected seller gains
    from any overbid that keeps it selected, so it is the reference manipulable rule.
    """
    return np.where(alloc.selected, np.asarray(bids, dtype=np.float64), 0.0)


PAYMENT_RULES: dict[str, PaymentRule] = {
    "loo": loo_payment,
    "shapley": shapley_payment,
    "myerson": myerson_payment,
    "vcg": vcg_payment,
    "pay_as_bid": pay_as_bid_payment,
}

#: Rules that are truthful when the allocation is exact (tests check this by brute force).
TRUTHFUL_RULES = frozenset({"myerson", "vcg"})


def _restricted(game: Game, members: NDArray[np.int64]) -> Game:
    if isinstance(game, TabulatedGame):
        return game.restrict(members)
    sub = _SubGame(game, members)
    if members.size <= EXACT_SHAPLEY_SELECTED_MAX:
        return tabulate(CachedGame(sub))
    return CachedGame(sub)


class _SubGame(Game):
    """``v|_T``: the game on players ``T`` of a larger game."""

    def __init__(self, game: Game, players: NDArray[np.int64]) -> None:
        super().__init__(players.size, [game.player_names[p] for p in players])
        self.game, self.players = game, players

    def value_function(self, coalitions):
        full = np.zeros((coalitions.shape[0], self.game.n_players), dtype=bool)
        full[:, self.players] = coalitions
        return self.game(full)
