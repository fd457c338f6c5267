"""The coverage game and a large greedy market with critical payments."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.buyers.coverage.game import CoverageGame, random_coverage_market
from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.rules.myerson import critical_bid
from dataprice.valuation.game import Game


def test_coverage_value_is_the_expected_number_of_needs_covered():
    # one need worth 10; two sellers covering it with 0.5 and 0.2: 10 * (1 - 0.5 * 0.8) = 6
    game = CoverageGame(np.array([[0.5], [0.2]]), np.array([10.0]))
    assert game.value_of([]) == 0.0
    assert game.value_of([0]) == pytest.approx(5.0)
    assert game.value_of([0, 1]) == pytest.approx(6.0)


def test_incremental_step_equals_the_generic_batch_and_is_submodular():
    game, _ = random_coverage_market(60, 12, seed=3)
    rng = np.random.default_rng(0)
    base = rng.random(60) < 0.3
    bigger = base | (rng.random(60) < 0.3)
    candidates = np.flatnonzero(~bigger)
    fast = game.values_with(base, candidates)
    generic = Game.values_with(game, base, candidates)
    np.testing.assert_allclose(fast, generic, rtol=1e-12)
    gain_small = fast - game(base[None, :])[0]
    gain_big = game.values_with(bigger, candidates) - game(bigger[None, :])[0]
    assert np.all(gain_big <= gain_small + 1e-12)


@pytest.mark.parametrize("bad", [np.array([[1.0]]), np.array([[-0.1]])])
def test_coverage_rejects_probabilities_outside_the_unit_interval(bad):
    with pytest.raises(ValueError, match="coverage probabilities"):
        CoverageGame(bad, np.array([1.0]))


def test_large_greedy_market_pays_critical_bids_that_no_deviation_beats():
    """400 sellers: the one-pass critical bids equal bisection for a sample of winners, every
    winner is paid at least its cost, and no sampled seller gains by misreporting."""
    game, costs = random_coverage_market(400, 60, seed=1)
    market = SubsetMarket(game, allocation=GreedyAllocation())
    outcome = settle(market, costs, "myerson", costs)
    winners = np.flatnonzero(outcome.selected)
    assert 10 <= winners.size < 400
    assert np.all(outcome.payments[winners] >= costs[winners] - 1e-9)
    rng = np.random.default_rng(0)
    for j in rng.choice(winners, 3, replace=False):
        assert outcome.payments[j] == pytest.approx(critical_bid(market, costs, j), abs=1e-6)
    losers = np.flatnonzero(~outcome.selected)
    for j in np.concatenate([rng.choice(winners, 3, replace=False), rng.choice(losers, 3, replace=False)]):
        truthful = outcome.utilities[j]
        for factor in (0.0, 0.5, 0.9, 1.1, 1.5, 3.0):
            bids = costs.copy()
            bids[j] = costs[j] * factor
            deviated = settle(market, bids, "myerson", costs)
            assert deviated.utilities[j] <= truthful + 1e-9, (j, factor)


def test_a_cached_coverage_game_uses_the_incremental_step():
    from dataprice.valuation.game import CachedGame

    game, _ = random_coverage_market(50, 10, seed=2)
    cached = CachedGame(game)
    base = np.zeros(50, dtype=bool)
    base[[1, 4]] = True
    np.testing.assert_allclose(cached.values_with(base, np.arange(5, 50)), Game.values_with(game, base, np.arange(5, 50)))
    assert cached.n_evaluations == 45 and cached.computed == 45 and len(cached) == 0  # answered directly, not memoised
