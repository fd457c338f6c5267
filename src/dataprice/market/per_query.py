"""The per-query document market of the RAG experiment.

For each query ``q`` the buyer sees up to ``m`` candidate documents, each the best document
of a distinct owner, with value ``v_qd`` (how much the document helps answer ``q``) and price
``b_o`` (its owner's report, per document sold). The buyer takes the single candidate with
the best ``v_qd - b_o`` if that is positive. Per query, for the winner ``w`` and with the
runner-up's net value ``r = max(0, max_{d != w} v_qd - b_o(d))``:

* Myerson = VCG: ``p = v_qw - r`` (the critical price: the highest report that still wins);
* LOO and Shapley on the selected set: ``p = v_qw`` (the value of the one document bought);
  Shapley on all candidates (``scope="all"``): the airport-game Shapley value of ``w``;
* pay-as-bid: ``p = b_o(w)``.

Payments are summed per owner over the query set; an owner's cost is its per-document cost
times the number of queries it wins. Because every owner has at most one candidate per
query, each query is a single-item procurement auction and Myerson/VCG are truthful.
All rules are vectorised over queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dataprice.market.mechanism import Outcome
from dataprice.valuation.reference_games import AirportGame

PER_QUERY_RULES = ("loo", "shapley", "myerson", "vcg", "pay_as_bid")


@dataclass
class PerQueryMarket:
    """Candidate values ``(Q, m)`` and owners ``(Q, m)`` (``-1`` pads queries with fewer)."""

    values: NDArray[np.float64]
    owners: NDArray[np.int64]
    n_owners: int
    shapley_scope: str = "selected"

    def __post_init__(self) -> None:
        self.values = np.where(self.owners >= 0, np.asarray(self.values, dtype=np.float64), 0.0)
        self.owners = np.asarray(self.owners, dtype=np.int64)
        self._airport: NDArray[np.float64] | None = None

    def _prices(self, bids: NDArray[np.float64]) -> NDArray[np.float64]:
        padded = np.append(np.asarray(bids, dtype=np.float64), np.inf)
        return padded[np.where(self.owners >= 0, self.owners, self.n_owners)]

    def allocate(self, bids: NDArray[np.float64]):
        """Winner per query (``-1`` = none), its net value and the runner-up's net value."""
        net = self.values - self._prices(bids)
        net = np.where(self.owners >= 0, net, -np.inf)
        q = np.arange(net.shape[0])
        winner = np.argmax(net, axis=1)
        best = net[q, winner]
        sold = best > 0
        others = net.copy()
        others[q, winner] = -np.inf
        runner_up = np.maximum(others.max(axis=1), 0.0)
        return np.where(sold, winner, -1), sold, runner_up

    def airport_shapley(self) -> NDArray[np.float64]:
        if self._airport is None:
            self._airport = np.array([AirportGame(row).shapley_values() for row in self.values])
        return self._airport

    def settle(self, bids: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        if rule not in PER_QUERY_RULES:
            raise ValueError(f"unknown payment rule {rule!r}; choose one of {list(PER_QUERY_RULES)}")
        bids = np.asarray(bids, dtype=np.float64)
        winner, sold, runner_up = self.allocate(bids)
        q = np.flatnonzero(sold)
        w = winner[q]
        value_w = self.values[q, w]
        if rule in ("myerson", "vcg"):
            paid = value_w - runner_up[q]
        elif rule == "pay_as_bid":
            paid = self._prices(bids)[q, w]
        elif rule == "shapley" and self.shapley_scope == "all":
            paid = self.airport_shapley()[q, w]
        else:  # loo, shapley on the selected set: the value of the single document bought
            paid = value_w
        owner = self.owners[q, w]
        payments = np.bincount(owner, weights=paid, minlength=self.n_owners)
        quantities = np.bincount(owner, minlength=self.n_owners).astype(np.float64)
        return Outcome(
            rule=rule,
            bids=bids,
            quantities=quantities,
            payments=payments,
            value=float(value_w.sum()),
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
        )

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """``sum_q max(0, max_d v_qd - c_o(d))``."""
        net = np.where(self.owners >= 0, self.values - self._prices(costs), -np.inf)
        return float(np.maximum(net.max(axis=1), 0.0).sum())

    def value_span(self) -> float:
        return float(self.values.max(axis=1).sum())
