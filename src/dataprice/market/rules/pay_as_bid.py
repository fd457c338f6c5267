"""Pay-as-bid (first price): each selected seller is paid its own report for what was used.

Individually rational at truthful reports but never truthful: a selected seller gains from
any overbid that keeps it selected, so it is the reference manipulable rule.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.rules.base import PaymentRule, register_rule


def subset(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return np.where(alloc.selected, np.asarray(bids, dtype=np.float64), 0.0)


def continuous(market, reports: NDArray[np.float64], allocation: NDArray[np.float64]) -> NDArray[np.float64]:
    """``p_j = a_j x_j(a)``: the reported cost of the data used."""
    reports = np.asarray(reports, dtype=np.float64)
    x = market.task.quantities(allocation)
    return np.where(x > 0, reports * x, 0.0)


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return market.per_owner(alloc, market.prices(bids)[alloc.queries, alloc.won])


PAY_AS_BID = register_rule(PaymentRule(
    "pay_as_bid",
    note="pays each selected seller its own report (first price)",
    truthful="never: overbidding while still selected pays more",
    pay={"subset": subset, "continuous": continuous, "per_query": per_query},
))
