"""In-Run Data Shapley (dataprice.valuation.inrun) against exact Shapley of the step games."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.models.softmax import SoftmaxValidation, with_intercept
from dataprice.valuation.game import TabulatedGame, masks_to_coalitions
from dataprice.valuation.inrun import SGDConfig, ghost_dots, linear_inrun
from dataprice.valuation.methods import ExactShapley


class LinearSquared:
    """Linear regression with squared loss ``l_i = (x_i theta - y_i)^2 / 2`` (so ``r_i = x_i theta - y_i``)
    and a validation utility that is linear (``w . theta``) or quadratic (minus half the mean
    squared validation error)."""

    def __init__(self, X_val, y_val, linear_weights=None):
        self.X_val, self.y_val, self.w = X_val, y_val[:, None], linear_weights

    def residuals(self, theta, X1, y):
        return X1 @ theta - y[:, None]

    def utility(self, theta):
        if self.w is not None:
            return float(np.sum(self.w * theta))
        return float(-0.5 * np.mean((self.X_val @ theta - self.y_val) ** 2))

    def utility_gradient(self, theta):
        if self.w is not None:
            return self.w
        return -(self.X_val.T @ (self.X_val @ theta - self.y_val)) / len(self.y_val)

    def utility_hvp(self, theta, direction):
        if self.w is not None:
            return np.zeros_like(direction)
        return -(self.X_val.T @ (self.X_val @ direction)) / len(self.y_val)


def _one_step_game(model, X1, y, theta, lr):
    """The local game of one full-batch step: ``v(S) = U(theta - (lr/n) sum_S g_i) - U(theta)``."""
    n = X1.shape[0]
    R = model.residuals(theta, X1, y)
    values = []
    for row in masks_to_coalitions(np.arange(2**n), n):
        G = X1[row].T @ R[row]
        values.append(model.utility(theta - lr / n * G) - model.utility(theta))
    return TabulatedGame(np.array(values))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7), st.integers(0, 2**32 - 1), st.booleans())
def test_one_step_values_are_the_exact_shapley_values_of_the_step(n, seed, linear):
    """Linear utility: first order is exact. Quadratic utility (squared validation error of
    a linear model): second order is exact. Either way the values sum to the step's change."""
    rng = np.random.default_rng(seed)
    d = 3
    X1, y = rng.normal(size=(n, d)), rng.normal(size=n)
    X_val, y_val = rng.normal(size=(9, d)), rng.normal(size=9)
    model = LinearSquared(X_val, y_val, rng.normal(size=(d, 1)) if linear else None)
    theta0 = rng.normal(size=(d, 1))
    lr = 0.3
    config = SGDConfig(epochs=1, batch_size=n, learning_rate=lr, seed=seed)
    _, trace = linear_inrun(model, X1, y, np.arange(n), n, theta0, config, order=1 if linear else 2)
    exact = ExactShapley().fit(_one_step_game(model, X1, y, theta0, lr)).result.values
    np.testing.assert_allclose(trace.values, exact, rtol=1e-9, atol=1e-12)
    assert trace.remainder == pytest.approx(0.0, abs=1e-12)
    if not linear:  # the first order alone misses the batch's interactions
        assert not np.allclose(trace.first, exact, rtol=1e-6, atol=1e-12)


def test_ghost_dot_products_equal_explicit_per_example_gradients():
    rng = np.random.default_rng(3)
    X1, R, M = rng.normal(size=(6, 4)), rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    explicit = np.array([np.sum(np.outer(X1[i], R[i]) * M) for i in range(6)])
    np.testing.assert_allclose(ghost_dots(X1, R, M), explicit)


def test_softmax_hvp_is_the_derivative_of_the_gradient():
    rng = np.random.default_rng(0)
    X1 = with_intercept(rng.normal(size=(40, 3)))
    model = SoftmaxValidation(X1, rng.integers(0, 3, 40), 3)
    theta, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    eps = 1e-6
    numeric = (model.utility_gradient(theta + eps * v) - model.utility_gradient(theta - eps * v)) / (2 * eps)
    np.testing.assert_allclose(model.utility_hvp(theta, v), numeric, rtol=1e-5, atol=1e-8)
    numeric_grad = np.array([(model.utility(theta + eps * e) - model.utility(theta - eps * e)) / (2 * eps)
                             for e in np.eye(12).reshape(12, 4, 3)]).reshape(4, 3)
    np.testing.assert_allclose(model.utility_gradient(theta), numeric_grad, rtol=1e-5, atol=1e-8)


def _noisy_problem(seed=0, n_sellers=6, per_seller=40):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_sellers * per_seller + 300, n_features=6, n_informative=4,
                               n_classes=3, n_clusters_per_class=1, random_state=seed)
    X1 = with_intercept(X)
    X_train, y_train = X1[:-300], y[:-300].copy()
    owners = np.repeat(np.arange(n_sellers), per_seller)
    noisy = owners == n_sellers - 1
    y_train[noisy] = (y_train[noisy] + 1) % 3  # the last seller's labels are all wrong
    return X_train, y_train, owners, X1[-300:], y[-300:]


def test_softmax_run_values_sum_to_the_change_up_to_a_small_remainder_and_find_the_bad_seller():
    X_train, y_train, owners, X_val, y_val = _noisy_problem()
    model = SoftmaxValidation(X_val, y_val, 3)
    config = SGDConfig(epochs=4, batch_size=16, learning_rate=0.1, weight_decay=1e-3, seed=1)
    theta, trace = linear_inrun(model, X_train, y_train, owners, 6, np.zeros((7, 3)), config, order=2)
    first_order = linear_inrun(model, X_train, y_train, owners, 6, np.zeros((7, 3)), config, order=1)[1]
    assert trace.utility_change > 0
    # the second order closes most of the first order's gap to the real change
    assert abs(trace.remainder) < 0.01 * trace.utility_change  # measured 0.0019 of 0.57
    assert abs(trace.remainder) < abs(first_order.remainder)
    sellers = trace.seller_values()
    assert int(np.argmin(sellers)) == 5 and sellers[5] < 0 < sellers[:5].min()
    # the plain run reaches the same parameters: valuing does not change training
    plain, none = linear_inrun(model, X_train, y_train, owners, 6, np.zeros((7, 3)), config, value=False)
    assert none is None
    np.testing.assert_allclose(plain, theta)


def test_a_validation_batch_per_step_gives_unbiased_values_and_the_same_training():
    """Each step's values with U on a random validation subset are unbiased for the values
    with U on all of it: averaged over 200 draws of the subsets, the seller values come
    within 3% of the full-validation values; training is untouched."""
    X_train, y_train, owners, X_val, y_val = _noisy_problem(seed=2, per_seller=20)
    model = SoftmaxValidation(X_val, y_val, 3)
    config = SGDConfig(epochs=2, batch_size=20, learning_rate=0.1, seed=0)
    theta, full = linear_inrun(model, X_train, y_train, owners, 6, np.zeros((7, 3)), config, order=2)
    draws = []
    for validation_seed in range(200):
        theta_sub, trace = linear_inrun(model, X_train, y_train, owners, 6, np.zeros((7, 3)), config, order=2,
                                        validation_batch=30, n_validation=300, validation_seed=validation_seed)
        draws.append(trace.seller_values())
    np.testing.assert_array_equal(theta_sub, theta)
    assert trace.validation_points == 30
    mean = np.mean(draws, axis=0)
    assert np.abs(mean - full.seller_values()).max() < 0.03 * np.abs(full.seller_values()).max()
    assert np.std(draws, axis=0).max() > 0.01 * np.abs(full.seller_values()).max()  # the draws do differ


def test_gradient_similarity_is_the_mean_cosine_of_descent_and_utility_gradients():
    """One full-batch step with weight decay: the score is ``cos(-g_i, grad U)`` computed from
    each example's explicit gradient; over a run the flipped seller scores lowest."""
    rng = np.random.default_rng(5)
    X1, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    model = SoftmaxValidation(rng.normal(size=(30, 4)), rng.integers(0, 3, 30), 3)
    theta0 = rng.normal(size=(4, 3))
    config = SGDConfig(epochs=1, batch_size=6, learning_rate=0.1, weight_decay=0.3, seed=0)
    _, trace = linear_inrun(model, X1, y, np.arange(6), 6, theta0, config, order=1, similarity=True)
    R = model.residuals(theta0, X1, y)
    grad_u = model.utility_gradient(theta0)
    for i in range(6):
        g = np.outer(X1[i], R[i]) + 0.3 * theta0
        expected = -np.sum(g * grad_u) / (np.linalg.norm(g) * np.linalg.norm(grad_u))
        assert trace.similarity[i] == pytest.approx(expected, rel=1e-10)
    X_train, y_train, owners, X_val, y_val = _noisy_problem()
    _, run = linear_inrun(SoftmaxValidation(X_val, y_val, 3), X_train, y_train, owners, 6, np.zeros((7, 3)),
                          SGDConfig(epochs=3, batch_size=16, learning_rate=0.1, seed=0), order=1, similarity=True)
    assert np.all(np.abs(run.similarity) <= 1.0)
    per_seller = np.bincount(owners, weights=run.similarity) / np.bincount(owners)
    assert int(np.argmin(per_seller)) == 5 and per_seller[5] < 0 < per_seller[:5].min()


def test_a_count_sketch_keeps_inner_products_on_average_and_projected_similarity_finds_the_flipped_seller():
    """``E <P x, P y> = <x, y>`` over sketch seeds (within 4 standard errors), the sketch is
    fixed by its seed, and gradient similarity on sketched gradients (LESS-style) agrees
    with the exact cosines and still ranks the flipped seller last."""
    from dataprice.valuation.inrun import CountSketch

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(1, 300)), rng.normal(size=(1, 300))
    draws = np.array([(CountSketch(16, s)(0, x) @ CountSketch(16, s)(0, y).T).item() for s in range(400)])
    assert abs(draws.mean() - (x @ y.T).item()) < 4 * draws.std() / np.sqrt(draws.size)
    np.testing.assert_array_equal(CountSketch(16, 7)(3, x), CountSketch(16, 7)(3, x))
    X_train, y_train, owners, X_val, y_val = _noisy_problem()
    config = SGDConfig(epochs=3, batch_size=16, learning_rate=0.1, seed=0)
    runs = {k: linear_inrun(SoftmaxValidation(X_val, y_val, 3), X_train, y_train, owners, 6, np.zeros((7, 3)), config,
                            order=1, similarity=True, projection_dim=k)[1] for k in (None, 2048, 8)}
    np.testing.assert_allclose(runs[2048].similarity, runs[None].similarity, atol=0.1)
    for run in runs.values():
        per_seller = np.bincount(owners, weights=run.similarity) / np.bincount(owners)
        assert int(np.argmin(per_seller)) == 5
