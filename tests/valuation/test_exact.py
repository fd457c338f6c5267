"""Exact semivalues: closed forms on reference games and axioms on random games."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataprice.valuation.game import TabulatedGame
from dataprice.valuation.methods import ExactBanzhaf, ExactShapley, LeaveOneOut
from dataprice.valuation.reference_games import (
    AdditiveGame,
    AirportGame,
    ApexGame,
    GloveGame,
    UnanimityGame,
)

REFERENCE_GAMES = [
    UnanimityGame(6, [1, 3, 4]),
    AdditiveGame([1.0, -2.0, 0.5, 3.0], constant=7.0),
    AirportGame([3.0, 1.0, 4.0, 1.5, 9.0, 2.6]),
    GloveGame(1, 4),
    GloveGame(3, 3),
    ApexGame(7),
]


@pytest.mark.parametrize("game", REFERENCE_GAMES, ids=lambda g: type(g).__name__)
def test_exact_shapley_matches_closed_form(game):
    values = ExactShapley().fit(game).result.values
    np.testing.assert_allclose(values, game.shapley_values(), atol=1e-12)


@pytest.mark.parametrize(
    "game",
    [g for g in REFERENCE_GAMES if not isinstance(g, ApexGame) and getattr(g, "n_left", 1) == 1],
    ids=lambda g: type(g).__name__,
)
def test_exact_banzhaf_matches_closed_form(game):
    values = ExactBanzhaf().fit(game).result.values
    np.testing.assert_allclose(values, game.banzhaf_values(), atol=1e-12)


def test_loo_of_unanimity_game():
    values = LeaveOneOut().fit(UnanimityGame(4, [0, 2])).result.values
    assert values.tolist() == [1.0, 0.0, 1.0, 0.0]


tables = st.integers(min_value=1, max_value=7).flatmap(
    lambda n: st.lists(
        st.floats(-100, 100, allow_nan=False, allow_infinity=False), min_size=2**n, max_size=2**n
    ).map(lambda v: TabulatedGame(np.array(v)))
)


@given(tables)
def test_shapley_efficiency(table):
    phi = ExactShapley().fit(table).result.values
    assert phi.sum() == pytest.approx(table.values[-1] - table.values[0], abs=1e-8)


@given(tables, st.data())
def test_null_player_gets_zero(table, data):
    n = table.n_players
    j = data.draw(st.integers(0, n - 1))
    # make j a null player: v(S + j) = v(S) for every S without j
    values = table.values.copy()
    masks = np.arange(2**n)
    without = masks[(masks & (1 << j)) == 0]
    values[without | (1 << j)] = values[without]
    game = TabulatedGame(values)
    assert ExactShapley().fit(game).result.values[j] == pytest.approx(0.0, abs=1e-9)
    assert ExactBanzhaf().fit(game).result.values[j] == pytest.approx(0.0, abs=1e-9)


@given(tables, st.data())
def test_symmetric_players_get_equal_values(table, data):
    n = table.n_players
    if n < 2:
        return
    i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    # symmetrise: v(S) := v(swap_ij(S)) averaged with v(S)
    masks = np.arange(2**n)
    bi, bj = (masks >> i) & 1, (masks >> j) & 1
    swapped = masks & ~((1 << i) | (1 << j)) | (bi << j) | (bj << i)
    game = TabulatedGame(0.5 * (table.values + table.values[swapped]))
    for method in (ExactShapley(), ExactBanzhaf()):
        values = method.fit(game).result.values
        assert values[i] == pytest.approx(values[j], abs=1e-9)


@given(tables, st.integers(0, 2**32 - 1))
def test_additivity(table, seed):
    other = TabulatedGame(np.random.default_rng(seed).normal(size=table.values.shape))
    total = TabulatedGame(table.values + other.values)
    for method in (ExactShapley, ExactBanzhaf):
        lhs = method().fit(total).result.values
        rhs = method().fit(table).result.values + method().fit(other).result.values
        np.testing.assert_allclose(lhs, rhs, atol=1e-8)


def test_exact_on_untabulated_game_counts_2n_evaluations():
    game = AirportGame([1.0, 2.0, 3.0, 4.0, 5.0])
    result = ExactShapley().fit(game).result
    assert result.n_evaluations == 32 and game.n_evaluations == 32
    assert result.converged
