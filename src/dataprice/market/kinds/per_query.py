"""The per-query document market of the published RAG experiment.

For each query ``q`` the buyer sees up to ``m`` candidate documents ``d`` with value ``v_qd``
(how much the document helps answer ``q``) and price ``b_qd = b_o w_qd``: its owner's report
``b_o`` times the candidate's price weight ``w_qd`` (``w = 1`` by default: ``b_o`` is the
owner's price per document sold; with per-item prices ``w_qd = p_d / u_o``, the document's
list price over its owner's mean list price, so that a truthful report ``b_o = u_o`` prices
every item at its list price). The buyer takes the single candidate with the best
``v_qd - b_qd`` if that is positive. Payments (see :mod:`dataprice.market.rules`) are
computed per query and summed per owner over the query set; an owner's cost is its cost
``c_o`` times its quantity ``x_o = sum_{q won} w_qd`` (the number of queries it wins when
``w = 1``; the list prices of the items it sold, over ``u_o``, otherwise).

Per query, with owner ``o(d)`` and the buyer's surplus at reports
``W_q(S) = max(0, max_{d: o(d) in S} v_qd - b_qd)``, the runner-up's net value is
``r_q = W_q(N \\ {o(w)})`` (candidates of the winner's owner left out), so that Myerson's
critical price and VCG's Clarke payment are both ``v_qw - r_q`` for the winner. When every
owner has at most one candidate per query (the retriever's candidates, one seller per
document), each query is a single-item procurement auction and both are truthful; with one
multiplier ``b_o`` over several own candidates, VCG is still truthful (the report space is
a line through the truth) and Myerson equals it (payment identity).

Valuation-based payments use the buyer's value without prices,
``v_q(S) = max(0, max_{d: o(d) in S} v_qd)`` with ``v_q(empty) = 0`` (the game valuation
methods see, summed over queries). Everything is vectorised over queries.
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
    the runner-up's net value ``max(0, max_{d: o(d) != o(w)} v_qd - b_qd)``."""

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
    """Candidate values ``(Q, m)`` and owners ``(Q, m)`` (``-1`` pads queries with fewer).

    Attributes:
        values: ``v_qd`` per query and candidate.
        owners: the owner of each candidate (``-1``: padding).
        n_owners: the number of owners (sellers).
        shapley_scope: ``"selected"`` (Shapley in ``v_q`` restricted to the winner: the value
            of the document bought) or ``"all"`` (the airport-game Shapley value of every
            candidate owner in ``v_q`` over all candidates; it sums to ``v_q(N)``).
        weights: price weight ``w_qd`` per candidate (``None``: 1, one report per document).
    """

    values: NDArray[np.float64]
    owners: NDArray[np.int64]
    n_owners: int
    shapley_scope: str = "selected"
    weights: NDArray[np.float64] | None = None

    kind = "per_query"

    def __post_init__(self) -> None:
        self.values = np.where(self.owners >= 0, np.asarray(self.values, dtype=np.float64), 0.0)
        self.owners = np.asarray(self.owners, dtype=np.int64)
        if self.weights is not None:
            self.weights = np.where(self.owners >= 0, np.asarray(self.weights, dtype=np.float64), 1.0)
        self._airport: NDArray[np.float64] | None = None

    def prices(self, bids: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each candidate's price ``b_o(d) w_qd`` (``inf`` for padding)."""
        padded = np.append(np.asarray(bids, dtype=np.float64), np.inf)
        price = padded[np.where(self.owners >= 0, self.owners, self.n_owners)]
        if self.weights is None:
            return price
        return price * self.weights  # padding: inf times 1

    def allocate(self, bids: NDArray[np.float64]) -> PerQueryAllocation:
        net = self.values - self.prices(bids)
        net = np.where(self.owners >= 0, net, -np.inf)
        q = np.arange(net.shape[0])
        winner = np.argmax(net, axis=1)
        best = net[q, winner]
        sold = best > 0
        # the runner-up is the best candidate of another owner: W_q(N \\ {o(w)})
        others = np.where(self.owners == self.owners[q, winner][:, None], -np.inf, net)
        runner_up = np.maximum(others.max(axis=1), 0.0)
        return PerQueryAllocation(np.where(sold, winner, -1), sold, runner_up)

    def value_won(self, allocation: PerQueryAllocation) -> NDArray[np.float64]:
        """The value of the document bought, per query where one was sold."""
        return self.values[allocation.queries, allocation.won]

    def per_owner(self, allocation: PerQueryAllocation, paid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Payments per owner: ``paid`` (one per query where a document was sold) summed."""
        owner = self.owners[allocation.queries, allocation.won]
        return np.bincount(owner, weights=paid, minlength=self.n_owners).astype(np.float64, copy=False)

    def per_candidate_owner(self, paid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Payments per owner: ``paid`` (``(Q, m)``, one per candidate) summed over candidates."""
        real = self.owners >= 0
        return np.bincount(self.owners[real], weights=paid[real], minlength=self.n_owners).astype(np.float64)

    def owner_best_values(self) -> NDArray[np.float64]:
        """``max(0, v_qd)`` for the first best candidate of each owner in each query, 0 for
        its other candidates and padding: the airport game over candidates with these
        values is the owner-level game ``v_q(S) = max(0, max_{d: o(d) in S} v_qd)``."""
        values = np.maximum(self.values, 0.0)
        q_count, m = values.shape
        order = np.lexsort((np.arange(m)[None, :].repeat(q_count, 0), -values, self.owners), axis=1)
        owners_sorted = np.take_along_axis(self.owners, order, axis=1)
        first = np.ones_like(owners_sorted, dtype=bool)
        first[:, 1:] = owners_sorted[:, 1:] != owners_sorted[:, :-1]
        keep = np.zeros_like(first)
        np.put_along_axis(keep, order, first, axis=1)
        return np.where(keep & (self.owners >= 0), values, 0.0)

    def value_all(self) -> NDArray[np.float64]:
        """``v_q(N) = max(0, max_d v_qd)`` per query."""
        return np.maximum(self.values.max(axis=1, initial=0.0), 0.0)

    def value_without_winner_owner(self, allocation: PerQueryAllocation) -> NDArray[np.float64]:
        """``v_q(N \\ {o(w)})`` per query where a document was sold."""
        q = allocation.queries
        rows = self.values[q]
        same = self.owners[q] == self.owners[q, allocation.won][:, None]
        return np.maximum(np.where(same | (self.owners[q] < 0), 0.0, rows).max(axis=1, initial=0.0), 0.0)

    def airport_shapley(self) -> NDArray[np.float64]:
        """Per query and candidate: the Shapley value of its owner in ``v_q(S) = max(0, max_{d:
        o(d) in S} v_qd)`` over all owners with a candidate, ``v_q(empty) = 0`` (Littlechild &
        Owen's airport game; a candidate that is not its owner's best in the query gets 0).
        Each row sums to ``v_q(N)``."""
        if self._airport is None:
            best = self.owner_best_values()
            self._airport = np.array([AirportGame(row).shapley_values() for row in best]).reshape(best.shape)
        return self._airport

    def outcome(self, rule: str, bids: NDArray[np.float64], allocation: PerQueryAllocation,
                payments: NDArray[np.float64], costs: NDArray[np.float64] | None) -> Outcome:
        owner = self.owners[allocation.queries, allocation.won]
        weight = None if self.weights is None else self.weights[allocation.queries, allocation.won]
        return Outcome(
            rule=rule,
            bids=bids,
            quantities=np.bincount(owner, weights=weight, minlength=self.n_owners).astype(np.float64),
            payments=payments,
            value=float(self.value_won(allocation).sum()),
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
            sold=np.bincount(owner, minlength=self.n_owners) > 0,  # also items listed at price 0
        )

    def settle(self, bids: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        return settle(self, bids, rule, costs)

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """``sum_q max(0, max_d v_qd - c_o(d))``."""
        net = np.where(self.owners >= 0, self.values - self.prices(costs), -np.inf)
        return float(np.maximum(net.max(axis=1), 0.0).sum())

    def value_span(self) -> float:
        return float(self.values.max(axis=1).sum())

    def valued_owners(self) -> NDArray[np.int64]:
        """Per query, how many owners have a candidate of positive value."""
        valued = (self.owners >= 0) & (self.values > 0)
        rows, cols = np.nonzero(valued)
        pairs = np.unique(np.stack([rows, self.owners[rows, cols]], axis=1), axis=0).reshape(-1, 2)
        return np.bincount(pairs[:, 0], minlength=self.values.shape[0])

    def findings(self) -> list[str]:
        """What the report should say so that no one reads meaning into a market without
        competition: every query with at most one owner whose candidate has value."""
        count = self.valued_owners()
        if count.size == 0 or (count > 1).any():
            return []
        alone = int((count == 1).sum())
        return [
            f"No query has two owners with a valued candidate ({alone} of {count.size} queries have exactly one, "
            "the rest none): no document competes with another for a query, so a winner's critical price is its "
            "whole value (minus nothing) and the rules are compared without any competition."
        ]
