"""A large data-acquisition market: sellers whose data covers the buyer's needs.

The buyer needs ``T`` kinds of examples (topics, classes, regions), worth ``w_t`` each.
Seller ``j`` covers need ``t`` with probability ``p_jt`` (how likely its data contains a
usable example of that kind), independently across sellers, so

    ``v(S) = sum_t w_t (1 - prod_{j in S} (1 - p_jt))``,

the expected value of the needs covered (probabilistic coverage). It is monotone and
submodular -- a second seller covering the same need adds less -- and cheap enough to
evaluate that markets of thousands of sellers run in seconds.

:meth:`CoverageGame.values_with` is incremental: with ``q_t(S) = prod_{j in S}(1 - p_jt)``,
``v(S + k) = v(S) + sum_t w_t q_t(S) p_kt``, one matrix-vector product per greedy step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game


class CoverageGame(Game):
    """``v(S) = sum_t w_t (1 - prod_{j in S}(1 - p_jt))``.

    Args:
        coverage: ``p``, shape ``(n_sellers, n_needs)``, entries in ``[0, 1)``.
        weights: ``w``, shape ``(n_needs,)``, non-negative.
    """

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
        self._log_miss = np.log1p(-coverage)  # log(1 - p_jt)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        miss = np.exp(coalitions.astype(np.float64) @ self._log_miss)  # q_t(S)
        return (1.0 - miss) @ self.weights

    def values_with(self, base: NDArray[np.bool_], candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        candidates = np.asarray(candidates, dtype=np.int64)
        miss = np.exp(np.asarray(base, dtype=np.float64) @ self._log_miss)
        # v(S + k) = v(S) + sum_t w_t q_t(S) p_kt: one matrix-vector product for all sellers
        gains = self.coverage @ (self.weights * miss)
        values = (1.0 - miss) @ self.weights + gains[candidates]
        self.n_evaluations += candidates.size
        return values


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
