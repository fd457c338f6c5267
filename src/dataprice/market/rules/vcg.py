"""VCG (Clarke pivot): ``p_j = b_j + W(b) - W_{-j}(b)`` for each selected seller ``j``,
``W`` the best welfare at the reports and ``W_{-j}`` the best welfare without ``j``.

Truthful and individually rational when the allocation maximises welfare exactly and no
constraint binds. With a reserve VCG pays at least Myerson and can be manipulated; on the
greedy allocation ``W`` is the greedy welfare, which makes VCG neither truthful nor
individually rational (measured: ``benchmarks/mechanism_properties.py``).

* subset: exact welfare without each winner, or the greedy run without it;
* continuous: ``a_j x_j(a) + SW_a(N) - SW_a(N \\ {j})`` (equal to Myerson without a reserve);
* per query: ``v_qw - r_q`` (equal to Myerson: one item per query).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.rules.base import PaymentRule, register_rule


def subset(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
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


def continuous(market, reports: NDArray[np.float64], allocation: NDArray[np.float64]) -> NDArray[np.float64]:
    reports = np.asarray(reports, dtype=np.float64)
    x = market.task.quantities(allocation)
    full = market.social_welfare(reports)
    pay = np.zeros_like(x)
    for j in np.flatnonzero(x > 0):
        pay[j] = reports[j] * x[j] + full - market.social_welfare(reports, exclude=j)
    return pay


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return market.per_owner(alloc, market.value_won(alloc) - alloc.runner_up[alloc.queries])


VCG = register_rule(PaymentRule(
    "vcg",
    note="pays b_j + W(b) - W_-j(b) (Clarke pivot)",
    truthful="under exact allocation without a binding reserve; not on greedy allocation",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
    truthful_exact=True,
))
