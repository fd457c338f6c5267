"""Games whose Shapley and Banzhaf values are known in closed form, for tests and teaching.

Each class exposes ``shapley_values()`` and ``banzhaf_values()`` computed from a formula,
never by enumerating coalitions, so they are independent ground truth for the methods in
:mod:`dataprice.valuation.methods`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game


class UnanimityGame(Game):
    """``u_T(S) = 1`` if ``T ⊆ S`` else 0.

    Shapley: ``1/|T|`` for members of T, 0 otherwise. Banzhaf: ``2^{-(|T|-1)}`` for members.
    """

    def __init__(self, n_players: int, carrier: Sequence[int]) -> None:
        super().__init__(n_players)
        self.carrier = np.zeros(n_players, dtype=bool)
        self.carrier[list(carrier)] = True
        if not self.carrier.any():
            raise ValueError("a unanimity game needs a non-empty carrier")

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.all(coalitions[:, self.carrier], axis=1).astype(np.float64)

    def shapley_values(self) -> NDArray[np.float64]:
        return self.carrier / self.carrier.sum()

    def banzhaf_values(self) -> NDArray[np.float64]:
        return self.carrier * 0.5 ** (self.carrier.sum() - 1)


class AdditiveGame(Game):
    """``v(S) = c + sum_{j in S} w_j``: every player's Shapley and Banzhaf value is ``w_j``.

    The constant ``c = v(empty)`` is not attributed to anyone (efficiency is
    ``sum phi = v(N) - v(empty)``).
    """

    def __init__(self, weights: Sequence[float] | NDArray[np.float64], constant: float = 0.0,
                 player_names: Sequence[str] | None = None) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        super().__init__(self.weights.shape[0], player_names)
        self.constant = float(constant)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.constant + coalitions @ self.weights

    def shapley_values(self) -> NDArray[np.float64]:
        return self.weights.copy()

    def banzhaf_values(self) -> NDArray[np.float64]:
        return self.weights.copy()


class AirportGame(Game):
    """``v(S) = max_{j in S} c_j`` (0 for the empty coalition), Littlechild & Owen (1973).

    With players sorted so that ``c_(1) <= ... <= c_(n)`` and ``c_(0) = 0``, the Shapley
    value of the player of rank ``i`` is ``sum_{k=1}^{i} (c_(k) - c_(k-1)) / (n - k + 1)``.
    The same game is the single-winner market with document values ``c``: the buyer keeps
    the best document of the coalition.
    """

    def __init__(self, costs: Sequence[float]) -> None:
        self.costs = np.asarray(costs, dtype=np.float64)
        if np.any(self.costs < 0):
            raise ValueError("airport costs must be non-negative")
        super().__init__(self.costs.shape[0])

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.max(np.where(coalitions, self.costs, 0.0), axis=1)

    def shapley_values(self) -> NDArray[np.float64]:
        n = self.n_players
        order = np.argsort(self.costs, kind="stable")
        sorted_costs = self.costs[order]
        increments = np.diff(np.concatenate([[0.0], sorted_costs]))
        shares = increments / (n - np.arange(n))  # k = 1..n -> n - k + 1
        phi_sorted = np.cumsum(shares)
        phi = np.empty(n)
        phi[order] = phi_sorted
        return phi

    def banzhaf_values(self) -> NDArray[np.float64]:
        """``beta_(i) = sum_{k<=i} (c_(k)-c_(k-1)) * P(no player ranked >= k other than i)``.

        Player ``i`` adds ``c_(i) - max_{S} c`` when every member of ``S`` is cheaper; the
        increment between levels ``k-1`` and ``k`` is added iff none of the ``n-k`` other
        players with rank ``>= k`` is in ``S``, which has probability ``2^{-(n-k)}``.
        """
        n = self.n_players
        order = np.argsort(self.costs, kind="stable")
        increments = np.diff(np.concatenate([[0.0], self.costs[order]]))
        shares = increments * 0.5 ** (n - 1 - np.arange(n))  # k = 1..n -> n - k others
        beta = np.empty(n)
        beta[order] = np.cumsum(shares)
        return beta


class GloveGame(Game):
    """``v(S) = min(|S ∩ L|, |S ∩ R|)``: pairs of left and right gloves.

    Closed forms implemented: one left-glove holder and ``r`` right-glove holders gives
    Shapley ``r/(r+1)`` to the left holder and ``1/(r(r+1))`` to each right holder;
    Banzhaf ``1 - 2^{-r}`` and ``2^{-r}``. With ``|L| = |R|`` every player gets ``1/2``
    (symmetry plus efficiency).
    """

    def __init__(self, n_left: int, n_right: int) -> None:
        if n_left < 1 or n_right < 1:
            raise ValueError("a glove game needs at least one left and one right holder")
        super().__init__(n_left + n_right)
        self.n_left, self.n_right = n_left, n_right

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        left = coalitions[:, : self.n_left].sum(axis=1)
        right = coalitions[:, self.n_left :].sum(axis=1)
        return np.minimum(left, right).astype(np.float64)

    def shapley_values(self) -> NDArray[np.float64]:
        left, r = self.n_left, self.n_right
        if left == r:
            return np.full(left + r, 0.5)
        if left == 1:
            return np.concatenate([[r / (r + 1)], np.full(r, 1 / (r * (r + 1)))])
        raise NotImplementedError("closed form implemented for |L| = |R| or |L| = 1")

    def banzhaf_values(self) -> NDArray[np.float64]:
        left, r = self.n_left, self.n_right
        if left == 1:
            return np.concatenate([[1 - 0.5**r], np.full(r, 0.5**r)])
        raise NotImplementedError("closed form implemented for |L| = 1")


class ApexGame(Game):
    """Weighted majority game with one apex player of weight ``n-2`` and ``n-1`` minor players
    of weight 1, quota ``n-1``: the apex wins with any minor, or all minors win together.

    Shapley: apex ``(n-2)/n``, each minor ``2/(n(n-1))`` (the apex is pivotal in positions
    ``2..n-1``). Player 0 is the apex.
    """

    def __init__(self, n_players: int) -> None:
        if n_players < 4:
            raise ValueError("an apex game needs at least 4 players")
        super().__init__(n_players)
        self.weights = np.concatenate([[n_players - 2.0], np.ones(n_players - 1)])
        self.quota = n_players - 1.0

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return (coalitions @ self.weights >= self.quota).astype(np.float64)

    def shapley_values(self) -> NDArray[np.float64]:
        n = self.n_players
        return np.concatenate([[(n - 2) / n], np.full(n - 1, 2 / (n * (n - 1)))])


class TableGame(Game):
    """A game given by a Python callable on one coalition; slow, for small tests only."""

    def __init__(self, n_players: int, fn) -> None:
        super().__init__(n_players)
        self.fn = fn

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.array([self.fn(frozenset(np.flatnonzero(row).tolist())) for row in coalitions])
