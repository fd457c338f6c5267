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
