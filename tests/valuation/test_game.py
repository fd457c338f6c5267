from __future__ import annotations

import numpy as np
import pytest

from dataprice.valuation.game import (
    CachedGame,
    TabulatedGame,
    coalitions_to_masks,
    masks_to_coalitions,
    popcount,
    tabulate,
)
from dataprice.valuation.reference_games import AirportGame, GloveGame


def test_masks_roundtrip():
    masks = np.arange(2**7)
    coalitions = masks_to_coalitions(masks, 7)
    assert coalitions.shape == (128, 7)
    assert np.array_equal(coalitions_to_masks(coalitions), masks)
    assert np.array_equal(popcount(masks), coalitions.sum(axis=1))


def test_game_counts_evaluations_and_checks_shape():
    game = GloveGame(2, 3)
    game(np.ones((4, 5), dtype=bool))
    assert game.n_evaluations == 4
    with pytest.raises(ValueError, match="shape"):
        game(np.ones((2, 4), dtype=bool))


def test_empty_coalition_is_an_ordinary_row():
    game = AirportGame([1.0, 2.0])
    assert game.empty_value() == 0.0
    assert game(np.zeros((3, 2), dtype=bool)).tolist() == [0.0, 0.0, 0.0]


def test_cache_evaluates_each_coalition_once():
    inner = AirportGame([1.0, 2.0, 3.0])
    cached = CachedGame(inner)
    batch = masks_to_coalitions([1, 3, 3, 5, 1], 3)
    first = cached(batch)
    assert inner.n_evaluations == 3  # duplicates within the batch computed once
    second = cached(batch)
    assert np.array_equal(first, second)
    assert inner.n_evaluations == 3
    assert cached.n_evaluations == 10 and cached.misses == 3 and cached.hits == 7


def test_tabulation_matches_direct_evaluation_and_roundtrips(tmp_path):
    game = GloveGame(3, 4)
    table = tabulate(game, batch_size=13)
    assert game.n_evaluations == 2**7
    direct = GloveGame(3, 4)(masks_to_coalitions(np.arange(128), 7))
    assert np.array_equal(table.values, direct)
    path = table.save(tmp_path / "glove")
    loaded = TabulatedGame.load(path)
    assert np.array_equal(loaded.values, table.values)
    assert loaded.player_names == table.player_names
    assert loaded.fingerprint() == table.fingerprint()


def test_tabulation_refuses_too_many_players():
    with pytest.raises(ValueError, match="Monte Carlo"):
        tabulate(AirportGame(np.ones(23)))


def test_restrict_is_the_subgame():
    table = tabulate(AirportGame([5.0, 1.0, 3.0, 2.0]))
    sub = table.restrict([2, 0])
    # sub player 0 = original 2, sub player 1 = original 0
    assert sub.values.tolist() == [0.0, 3.0, 5.0, 5.0]
    assert sub.player_names == ("player_2", "player_0")


def test_parallel_tabulation_map_gives_same_table():
    from dataprice.engine import LokyEngine

    game = GloveGame(2, 5)
    engine = LokyEngine(2)
    try:
        parallel = tabulate(game, batch_size=16, map_batches=engine.map)
    finally:
        engine.shutdown()
    assert np.array_equal(parallel.values, tabulate(GloveGame(2, 5)).values)


def test_persistent_store_serves_a_second_run_without_computing(tmp_path):
    """Values computed once are read back by a new cache over the same store and key; a
    different key computes its own; the store survives pickling (workers)."""
    import pickle

    from dataprice.valuation.store import CoalitionStore

    store = CoalitionStore(tmp_path / "values.sqlite")
    game = AirportGame([1.0, 2.0, 3.0, 4.0, 5.0])
    first = CachedGame(game, store=store, key="airport-5")
    table = tabulate(first)
    assert first.computed == 32 and first.stored == 0 and store.count("airport-5") == 32

    game.n_evaluations = 0
    second = CachedGame(game, store=pickle.loads(pickle.dumps(store)), key="airport-5")
    np.testing.assert_array_equal(tabulate(second).values, table.values)
    assert second.computed == 0 and second.stored == 32 and game.n_evaluations == 0

    other = CachedGame(game, store=store, key="another-game")
    other(masks_to_coalitions([3], 5))
    assert other.computed == 1 and store.count() == 33
    with pytest.raises(ValueError, match="needs the game's key"):
        CachedGame(game, store=store)


@pytest.mark.parametrize("max_entries", [1, 2, 7, 64, None])
def test_bounded_cache_holds_at_most_max_entries_and_answers_the_same(max_entries):
    """Random batches (with repeats) over 8 players: every answer is the game's value, the
    cache never holds more than ``max_entries`` coalitions, and the counters add up."""
    from ..conftest import random_table

    game = random_table(8, np.random.default_rng(1))
    cached = CachedGame(game, max_entries=max_entries)
    rng = np.random.default_rng(2)
    for _ in range(60):
        masks = rng.integers(0, 2**8, size=rng.integers(1, 40))
        np.testing.assert_array_equal(cached(masks_to_coalitions(masks, 8)), game.values[masks])
        assert len(cached) <= (max_entries or 2**8)
    assert cached.hits + cached.misses == cached.n_evaluations
    assert cached.computed == cached.misses == game.n_evaluations  # misses are computed once each
    if max_entries is None:
        assert cached.misses == len(cached)  # nothing evicted: each coalition computed once


def test_bounded_cache_keeps_what_was_just_used():
    """A batch of at most ``max_entries // 2`` distinct coalitions is all hits when asked
    again at once, however much came before it."""
    game = AirportGame(np.arange(1.0, 11.0))
    cached = CachedGame(game, max_entries=10)
    rng = np.random.default_rng(3)
    for _ in range(30):
        batch = masks_to_coalitions(rng.choice(2**10, size=5, replace=False), 10)
        cached(batch)
        hits, misses = cached.hits, cached.misses
        cached(batch)
        assert (cached.hits - hits, cached.misses - misses) == (5, 0)


def test_eviction_does_not_change_monte_carlo_values():
    from dataprice.valuation.methods import PermutationShapley

    from ..conftest import random_monotone_table

    table = random_monotone_table(9, np.random.default_rng(5))
    runs = {}
    for limit in (None, 16):
        cached = CachedGame(table, max_entries=limit)
        method = PermutationShapley(max_evaluations=3_000, truncation_rtol=0.01, seed=2)
        runs[limit] = (method.fit(cached).result, cached)
    (free, free_cache), (tight, tight_cache) = runs[None], runs[16]
    np.testing.assert_array_equal(tight.values, free.values)
    np.testing.assert_array_equal(tight.variances, free.variances)
    assert tight.n_evaluations == free.n_evaluations == tight_cache.n_evaluations
    assert len(tight_cache) <= 16 < len(free_cache)
    assert tight_cache.misses > free_cache.misses  # evicted coalitions were computed again


def test_evicted_values_stay_in_the_persistent_store(tmp_path):
    """The store is written through: it receives every computed value, so coalitions
    evicted from memory are read back from disk, not computed again."""
    from dataprice.valuation.store import CoalitionStore

    store = CoalitionStore(tmp_path / "values.sqlite")
    game = AirportGame([1.0, 2.0, 3.0, 4.0, 5.0])
    cached = CachedGame(game, store=store, key="airport-5", max_entries=4)
    first = tabulate(cached, batch_size=3)
    assert cached.computed == 32 == store.count("airport-5") and len(cached) <= 4
    again = tabulate(cached, batch_size=3)
    np.testing.assert_array_equal(again.values, first.values)
    assert cached.computed == 32 and game.n_evaluations == 32  # nothing computed twice
    assert cached.stored >= 28 and len(cached) <= 4


def test_cache_size_must_be_positive():
    with pytest.raises(ValueError, match="max_entries"):
        CachedGame(AirportGame([1.0]), max_entries=0)
