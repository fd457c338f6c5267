"""A payment rule: Shapley payments with a floor at the seller's report.

Shapley payments pay for value whatever the cost, so a seller can be paid less than it
asked. ``shapley_floor`` pays ``max(phi_j, b_j)`` to each selected seller: individually
rational at truthful reports, still manipulable (overbidding raises the floor).
"""

import numpy as np

from dataprice.market.rules import PaymentRule, register_rule, shapley


def subset(market, bids, allocation):
    phi = shapley.subset(market, bids, allocation)  # 0 for the sellers not selected
    return np.where(allocation.selected, np.maximum(phi, bids), 0.0)


SHAPLEY_FLOOR = register_rule(PaymentRule(
    "shapley_floor",
    note="pays each selected seller its Shapley value, but never less than its report",
    truthful="never: overbidding raises the floor",
    pay={"subset": subset},
))
