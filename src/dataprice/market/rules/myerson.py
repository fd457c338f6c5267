"""Myerson: each selected seller is paid its critical report.

``p_j = b_j x_j(b) + int_{b_j}^inf x_j(u, b_-j) du``; for a 0/1 allocation this is the
critical bid ``sup{u : j in S*(u, b_-j)}``. Truthful and individually rational for any
*monotone* allocation rule (exact welfare maximisation, the greedy rule, the continuous
allocation), capped at the reserve when there is one.

* subset: closed form ``A_j - W_{-j}(b)`` for exact allocation, one pass over the greedy run
  for greedy allocation, bisection (:func:`critical_bid`) for any other monotone rule;
* continuous: ``a_j x_j(a) + int_{a_j}^{U} x_j(u, a_-j) du`` by quadrature (``U`` = the
  reserve, or infinity);
* per query: ``v_qw - r_q``, the winner's value minus the runner-up's net value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.allocation import GreedyAllocation
from dataprice.market.rules.base import PaymentRule, register_rule


def subset(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    bids = np.asarray(bids, dtype=np.float64)
    payments = np.zeros(market.game.n_players)
    members = alloc.members
    if members.size == 0:
        return payments
    critical = critical_reports(market, bids)
    if critical is not None:
        payments[members] = critical[members]
        return payments
    for j in members:
        payments[j] = critical_bid(market, bids, j)
    return payments


def critical_reports(market, bids: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Each seller's critical report in a subset market: the highest report at which it is
    selected, the others' reports fixed (capped at the reserve).

    Exact allocation: ``A_j - W_{-j}(b)`` for every seller, with ``A_j = max_{S ∋ j} v(S) -
    b(S \\ {j})``; a value at or below 0 means the seller is not selected at any report.
    Greedy allocation: the selected sellers' critical bids from one pass over the greedy run,
    NaN for the others. ``None`` for other allocation rules and market kinds (Myerson then
    bisects, :func:`critical_bid`).
    """
    if getattr(market, "kind", None) != "subset":
        return None
    bids = np.asarray(bids, dtype=np.float64)
    if market.is_exact:
        table, rule = market.game, market.allocation
        with_own_excluded, without = rule.welfare_extremes(table, bids, market.reserve)
        critical = with_own_excluded - without
        if market.reserve is not None:
            critical = np.minimum(critical, market.reserve)
        return critical
    if isinstance(market.allocation, GreedyAllocation):
        critical, without = market.allocation.critical_bids(market.game, bids, market.reserve)
        return np.where(np.isnan(without), np.nan, critical)  # W_{-j} is NaN for the unselected
    return None


def critical_bid(market, bids: NDArray[np.float64], j: int, *, rtol: float = 1e-9) -> float:
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


def continuous(market, reports: NDArray[np.float64], allocation: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy import integrate  # only the continuous market integrates

    reports = np.asarray(reports, dtype=np.float64)
    x = market.task.quantities(allocation)
    pay = np.zeros_like(x)
    upper = np.inf if market.reserve is None else market.reserve
    for j in np.flatnonzero(x > 0):
        tail, _ = integrate.quad(
            lambda u, j=j: market.quantity(j, u, reports), reports[j], upper, epsabs=1e-12, epsrel=1e-10, limit=200
        )
        pay[j] = reports[j] * x[j] + tail
    return pay


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return market.per_owner(alloc, market.value_won(alloc) - alloc.runner_up[alloc.queries])


MYERSON = register_rule(PaymentRule(
    "myerson",
    note="pays each selected seller its critical bid (the highest report at which it is still selected)",
    truthful="always: the allocation is monotone in every kind dataprice has (exact, greedy, continuous, per query)",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
    truthful_exact=True,
))
