"""Market kinds: how the buyer allocates, and which market settings each kind accepts.

=============  ==========================================  ==============================
kind           market                                      accepts
=============  ==========================================  ==============================
subset         :class:`SubsetMarket` (buy a set of sellers)  exact or greedy allocation,
                                                           reserve, per-round value noise
continuous     :class:`ContinuousMarket` (a share of each)   exact allocation, reserve
per_query      :class:`PerQueryMarket` (one document per     exact allocation
               query)
=============  ==========================================  ==============================

A buyer plugin names its kind (``Buyer.market_kind``); the scenario check uses
:data:`MARKET_KINDS` to reject settings the kind does not have, and the runner asks the kind
whether its exact allocation needs the game tabulated over all ``2^n`` coalitions (only the
subset market's does, so only it is limited to :data:`~dataprice.valuation.game.
MAX_TABULATION_PLAYERS` sellers; the per-query market allocates each query exactly in
``O(candidates)`` and takes any number of owners).
"""

from __future__ import annotations

from dataclasses import dataclass

from dataprice.market.kinds.continuous import ContinuousMarket, ContinuousTask
from dataprice.market.kinds.per_query import PerQueryAllocation, PerQueryMarket
from dataprice.market.kinds.subset import SubsetMarket
from dataprice.valuation.game import MAX_TABULATION_PLAYERS


@dataclass(frozen=True)
class MarketKind:
    """What the scenario's ``market`` section may ask of a market kind."""

    name: str
    allocations: tuple[str, ...]
    reserve: bool
    value_noise: bool
    why_exact: str = ""
    #: allocations that maximise welfare over a tabulated game (all ``2^n`` coalitions):
    #: limited to :data:`MAX_TABULATION_PLAYERS` sellers, and the runner tabulates the game
    tabulated: tuple[str, ...] = ()

    def needs_table(self, allocation: str) -> bool:
        """Whether ``allocation`` in this kind works on the game tabulated over all coalitions."""
        return allocation in self.tabulated

    def problems(self, market, n_sellers: int | None = None) -> list[str]:
        """Settings of ``market`` (the scenario section) this kind does not have, for a
        market of ``n_sellers`` sellers."""
        out = []
        if n_sellers is not None and self.needs_table(market.allocation) and n_sellers > MAX_TABULATION_PLAYERS:
            others = [a for a in self.allocations if not self.needs_table(a)]
            instead = f"; use {' or '.join(map(repr, others))}" if others else ""
            out.append(f"market.allocation: {market.allocation!r} needs at most {MAX_TABULATION_PLAYERS} sellers "
                       f"in the {self.name} market (got {n_sellers}){instead}")
        if market.allocation not in self.allocations:
            out.append(f"market.allocation: {self.why_exact}; use {' or '.join(map(repr, self.allocations))}")
        if market.reserve is not None and not self.reserve:
            out.append(f"market.reserve: not supported in the {self.name} market; remove it")
        if market.value_noise > 0 and not self.value_noise:
            out.append(f"market.value_noise: per-round value shocks are defined for subset markets only; use 0 "
                       f"in the {self.name} market")
        return out


MARKET_KINDS: dict[str, MarketKind] = {
    "subset": MarketKind("subset", ("exact", "greedy"), reserve=True, value_noise=True, tabulated=("exact",)),
    "continuous": MarketKind("continuous", ("exact",), reserve=True, value_noise=False,
                             why_exact="the continuous market has a closed-form allocation"),
    "per_query": MarketKind("per_query", ("exact",), reserve=False, value_noise=False,
                            why_exact="the per-query market picks one document per query exactly"),
}

__all__ = ["MARKET_KINDS", "ContinuousMarket", "ContinuousTask", "MarketKind", "PerQueryAllocation",
           "PerQueryMarket", "SubsetMarket"]
