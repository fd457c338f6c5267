"""Folds over a game's table (valuation.folds) against the textbook sums, coalition by coalition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.market.allocation import ExactAllocation, subset_sums
from dataprice.valuation import folds
from dataprice.valuation.game import TabulatedGame, masks_to_coalitions, popcount
from dataprice.valuation.methods.exact import (
    banzhaf_coefficient,
    marginals_by_size,
    semivalues_from_table,
    shapley_coefficient,
)


def _textbook(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """phi_i = sum_{S without i} w(|S|) [v(S + i) - v(S)], one coalition at a time."""
    n = int(np.log2(values.size))
    phi = np.zeros(n)
    for i in range(n):
        for mask in range(values.size):
            if not mask >> i & 1:
                phi[i] += weights[bin(mask).count("1")] * (values[mask | 1 << i] - values[mask])
    return phi


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-6, 1.0, 1e6]))
def test_semivalues_equal_the_textbook_sum(n, seed, scale):
    values = np.random.default_rng(seed).normal(size=2**n) * scale
    table = TabulatedGame(values)
    for coefficient in (shapley_coefficient, banzhaf_coefficient):
        expected = _textbook(values, coefficient(n))
        got = semivalues_from_table(table, coefficient)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale * max(1, n))


def test_semivalues_on_tables_wider_than_a_row():
    """n above folds.ROW_BITS reads the table as rows sharing high bits: still the textbook
    value (checked on an additive-plus-pairwise game whose Shapley value is known)."""
    n = folds.ROW_BITS + 2
    rng = np.random.default_rng(3)
    weights, pair = rng.normal(size=n), rng.normal()
    masks = np.arange(2**n, dtype=np.int64)
    both = ((masks >> 0) & 1) & ((masks >> (n - 1)) & 1)  # players 0 and n-1 together earn `pair`
    table = TabulatedGame(subset_sums(weights) + pair * both)
    expected = weights.copy()
    expected[[0, n - 1]] += pair / 2
    np.testing.assert_allclose(semivalues_from_table(table, shapley_coefficient), expected, atol=1e-9)
    banzhaf = weights.copy()
    banzhaf[[0, n - 1]] += pair / 2
    np.testing.assert_allclose(semivalues_from_table(table, banzhaf_coefficient), banzhaf, atol=1e-9)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_sums_and_maxima_with_and_without_each_player(n):
    rng = np.random.default_rng(n)
    table = rng.normal(size=2**n)
    table[rng.random(2**n) < 0.2] = -np.inf  # infeasible coalitions
    table[0] = 0.0
    members = masks_to_coalitions(np.arange(2**n), n)
    finite = np.where(np.isfinite(table), table, 0.0)
    np.testing.assert_allclose(folds.sums_with(finite), [finite[members[:, i]].sum() for i in range(n)])
    with_i, without_i = folds.maxima(table)
    np.testing.assert_array_equal(with_i, [table[members[:, i]].max() for i in range(n)])
    np.testing.assert_array_equal(without_i, [table[~members[:, i]].max() for i in range(n)])


def test_sums_by_size_and_the_breakdown_by_size():
    n = 6
    values = np.random.default_rng(0).normal(size=2**n)
    sizes = popcount(np.arange(2**n))
    members = masks_to_coalitions(np.arange(2**n), n)
    with_i, total = folds.sums_by_size(values)
    for k in range(n + 1):
        assert total[k] == pytest.approx(values[sizes == k].sum())
        for i in range(n):
            assert with_i[i, k] == pytest.approx(values[(sizes == k) & members[:, i]].sum())
    breakdown = marginals_by_size(TabulatedGame(values))
    # the plain mean over sizes is the Shapley value
    np.testing.assert_allclose(breakdown.mean(axis=1), _textbook(values, shapley_coefficient(n)), atol=1e-12)


def test_member_masks_give_the_subgame():
    members = np.array([4, 0, 2])
    masks = folds.member_masks(members)
    expected = [sum(1 << int(members[j]) for j in range(3) if m >> j & 1) for m in range(8)]
    assert masks.tolist() == expected


def test_welfare_extremes_equal_the_coalition_by_coalition_maxima():
    """A_j (best welfare with j, its own report not counted) and W_-j, with a reserve that
    bars two sellers: the barred seller's A_j counts only coalitions feasible for the others."""
    n = 7
    rng = np.random.default_rng(5)
    table = TabulatedGame(rng.uniform(0, 10, size=2**n))
    bids = rng.uniform(0, 3, size=n)
    bids[[1, 4]] = 5.0
    members = masks_to_coalitions(np.arange(2**n), n)
    for reserve in (None, 4.0):
        a, w = ExactAllocation().welfare_extremes(table, bids, reserve)
        for j in range(n):
            others = np.delete(np.arange(n), j)
            barred = [] if reserve is None else [k for k in others if bids[k] > reserve]
            ok = ~members[:, barred].any(axis=1) if barred else np.ones(2**n, dtype=bool)
            welfare_others = table.values - members[:, others].astype(float) @ bids[others]
            assert a[j] == pytest.approx(welfare_others[ok & members[:, j]].max(), abs=1e-12)
            ok_j = ok & ~(members[:, j] & (reserve is not None and bids[j] > reserve))
            assert w[j] == pytest.approx((welfare_others - members[:, j] * bids[j])[ok_j & ~members[:, j]].max(), abs=1e-12)
