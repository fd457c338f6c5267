"""A large data-acquisition market: sellers whose data covers the buyer's needs.

The buyer needs ``T`` kinds of examples (topics, classes, regions), worth ``w_t`` each.
Seller ``j`` covers need ``t`` with probability ``p_jt`` (how likely its data contains a
usable example of that kind), independently across sellers, so

    ``v(S) = sum_t w_t (1 - prod_{j in S} (1 - p_jt))``,

the expected value of the needs covered (probabilistic coverage). It is monotone and
submodular -- a second seller covering the same need adds less -- and cheap enough to
evaluate that markets of thousands of sellers run in seconds.

Greedy steps are incremental (:meth:`CoverageGame.growing`): with ``q_t(S) = prod_{j in
S}(1 - p_jt)``, ``v(S + k) = v(S) + sum_t w_t q_t(S) p_kt``. A run keeps ``log q_t(S)``,
updated on the needs a newly taken seller touches, so evaluating a candidate costs its
non-zero entries and a step costs only the candidates evaluated; being submodular, the
game lets the greedy rule evaluate lazily (:attr:`~dataprice.valuation.game.Game.submodular`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game, GrowingCoalition


class CoverageGame(Game):
    """``v(S) = sum_t w_t (1 - prod_{j in S}(1 - p_jt))``.

    Submodular: ``v(S + k) - v(S) = sum_t w_t p_kt q_t(S)`` with ``w, p >= 0`` and
    ``q_t(S) = prod_{j in S}(1 - p_jt)`` non-increasing in ``S`` (a non-negative sum of
    per-need weighted coverage terms, each submodular).

    Args:
        coverage: ``p``, shape ``(n_sellers, n_needs)``, entries in ``[0, 1)``.
        weights: ``w``, shape ``(n_needs,)``, non-negative.
    """

    submodular = True

    def __init__(
        self,
        coverage: NDArray[np.float64],
        weights: NDArray[np.float64],
        player_names: Sequence[str] | None = None,
    ) -> None:
        coverage = np.asarray(coverage, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        if coverage.ndim != 2 or weights.shape != (coverage.shape[1],):
            raise ValueError(f"coverage must be (sellers, needs) and weights (needs,), got {coverage.shape} and {weights.shape}")
        if np.any(coverage < 0) or np.any(coverage >= 1):
            raise ValueError("coverage probabilities must lie in [0, 1)")
        if np.any(weights < 0):
            raise ValueError("need weights must be non-negative")
        super().__init__(coverage.shape[0], player_names)
        self.coverage = coverage
        self.weights = weights
        self._derive()

    _DERIVED = ("_log_miss", "_row_start", "_needs", "_p", "_log_1mp")

    def _derive(self) -> None:
        """Arrays computed from ``coverage``: ``log(1 - p)`` and each seller's non-zero
        entries, row by row (CSR: the needs it touches)."""
        self._log_miss = np.log1p(-self.coverage)  # log(1 - p_jt)
        rows, needs = np.nonzero(self.coverage)
        self._row_start = np.searchsorted(rows, np.arange(self.coverage.shape[0] + 1))
        self._needs = needs
        self._p = self.coverage[rows, needs]
        self._log_1mp = self._log_miss[rows, needs]

    def __getstate__(self) -> dict:
        """Pickled without the derived arrays (less than half the bytes to ship to a worker);
        they are recomputed, to the same floats, when unpickled."""
        return {k: v for k, v in self.__dict__.items() if k not in self._DERIVED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._derive()

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        miss = np.exp(coalitions.astype(np.float64) @ self._log_miss)  # q_t(S)
        return (1.0 - miss) @ self.weights

    def growing(self, members: Iterable[int] = ()) -> CoverageGrowth:
        return CoverageGrowth(self, members)

    def values_with(self, base: NDArray[np.bool_], candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        """``v(base + k)``: the incremental evaluator built on ``base`` (members added in
        index order), so a candidate's value is the same float alone or in any batch."""
        return self.growing(np.flatnonzero(np.asarray(base, dtype=bool))).values(candidates)

    def _entries(self, sellers: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Positions of ``sellers``' non-zero entries (seller by seller, needs ascending) and
        where each seller's run of entries starts among them."""
        lengths = self._row_start[sellers + 1] - self._row_start[sellers]
        starts = np.zeros(sellers.size, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        entries = np.repeat(self._row_start[sellers] - starts, lengths) + np.arange(int(lengths.sum()))
        return entries, starts

    def marginals(self, candidates: NDArray[np.int64], weighted_miss: NDArray[np.float64]) -> NDArray[np.float64]:
        """``m_k = sum_t p_kt w_t q_t`` for each candidate, with ``weighted_miss = w * q``.

        Each ``m_k`` is ``np.add.reduceat`` over ``k``'s own non-zero entries, a sum that
        depends on those entries only, so it is the same float whether ``k`` is asked alone
        or with every seller (what lazy greedy needs to reproduce the full evaluation).
        """
        candidates = np.asarray(candidates, dtype=np.int64)
        out = np.zeros(candidates.size)
        if candidates.size > self.n_players // 4:  # many: all rows, no gather
            terms = self._p * weighted_miss[self._needs]
            starts, lengths = self._row_start[:-1], np.diff(self._row_start)
            every = np.zeros(self.n_players)
            touched = lengths > 0
            if touched.any():
                every[touched] = np.add.reduceat(terms, starts[touched])
            return every[candidates]
        entries, starts = self._entries(candidates)
        touched = self._row_start[candidates + 1] > self._row_start[candidates]
        if touched.any():
            terms = self._p[entries] * weighted_miss[self._needs[entries]]
            out[touched] = np.add.reduceat(terms, starts[touched])
        return out


class CoverageGrowth(GrowingCoalition):
    """A growing coalition of a :class:`CoverageGame`: keeps ``log q_t(S) = sum_{j in S}
    log(1 - p_jt)`` (summed in the order players were added), ``q = exp(log q)``, ``w * q``
    and ``v(S) = sum_t w_t (1 - q_t)``. Adding a seller updates the needs it touches;
    ``v(S + k) = v(S) + sum_t p_kt w_t q_t`` costs ``k``'s non-zero entries."""

    game: CoverageGame

    def __init__(self, game: CoverageGame, members: Iterable[int] = ()) -> None:
        super().__init__(game, members)
        self._log_q = np.zeros(game.weights.shape[0])
        members = np.flatnonzero(self.selected)
        if members.size:
            entries, _ = game._entries(members)
            # unbuffered, in order: the same sums as adding the members one by one
            np.add.at(self._log_q, game._needs[entries], game._log_1mp[entries])
        self._q = np.exp(self._log_q)
        self._weighted = game.weights * self._q
        self._value = float(np.sum((1.0 - self._q) * game.weights))

    def values(self, candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        candidates = np.asarray(candidates, dtype=np.int64)
        self.game.n_evaluations += candidates.size
        return self._value + self.game.marginals(candidates, self._weighted)

    def add(self, player: int) -> None:
        super().add(player)
        game = self.game
        lo, hi = game._row_start[player], game._row_start[player + 1]
        needs = game._needs[lo:hi]
        self._log_q[needs] += game._log_1mp[lo:hi]
        self._q[needs] = np.exp(self._log_q[needs])
        self._weighted[needs] = game.weights[needs] * self._q[needs]
        self._value = float(np.sum((1.0 - self._q) * game.weights))


def random_coverage(
    n_sellers: int,
    n_needs: int,
    *,
    seed: int | np.random.Generator,
    need_value: float = 10.0,
    specialists: float = 0.8,
    player_names: Sequence[str] | None = None,
) -> CoverageGame:
    """A random coverage game: a fraction ``specialists`` of the sellers cover 1-4 needs
    well (``p ~ U(0.3, 0.9)``), the rest cover every need thinly (``p ~ U(0, 0.15)``); need
    weights are exponential with mean ``need_value``."""
    rng = np.random.default_rng(seed)
    coverage = np.zeros((n_sellers, n_needs))
    is_specialist = rng.random(n_sellers) < specialists
    for j in range(n_sellers):
        if is_specialist[j]:
            k = int(rng.integers(1, min(4, n_needs) + 1))
            needs = rng.choice(n_needs, size=k, replace=False)
            coverage[j, needs] = rng.uniform(0.3, 0.9, size=k)
        else:
            coverage[j] = rng.uniform(0.0, 0.15, size=n_needs)
    weights = rng.exponential(need_value, size=n_needs)
    return CoverageGame(coverage, weights, player_names)


def random_coverage_market(
    n_sellers: int, n_needs: int, *, seed: int, need_value: float = 10.0, specialists: float = 0.8,
) -> tuple[CoverageGame, NDArray[np.float64]]:
    """A random coverage game (:func:`random_coverage`) and private costs proportional to
    the data a seller holds (``sum_t p_jt``) times a lognormal factor."""
    rng = np.random.default_rng(seed)
    names = [f"seller_{j:04d}" for j in range(n_sellers)]
    game = random_coverage(n_sellers, n_needs, seed=rng, need_value=need_value, specialists=specialists,
                           player_names=names)
    costs = game.coverage.sum(axis=1) * rng.lognormal(mean=1.0, sigma=0.5, size=n_sellers)
    return game, costs
