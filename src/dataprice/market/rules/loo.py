"""Leave-one-out: ``p_j = v(S*) - v(S* \\ {j})`` for each selected seller ``j``.

Pays for value created, not for cost incurred: the report only decides whether ``j`` is
selected, so a seller can gain by underbidding to be selected (manipulable), and a seller
whose marginal value is below its cost is paid less than its cost (greedy allocation).

* subset: ``v`` at the selected set with and without ``j``;
* continuous: the buyers' value ``V(W(a)) - V(W_{-j}(a))`` lost without ``j``;
* per query: the published LOO, per query where a document was sold and summed per owner,
  ``p_o(w) = v_q(N) - v_q(N \\ {o(w)})`` with ``v_q(S) = max(0, max_{d: o(d) in S} v_qd)``
  (the buyer's value without prices, ``v_q(empty) = 0``): the winner's value margin over
  the best document of any other owner (0 when a more valuable but pricier document lost).
  The value of the document bought, ``v_qw`` (what this rule paid before), is the rule
  ``value_bought`` (:mod:`.value_bought`).
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
    loo = market.value_all()[alloc.queries] - market.value_without_winner_owner(alloc)
    return market.per_owner(alloc, loo)


LOO = register_rule(PaymentRule(
    "loo",
    note="pays each selected seller its leave-one-out value v(S*) - v(S* without j)",
    truthful="never: the report decides selection only, so underbidding to be selected can pay",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
    notes={"per_query": "pays the winner of each query the published leave-one-out value v(N) - v(N without its "
                        "owner), v(S) = the best document value in S without prices, v(empty) = 0"},
))
