"""Lazy greedy on submodular games: exactly the run, and the critical bids, of full greedy."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.buyers.coverage.game import CoverageGame, random_coverage_market
from dataprice.engine import LokyEngine, SerialEngine
from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.rules.myerson import critical_bid
from dataprice.valuation.game import CachedGame, TabulatedGame


def _market_with_ties(n: int, needs: int, seed: int) -> tuple[CoverageGame, np.ndarray]:
    """A random coverage market where every third seller is a copy (same coverage, same
    bid) of an earlier one, and one seller covers nothing: exact ties at every step."""
    game, costs = random_coverage_market(n, needs, seed=seed)
    coverage, bids = game.coverage.copy(), costs.copy()
    rng = np.random.default_rng(seed)
    for j in range(2, n, 3):
        source = int(rng.integers(0, j))
        coverage[j], bids[j] = coverage[source], bids[source]
    coverage[n - 1] = 0.0
    return CoverageGame(coverage, game.weights), bids


def _assert_same_greedy(game, bids, reserve):
    lazy, full = GreedyAllocation(), GreedyAllocation(lazy=False)
    a, b = lazy.trace(game, bids, reserve), full.trace(game, bids, reserve)
    assert a.lazy and not b.lazy
    for field in ("order", "values", "best", "prefix"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_array_equal(a.allocation.selected, b.allocation.selected)
    assert a.allocation.value == b.allocation.value and a.allocation.welfare_at_bids == b.allocation.welfare_at_bids
    for x, y in zip(lazy.critical_bids(game, bids, reserve), full.critical_bids(game, bids, reserve), strict=True):
        np.testing.assert_array_equal(x, y)
    return a


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_reserve", [False, True])
def test_lazy_greedy_takes_the_same_sellers_and_pays_the_same_as_full_greedy(seed, with_reserve):
    game, bids = _market_with_ties(120, 15, seed)
    reserve = float(np.quantile(bids, 0.7)) if with_reserve else None
    trace = _assert_same_greedy(game, bids, reserve)
    assert trace.order.size >= 5
    if with_reserve:
        assert np.all(bids[trace.order] <= reserve)


def test_exact_ties_go_to_the_lowest_index():
    """Three identical sellers: the lowest index is taken first (the others then add less)."""
    coverage = np.array([[0.5, 0.0], [0.5, 0.0], [0.5, 0.0], [0.0, 0.4]])
    game, bids = CoverageGame(coverage, np.array([10.0, 10.0])), np.array([1.0, 1.0, 1.0, 1.0])
    trace = _assert_same_greedy(game, bids, None)
    assert trace.order.tolist()[:2] == [0, 3]


def test_lazy_critical_bids_are_the_selection_thresholds():
    """Brute force on a lazy run: each winner is still selected a hair below its critical
    bid and not a hair above, and the critical bid matches bisection."""
    game, bids = _market_with_ties(60, 10, 7)
    market = SubsetMarket(game, allocation=GreedyAllocation(), reserve=float(np.quantile(bids, 0.8)))
    outcome = settle(market, bids, "myerson", bids)
    winners = np.flatnonzero(outcome.selected)
    assert winners.size >= 3 and market.allocation.trace(game, bids, market.reserve).lazy
    for j in winners:
        price = outcome.payments[j]
        assert price >= bids[j] - 1e-9
        for u, chosen in ((price - 1e-7, True), (price + 1e-7, False)):
            moved = bids.copy()
            moved[j] = u
            assert bool(market.allocate(moved).selected[j]) is chosen, (j, u)
    for j in winners[:3]:
        assert outcome.payments[j] == pytest.approx(critical_bid(market, bids, j), abs=1e-6)


def test_critical_bids_of_some_sellers_equal_those_of_all():
    game, bids = random_coverage_market(150, 12, seed=4)
    rule = GreedyAllocation()
    order = rule.trace(game, bids).order
    some = order[[0, order.size // 2, -1]]
    part = rule.critical_bids(game, bids, sellers=some)
    whole = rule.critical_bids(game, bids)
    for x, y in zip(part, whole, strict=True):
        np.testing.assert_array_equal(x[some], y[some])
    with pytest.raises(ValueError, match="not selected"):
        rule.critical_bids(game, bids, sellers=[int(np.flatnonzero(~rule(game, bids).selected)[0])])


def test_critical_bids_on_an_engine_equal_the_serial_ones():
    """Two local worker processes, lazy and full runs: the same floats as in this process."""
    game, bids = random_coverage_market(200, 15, seed=5)
    engine = LokyEngine(2)
    try:
        for lazy in (None, False):
            serial = GreedyAllocation(lazy=lazy).critical_bids(game, bids, 3.0)
            assert np.isfinite(serial[1]).sum() >= 5
            for on in (SerialEngine(), engine):
                spread = GreedyAllocation(lazy=lazy, engine=on).critical_bids(game, bids, 3.0)
                for x, y in zip(serial, spread, strict=True):
                    np.testing.assert_array_equal(x, y)
    finally:
        engine.shutdown()


def test_a_cached_coverage_game_is_lazy_and_a_table_is_not():
    game, bids = random_coverage_market(80, 10, seed=6)
    cached = CachedGame(game)
    assert cached.submodular and GreedyAllocation().trace(cached, bids).lazy
    np.testing.assert_array_equal(GreedyAllocation().trace(cached, bids).order, GreedyAllocation().trace(game, bids).order)
    # counted here, answered by the coverage game directly (only v(empty) went through the memo)
    assert cached.n_evaluations > 100 and len(cached) == 1
    table = TabulatedGame(np.arange(8, dtype=np.float64))
    assert not GreedyAllocation().trace(table, np.ones(3)).lazy
    with pytest.raises(ValueError, match="submodular"):
        GreedyAllocation(lazy=True)(table, np.ones(3))


def test_a_coverage_value_is_the_same_float_alone_and_in_any_batch():
    game, _ = random_coverage_market(300, 25, seed=8)
    growth = game.growing()
    rng = np.random.default_rng(0)
    for k in rng.permutation(300)[:20]:
        growth.add(int(k))
    everyone = growth.values(np.arange(300))
    for size in (1, 3, 40, 200):
        some = rng.choice(300, size, replace=False)
        np.testing.assert_array_equal(growth.values(some), everyone[some])
