"""Value bought: the winner of each query is paid the value of the document it sold.

``p_o = sum_{q won by o} v_qw``, per-query market only. It is leave-one-out and Shapley
restricted to the selected set ``S* = {w}`` (``v_q({w}) - v_q(empty) = v_qw``), and what the
per-query ``loo`` rule paid before it became the published ``v(N) - v(N \\ {o(w)})``.
Pays for value whatever the report: individually rational at truthful reports (the winner's
value exceeds its price), but manipulable (underbidding to win more queries pays).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dataprice.market.rules.base import PaymentRule, register_rule


def per_query(market, bids: NDArray[np.float64], alloc) -> NDArray[np.float64]:
    return market.per_owner(alloc, market.value_won(alloc))


VALUE_BOUGHT = register_rule(PaymentRule(
    "value_bought",
    note="pays the winner of each query the value of the document bought (v of the winner alone)",
    truthful="never: the report decides selection only, so underbidding to win more queries can pay",
    pay={"per_query": per_query},
))
