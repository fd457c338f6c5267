"""Shapley payments: each selected seller is paid its Shapley value.

In ``v`` restricted to the selected set ``S*`` (``market.shapley_scope = "selected"``) or
in ``v`` over all sellers (``"all"``); ``v(empty)`` counts, as in the standard definition.
Pays for value, whatever the cost: not individually rational, and manipulable.

* subset: exact Shapley on the restricted table; above 16 selected sellers the estimate of
  the ``shapley`` method (:mod:`dataprice.valuation.methods.auto` picks the estimator for
  the game) with a budget of ``50 n^2`` evaluations;
* continuous: exact Shapley in ``S -> V(W_S(a))`` among the sellers in the market;
* per query: on the selected set, the value of the one document bought (Shapley in ``v_q``
  restricted to the winner); over all candidates (scope ``all``), *every* candidate's owner
  is paid its airport-game Shapley value in ``v_q(S) = max(0, max_{d: o(d) in S} v_qd)``,
  ``v_q(empty) = 0`` (Littlechild & Owen 1973), so that each query's payments sum to
  ``v_q(N)``, losers included.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.rules.base import PaymentRule, register_rule
from dataprice.valuation.game import TabulatedGame, subgame, tabulate
from dataprice.valuation.methods.auto import AutoShapley
from dataprice.valuation.methods.exact import ExactShapley

#: Largest selected set for which the restricted Shapley payment is computed exactly.
EXACT_SHAPLEY_SELECTED_MAX = 16


def subset(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    n = market.game.n_players
    payments = np.zeros(n)
    members = alloc.members
    if members.size == 0:
        return payments
    if market.shapley_scope == "all":
        payments[members] = market.full_shapley()[members]
        return payments
    sub = subgame(market.game, members, tabulate_up_to=EXACT_SHAPLEY_SELECTED_MAX)
    if isinstance(sub, TabulatedGame):
        payments[members] = ExactShapley().fit(sub).result.values
    else:
        method = AutoShapley(max_evaluations=50 * members.size**2, seed=market.seed)
        payments[members] = method.fit(sub).result.values
    return payments


def continuous(market, reports: NDArray[np.float64], allocation: NDArray[np.float64]) -> NDArray[np.float64]:
    members = market.members(reports)
    pay = np.zeros(market.task.n_sellers)
    idx = np.flatnonzero(members)
    if idx.size == 0:
        return pay
    table = tabulate(market.task.coalition_game(reports)).restrict(idx)
    pay[idx] = ExactShapley().fit(table).result.values
    return pay


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    if market.shapley_scope == "all":
        return market.per_candidate_owner(market.airport_shapley())
    return market.per_owner(alloc, market.value_won(alloc))


SHAPLEY = register_rule(PaymentRule(
    "shapley",
    note="pays each selected seller its Shapley value",
    truthful="never: pays for value whatever the report, and is not individually rational",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
    notes={
        "subset/all": "pays each selected seller its Shapley value in v over all sellers",
        "per_query/selected": "pays the winner of each query the value of the document bought (Shapley in v "
                              "restricted to the winner)",
        "per_query/all": "pays every candidate's owner, per query, its airport-game Shapley value in v(S) = the "
                         "best document value in S without prices, v(empty) = 0 (sums to v(N), losers paid too)",
    },
))
