"""Leave-one-out: ``p_j = v(S*) - v(S* \\ {j})`` for each selected seller ``j``.

Pays for value created, not for cost incurred: the report only decides whether ``j`` is
selected, so a seller can gain by underbidding to be selected (manipulable), and a seller
whose marginal value is below its cost is paid less than its cost (greedy allocation).

* subset: ``v`` at the selected set with and without ``j``;
* continuous: the buyers' value ``V(W(a)) - V(W_{-j}(a))`` lost without ``j``;
* per query: the value of the document bought, summed per owner (this is the document's
  whole value, not the published LOO ``v(N) - v(N \\ {w})``, which subtracts the value of
  the next-best document).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.rules.base import PaymentRule, register_rule


def subset(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    n = market.game.n_players
    members = alloc.members
    payments = np.zeros(n)
    if members.size == 0:
        return payments
    coalitions = np.repeat(alloc.selected[None, :], members.size, axis=0)
    coalitions[np.arange(members.size), members] = False
    payments[members] = alloc.value - market.game(coalitions)
    return payments


def continuous(market, reports: NDArray[np.float64], allocation: NDArray[np.float64]) -> NDArray[np.float64]:
    task = market.task
    x = task.quantities(allocation)
    value = task.value(allocation)
    pay = np.zeros_like(x)
    for j in np.flatnonzero(x > 0):
        pay[j] = value - task.value(market.allocate(reports, exclude=j))
    return pay


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return market.per_owner(alloc, market.value_won(alloc))


LOO = register_rule(PaymentRule(
    "loo",
    note="pays each selected seller its leave-one-out value v(S*) - v(S* without j)",
    truthful="never: the report decides selection only, so underbidding to be selected can pay",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
))
