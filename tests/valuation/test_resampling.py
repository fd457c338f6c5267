"""Intervals from resampling the evaluation set: ground truth on a game whose population
value is known, and the per-point contract of the buyers' games."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.valuation.game import Game, TabulatedGame, masks_to_coalitions
from dataprice.valuation.methods.exact import ExactShapley, marginals_by_size
from dataprice.valuation.resampling import (
    PointCache,
    bootstrap_weights,
    is_pointwise,
    percentile_interval,
)


class SquaredSumGame(Game):
    """``u_i(S) = (sum_{j in S} x_ij)^2`` at evaluation point ``i``; the game is their mean.

    With ``x_ij ~ N(mu_j, sigma_j^2)`` independent, the population game is
    ``v(S) = (sum_{j in S} mu_j)^2 + sum_{j in S} sigma_j^2``.
    """

    def __init__(self, x: np.ndarray) -> None:
        super().__init__(x.shape[1])
        self.x = x
        self.n_points = x.shape[0]

    def point_values(self, coalitions):
        return (np.asarray(coalitions, dtype=float) @ self.x.T) ** 2

    def from_points(self, points, weights=None):
        return points.mean(axis=1) if weights is None else points @ weights

    def value_function(self, coalitions):
        return self.from_points(self.point_values(coalitions))


MU = np.array([1.0, 0.5, -0.3, 2.0])
SIGMA = np.array([1.0, 2.0, 0.5, 1.5])


def population_shapley() -> np.ndarray:
    n = MU.size
    members = masks_to_coalitions(np.arange(2**n), n).astype(float)
    table = TabulatedGame((members @ MU) ** 2 + members @ SIGMA**2)
    return ExactShapley().fit(table).result.values


def shapley_operator(n: int) -> np.ndarray:
    """``M`` with ``phi = M v`` for a table ``v`` (exact Shapley is linear in the game),
    read off the method itself on the unit tables."""
    return np.column_stack([ExactShapley().fit(TabulatedGame(np.eye(2**n)[k])).result.values for k in range(2**n)])


def test_95_percent_intervals_cover_the_population_shapley_value_in_90_to_99_percent_of_200_repetitions():
    truth = population_shapley()
    operator = shapley_operator(MU.size)
    rng = np.random.default_rng(2026)
    repetitions, points, draws = 200, 150, 400
    covered = np.zeros(MU.size)
    for _ in range(repetitions):
        game = SquaredSumGame(rng.normal(MU, SIGMA, size=(points, MU.size)))
        cache = PointCache(game)
        table = cache.table_points()  # every coalition's per-point scores, computed once
        weights = bootstrap_weights(points, draws, rng)
        values = cache.tabulated(table, weights.T).T  # (draws, 2^n): each resampled game's table
        lo, hi = percentile_interval(values @ operator.T, 0.95)
        covered += (lo <= truth) & (truth <= hi)
    coverage = covered / repetitions
    assert np.all((coverage >= 0.90) & (coverage <= 0.99)), coverage


def test_a_point_cache_gives_the_games_own_values_and_resampled_games_without_recomputing():
    rng = np.random.default_rng(0)
    game = SquaredSumGame(rng.normal(MU, SIGMA, size=(30, MU.size)))
    cache = PointCache(game)
    everyone = masks_to_coalitions(np.arange(16), 4)
    assert np.array_equal(cache(everyone), game(everyone))  # the same floats
    computed = cache.computed
    uniform = np.full(30, 1 / 30)
    assert np.allclose(cache.reweighted(uniform)(everyone), game(everyone))
    one_point = np.eye(30)[3]
    assert np.allclose(cache.reweighted(one_point)(everyone), game.point_values(everyone)[:, 3])
    assert cache.computed == computed  # answered from memory
    weights = bootstrap_weights(30, 5, rng)
    for b, draw in enumerate(cache.resampled(weights)):  # all draws at once, one memo
        assert np.allclose(draw(everyone), cache.reweighted(weights[b])(everyone))
    assert cache.computed == computed


def test_bootstrap_weights_are_resampling_counts():
    weights = bootstrap_weights(50, 7, np.random.default_rng(1))
    assert weights.shape == (7, 50)
    assert np.allclose(weights.sum(axis=1), 1.0)
    assert np.allclose(weights * 50, np.round(weights * 50))
    with pytest.raises(ValueError):
        bootstrap_weights(0, 3, np.random.default_rng(1))


def test_percentile_interval_quantiles():
    draws = np.arange(101, dtype=float)[:, None] * np.array([1.0, -1.0])
    lo, hi = percentile_interval(draws, 0.9)
    assert np.allclose(lo, [5.0, -95.0]) and np.allclose(hi, [95.0, -5.0])
    with pytest.raises(ValueError):
        percentile_interval(draws, 1.0)


def test_shapley_is_the_mean_of_marginals_by_coalition_size():
    rng = np.random.default_rng(3)
    table = TabulatedGame(rng.normal(size=2**5))
    table.values[0] = 0.0
    phi = ExactShapley().fit(table).result.values
    by_size = marginals_by_size(table)
    assert np.allclose(by_size.mean(axis=1), phi)
    assert np.allclose(by_size[:, 0], table.values[1 << np.arange(5)])  # joining nobody: v({i})


@pytest.mark.parametrize("model", ["logistic", "knn"])
def test_a_classifier_scores_each_validation_point_and_the_mean_is_its_accuracy(model):
    from dataprice.buyers.classifier.game import ClassifierGame
    from dataprice.data.shards import make_shards

    game = ClassifierGame(make_shards("iris", 4, seed=1, noisy_sellers=[2]), model=model, value_per_quality=10.0)
    assert is_pointwise(game) and game.n_points == game.shards.y_val.shape[0]
    everyone = masks_to_coalitions(np.arange(16), 4)
    points = game.point_values(everyone)
    assert np.array_equal(game.from_points(points), game(everyone))
    assert game(everyone)[0] == 0.0  # the empty coalition, exactly
    weights = np.zeros(game.n_points)
    weights[:5] = 0.2  # only the first five validation points count
    expected = game.value_per_quality * (points[:, :5].mean(axis=1) / game.point_scale - game.empty_quality)
    assert np.allclose(game.from_points(points, weights), expected)
