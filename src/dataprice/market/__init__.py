"""Mechanism design: market kinds, allocation, payment rules and metrics (no agents).

* :mod:`.kinds`: the subset, continuous and per-query markets (the :class:`~.protocol.Market`
  protocol);
* :mod:`.rules`: payment rules as registered objects (LOO, Shapley, Myerson, VCG, pay-as-bid);
* :mod:`.allocation`: exact and greedy allocation for the subset market;
* :func:`settle`: allocate and pay, in any kind; :mod:`.metrics`: welfare, IR, the audit.
"""

from __future__ import annotations

from dataprice.market.allocation import ExactAllocation, GreedyAllocation
from dataprice.market.kinds import ContinuousMarket, PerQueryMarket, SubsetMarket
from dataprice.market.mechanism import Outcome, settle
from dataprice.market.protocol import Market
from dataprice.market.rules import RULES, PaymentRule, get_rule, register_rule

__all__ = [
    "RULES", "ContinuousMarket", "ExactAllocation", "GreedyAllocation", "Market", "Outcome", "PaymentRule",
    "PerQueryMarket", "SubsetMarket", "get_rule", "register_rule", "settle",
]
