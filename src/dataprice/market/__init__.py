"""Mechanism design: allocation, payment rules and metrics (pure functions; no agents)."""

from __future__ import annotations

from dataprice.market.allocation import ExactAllocation, GreedyAllocation
from dataprice.market.mechanism import Outcome, settle
from dataprice.market.payments import PAYMENT_RULES, SubsetMarket

__all__ = ["PAYMENT_RULES", "ExactAllocation", "GreedyAllocation", "Outcome", "SubsetMarket", "settle"]
