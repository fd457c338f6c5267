"""The per-query document market of the published RAG experiment.

For each query ``q`` the buyer sees up to ``m`` candidate documents, each the best document
of a distinct owner, with value ``v_qd`` (how much the document helps answer ``q``) and price
``b_o`` (its owner's report, per document sold). The buyer takes the single candidate with
the best ``v_qd - b_o`` if that is positive. Payments (see :mod:`dataprice.market.rules`)
are computed per query and summed per owner over the query set; an owner's cost is its
per-document cost times the number of queries it wins. Because every owner has at most one
candidate per query, each query is a single-item procurement auction and Myerson/VCG are
truthful. Everything is vectorised over queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dataprice.market.mechanism import Outcome, settle
from dataprice.valuation.reference_games import AirportGame


@dataclass(frozen=True)
class PerQueryAllocation:
    """Per query: the winning candidate (``-1``: none), whether a document was sold, and
    the runner-up's net value ``max(0, max_{d != w} v_qd - b_o(d))``."""

    winner: NDArray[np.int64]
    sold: NDArray[np.bool_]
    runner_up: NDArray[np.float64]

    @property
    def queries(self) -> NDArray[np.int64]:
        """The queries where a document was sold."""
        return np.flatnonzero(self.sold)

    @property
    def won(self) -> NDArray[np.int64]:
        """The winning candidate of each query where a document was sold."""
        return self.winner[self.queries]


@dataclass
class PerQueryMarket:
    """Candidate values ``(Q, m)`` and owners ``(Q, m)`` (``-1`` pads queries with fewer)."""

    values: NDArray[np.float64]
    owners: NDArray[np.int64]
    n_owners: int
    shapley_scope: str = "selected"

    kind = "per_query"

    def __post_init__(self) -> None:
        self.values = np.where(self.owners >= 0, np.asarray(self.values, dtype=np.float64), 0.0)
        self.owners = np.asarray(self.owners, dtype=np.int64)
        self._airport: NDArray[np.float64] | None = None

    def prices(self, bids: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each candidate's price: its owner's report (``inf`` for padding)."""
        padded = np.append(np.asarray(bids, dtype=np.float64), np.inf)
        return padded[np.where(self.owners >= 0, self.owners, self.n_owners)]

    def allocate(self, bids: NDArray[np.float64]) -> PerQueryAllocation:
        net = self.values - self.prices(bids)
        net = np.where(self.owners >= 0, net, -np.inf)
        q = np.arange(net.shape[0])
        winner = np.argmax(net, axis=1)
        best = net[q, winner]
        sold = best > 0
        others = net.copy()
        others[q, winner] = -np.inf
        runner_up = np.maximum(others.max(axis=1), 0.0)
        return PerQueryAllocation(np.where(sold, winner, -1), sold, runner_up)

    def value_won(self, allocation: PerQueryAllocation) -> NDArray[np.float64]:
        """The value of the document bought, per query where one was sold."""
        return self.values[allocation.queries, allocation.won]

    def per_owner(self, allocation: PerQueryAllocation, paid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Payments per owner: ``paid`` (one per query where a document was sold) summed."""
        owner = self.owners[allocation.queries, allocation.won]
        return np.bincount(owner, weights=paid, minlength=self.n_owners).astype(np.float64, copy=False)

    def airport_shapley(self) -> NDArray[np.float64]:
        """Per query and candidate: the Shapley value in ``v(S) = max_{d in S} v_qd``."""
        if self._airport is None:
            self._airport = np.array([AirportGame(row).shapley_values() for row in self.values])
        return self._airport

    def outcome(self, rule: str, bids: NDArray[np.float64], allocation: PerQueryAllocation,
                payments: NDArray[np.float64], costs: NDArray[np.float64] | None) -> Outcome:
        owner = self.owners[allocation.queries, allocation.won]
        return Outcome(
            rule=rule,
            bids=bids,
            quantities=np.bincount(owner, minlength=self.n_owners).astype(np.float64),
            payments=payments,
            value=float(self.value_won(allocation).sum()),
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
        )

    def settle(self, bids: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        return settle(self, bids, rule, costs)

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """``sum_q max(0, max_d v_qd - c_o(d))``."""
        net = np.where(self.owners >= 0, self.values - self.prices(costs), -np.inf)
        return float(np.maximum(net.max(axis=1), 0.0).sum())

    def value_span(self) -> float:
        return float(self.values.max(axis=1).sum())
