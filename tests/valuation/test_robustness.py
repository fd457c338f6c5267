"""Utility robustness (dataprice.valuation.robustness) from ground truth.

Swap angles are checked against exact Shapley values of the mixed game
``cos(t) u / |phi(u)| + sin(t) w / |phi(w)|`` (a semivalue is linear in the utility), and
the share of pairs swapped at 90 degrees against the Kendall discordance of the two rankings.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.valuation.game import TabulatedGame
from dataprice.valuation.methods import ExactShapley
from dataprice.valuation.robustness import (
    compare_utilities,
    p_swap_angle,
    spatial_signature,
    swap_angles,
)


def _discordant(x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Pairs ordered (not tied) by ``x``, and how many of them ``y`` orders the other way."""
    i, j = np.triu_indices(x.size, k=1)
    ordered = x[i] != x[j]
    return int(ordered.sum()), int((np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) < 0)[ordered].sum())


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 6), st.integers(0, 2**31 - 1))
def test_turning_the_utility_swaps_exactly_the_pairs_below_the_angle(n, seed):
    """Random games u and w: at each angle t the exact Shapley values of the mixed game order
    the sellers so that the pairs whose swap angle is below t, and only those, changed order."""
    rng = np.random.default_rng(seed)
    u = TabulatedGame(np.concatenate([[0.0], rng.normal(size=2**n - 1)]))
    w = TabulatedGame(np.concatenate([[0.0], rng.normal(size=2**n - 1)]))
    phi_u, phi_w = ExactShapley().fit(u).result.values, ExactShapley().fit(w).result.values
    angles = swap_angles(phi_u, phi_w)
    assert angles.size == n * (n - 1) // 2 and np.all((angles > 0) & (angles < 180))
    for degrees in (10.0, 45.0, 90.0, 135.0, 170.0):
        t = np.radians(degrees)
        mixed = TabulatedGame(np.cos(t) * u.values / np.linalg.norm(phi_u) + np.sin(t) * w.values / np.linalg.norm(phi_w))
        phi_t = ExactShapley().fit(mixed).result.values
        _, swapped = _discordant(phi_u, phi_t)
        near = np.abs(angles - degrees) < 1e-6
        if not near.any():
            assert swapped == int((angles < degrees).sum()), degrees


def test_share_swapped_is_the_kendall_discordance_and_known_cases():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9), rng.normal(size=9)
    (cmp,) = compare_utilities({"u": x, "w": y}, "u")
    pairs, discordant = _discordant(x, y)
    assert cmp.swapped == discordant / pairs
    assert cmp.first_swap == p_swap_angle(swap_angles(x, y), 1)
    # the other utility is the declared one reversed: every pair swaps half-way, at 45 degrees
    (rev,) = compare_utilities({"u": x, "w": -3.0 * x}, "u")
    np.testing.assert_allclose(swap_angles(x, -3.0 * x), 45.0)
    assert rev.spearman == -1.0 and rev.swapped == 1.0 and np.isclose(rev.first_swap, 45.0)
    # the same ranking at another scale: nothing swaps before 135 degrees (past w, towards -u)
    (same,) = compare_utilities({"u": x, "w": 7.0 * x}, "u")
    assert same.spearman == 1.0 and same.swapped == 0.0 and np.isclose(same.first_swap, 135.0)
    assert "Spearman 1.00" in same.sentence() and "no mix of the two changes the order" in same.sentence()


def test_ties_under_the_declared_utility_are_left_out_and_a_zero_utility_has_no_direction():
    x = np.array([1.0, 1.0, 2.0, 0.0])
    assert swap_angles(x, np.array([0.0, 3.0, 1.0, 2.0])).size == 5  # the tied pair (0, 1) is left out
    assert np.isnan(spatial_signature(x, np.zeros(4))[:, 1]).all()
    (flat,) = compare_utilities({"u": x, "w": np.zeros(4)}, "u")
    assert np.isnan(flat.spearman) and np.isnan(flat.first_swap)
