"""Asymmetric Shapley: group efficiency, reduction to Shapley, symmetry, exact vs Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.data.shards import make_shards
from dataprice.valuation.game import TabulatedGame
from dataprice.valuation.methods import (
    AsymmetricPermutationShapley,
    ExactAsymmetricShapley,
    ExactShapley,
)

from ..conftest import random_monotone_table


def random_groups(n: int, rng: np.random.Generator) -> list[list[int]]:
    order = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(0, n), replace=False)) if n > 1 else []
    return [g.tolist() for g in np.split(order, cuts)]


@given(st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_values_sum_per_group_to_the_group_increment(n, seed):
    rng = np.random.default_rng(seed)
    table = TabulatedGame(rng.normal(size=2**n))
    groups = random_groups(n, rng)
    phi = ExactAsymmetricShapley(groups=groups).fit(table).result.values
    before = 0
    for group in groups:
        after = before | sum(1 << j for j in group)
        assert phi[group].sum() == pytest.approx(table.values[after] - table.values[before], abs=1e-9)
        before = after


@given(st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_one_group_is_the_shapley_value(n, seed):
    table = TabulatedGame(np.random.default_rng(seed).normal(size=2**n))
    np.testing.assert_allclose(
        ExactAsymmetricShapley(groups=[list(range(n))]).fit(table).result.values,
        ExactShapley().fit(table).result.values, atol=1e-10,
    )


def test_symmetric_sellers_within_a_group_get_equal_values():
    # v depends on how many of players 2, 3, 4 are present (they are interchangeable)
    n = 5
    values = np.zeros(2**n)
    for mask in range(2**n):
        k = sum(mask >> j & 1 for j in (2, 3, 4))
        values[mask] = 3.0 * (mask & 1) + 2.0 * (mask >> 1 & 1) + k**1.5 + 0.5 * (mask & 1) * k
    table = TabulatedGame(values)
    phi = ExactAsymmetricShapley(groups=[[0, 1], [2, 3, 4]]).fit(table).result.values
    assert phi[2] == pytest.approx(phi[3]) == pytest.approx(phi[4])


def test_exact_and_monte_carlo_agree_on_ten_players():
    table = random_monotone_table(10, np.random.default_rng(3))
    groups = [[7, 2, 9], [0, 4], [1, 3, 5, 6, 8]]
    exact = ExactAsymmetricShapley(groups=groups).fit(table).result.values
    mc = AsymmetricPermutationShapley(groups=groups, max_evaluations=40_000, seed=1).fit(table).result
    assert np.all(np.abs(mc.values - exact) <= 4 * mc.stderr + 1e-9)
    assert np.abs(mc.values - exact).max() < 0.1


def test_groups_must_partition_the_sellers():
    table = TabulatedGame(np.zeros(8))
    with pytest.raises(ValueError, match="exactly once"):
        ExactAsymmetricShapley(groups=[[0, 1], [1, 2]]).fit(table)
    with pytest.raises(ValueError, match="at least one seller"):
        ExactAsymmetricShapley(groups=[[0, 1, 2], []]).fit(table)


def test_a_reseller_takes_credit_under_shapley_but_not_asymmetric_shapley():
    shards = make_shards("breast_cancer", 5, seed=12, max_points=120, copies=[(4, 0, 0.0)])
    np.testing.assert_array_equal(shards.X_train[shards.owners == 4], shards.X_train[shards.owners == 0])
    game = ClassifierGame(shards, value_per_quality=100)
    shapley = ExactShapley().fit(game).result.values
    asym = ExactAsymmetricShapley(groups=[[0, 1, 2, 3], [4]]).fit(game).result.values
    assert shapley[4] == pytest.approx(shapley[0])  # exact copies are symmetric players
    # alone in the last group, the copier gets exactly what it adds to everything else: its
    # LOO value (not 0: pooled duplicates reweight those points when the model is trained)
    assert asym[4] == pytest.approx(game.grand_value() - game.value_of([0, 1, 2, 3]))
    assert asym[4] < shapley[4] - 1.0
    assert asym[0] > shapley[0]


def test_monte_carlo_asymmetric_shapley_runs_on_an_engine():
    from dataprice.engine import SerialEngine

    table = random_monotone_table(8, np.random.default_rng(2))
    groups = [[0, 1, 2], [3, 4, 5, 6, 7]]
    a = AsymmetricPermutationShapley(groups=groups, max_evaluations=2_000, seed=1).fit(table, engine=SerialEngine(), window=1).result
    b = AsymmetricPermutationShapley(groups=groups, max_evaluations=2_000, seed=1).fit(table, engine=SerialEngine(), window=5).result
    np.testing.assert_array_equal(a.values, b.values)
    assert a.extra["engine"] == "serial" and a.extra["groups"] == groups
