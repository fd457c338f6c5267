"""When truthful payments leave the buyer satisfied too: diminishing returns on what it buys.

Setting (Fan, Rotello & Karimireddy, "Do Data Valuations Make Good Data Prices?",
arXiv:2504.05563): the buyer takes ``S* = argmax_S v(S) - sum_{j in S} b_j`` and pays
each winner its critical bid (Myerson; VCG pays the same without a reserve)

    p_i = b_i + W(N) - W(N - i),    W(T) = max_{S subset of T} v(S) - sum_{j in S} b_j.

Sellers are always satisfied (``p_i >= b_i``) and truthful reporting is dominant, so the
allocation at truthful reports maximises welfare: the market is efficient. The buyer is
satisfied (``v(S*) - sum p_i >= v(empty)``) whenever ``v`` has diminishing returns on the
sellers bought (is submodular on the subsets of ``S*``). Proof: ``S* - i`` is feasible
without ``i``, so ``W(N - i) >= W(N) - [v(S*) - v(S* - i)] + b_i`` and

    p_i <= v(S*) - v(S* - i)             (a winner is paid at most its leave-one-out value)
    sum_{i in S*} p_i <= v(S*) - v(empty)  (the leave-one-out values of a submodular game
                                            sum to at most the whole, by telescoping).

Without diminishing returns the buyer can lose: two complementary sellers worth nothing
alone and 10 together, each costing 1, are both bought and each paid ``1 + 8 = 9``.

The paper's own statement of its condition is not among this project's offline sources;
the condition and proof above are ours, written for the market this package implements
(``tests/market/test_efficiency_condition.py`` checks them on random instances).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import TabulatedGame

#: the largest bought set whose subsets are checked (2^k coalitions, k^2/2 pairs)
MAX_CHECKED_SELLERS = 16


def submodularity_gap(values: NDArray[np.float64]) -> float:
    """``max [v(S+i+j) - v(S+j)] - [v(S+i) - v(S)]`` over ``S`` and ``i != j`` outside ``S``.

    ``values`` is a game table indexed by bit mask (player ``j`` is bit ``j``). The game is
    submodular exactly when the gap is ``<= 0``; a positive gap is the largest
    complementarity found (how much a seller adds more once another is in).
    """
    values = np.asarray(values, dtype=np.float64)
    n = int(np.log2(values.size))
    if 2**n != values.size:
        raise ValueError(f"a game table has 2^n entries, got {values.size}")
    masks = np.arange(values.size)
    gap = -np.inf
    for i in range(n):
        for j in range(i + 1, n):
            base = masks[((masks >> i) & 1 == 0) & ((masks >> j) & 1 == 0)]
            bi, bj = 1 << i, 1 << j
            d = values[base | bi | bj] - values[base | bj] - values[base | bi] + values[base]
            gap = max(gap, float(d.max()))
    return 0.0 if gap == -np.inf else gap


@dataclass(frozen=True)
class BuyerCondition:
    """Whether the diminishing-returns condition holds on the bought set.

    Attributes:
        sellers: how many sellers were bought (``|S*|``).
        gap: :func:`submodularity_gap` on the subsets of ``S*`` (``<= tolerance``: holds).
        holds: the condition holds, so a truthful payment pays each winner at most its
            leave-one-out value and leaves the buyer at least ``v(empty)``.
    """

    sellers: int
    gap: float
    holds: bool

    def sentence(self) -> str:
        if self.holds:
            return (f"the buyer's value has diminishing returns on the {self.sellers} sellers bought "
                    f"(checked on all {2**self.sellers} subsets), so a truthful rule (Myerson, VCG) pays "
                    "each at most its leave-one-out value and cannot leave the buyer below v(empty)")
        return (f"the buyer's value is not submodular on the {self.sellers} sellers bought (one seller adds "
                f"up to {self.gap:.4g} more once another is in), so a truthful rule can pay more than "
                "the data is worth to the buyer")


def buyer_condition(table: TabulatedGame, selected: NDArray[np.bool_], *, tolerance: float = 1e-9) -> BuyerCondition | None:
    """Check the condition on the sellers ``selected`` (None above :data:`MAX_CHECKED_SELLERS`)."""
    selected = np.asarray(selected, dtype=bool)
    k = int(selected.sum())
    if k > MAX_CHECKED_SELLERS:
        return None
    gap = submodularity_gap(table.restrict(np.flatnonzero(selected)).values) if k >= 2 else 0.0
    return BuyerCondition(sellers=k, gap=gap, holds=gap <= tolerance * max(1.0, float(np.max(np.abs(table.values)))))
