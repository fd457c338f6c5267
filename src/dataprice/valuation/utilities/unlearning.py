"""Valuation by unlearning: one model trained on all data, coalitions measured by removal.

The model is L2-regularised softmax regression (the classifier buyer's model family):

    ``L_D(theta) = sum_{i in D} l_i(theta) + (lambda / 2) ||theta||^2``,  ``theta_N = argmin L_D``.

``v(S)`` is the validation accuracy of the model with the data of the sellers *outside* S
removed from ``theta_N`` -- never retrained. Two removal rules:

* ``newton`` (Guo et al. 2020, certified removal): one Newton step on the remaining loss,
  ``theta' = theta_N + (H_N - H_R)^{-1} grad L_R(theta_N)``, using that
  ``grad L_{D \\ R}(theta_N) = -grad L_R(theta_N)`` at the optimum. ``H_N`` (the full Hessian,
  ``lambda I`` included) is stored once by the buyer at training time, so removing ``R``
  touches only ``R``'s data. Exact for a quadratic loss; second-order accurate otherwise,
  and least accurate when ``R`` is most of the data.
* ``gradient_ascent``: ascend ``L_R`` (scaled by ``1/|D|``) from ``theta_N`` until the mean
  loss on ``R`` reaches the model's mean loss on validation data (``R`` then looks unseen)
  or ``max_steps`` -- model-agnostic, needs no Hessian.

:class:`RetrainingGame` trains the same model from scratch on each coalition: the ground
truth the unlearning values are compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game
from dataprice.valuation.utilities.classifier import SellerShards


def _design(X: NDArray) -> NDArray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


class SoftmaxRegression:
    """Multinomial logistic regression with an explicit loss, gradient and Hessian."""

    def __init__(self, n_features: int, n_classes: int, l2: float = 1.0) -> None:
        self.d = n_features + 1
        self.k = n_classes
        self.l2 = float(l2)

    def probabilities(self, theta: NDArray, X1: NDArray) -> NDArray:
        logits = X1 @ theta.reshape(self.d, self.k)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def data_loss(self, theta: NDArray, X1: NDArray, y: NDArray) -> float:
        p = self.probabilities(theta, X1)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).sum())

    def data_gradient(self, theta: NDArray, X1: NDArray, y: NDArray) -> NDArray:
        p = self.probabilities(theta, X1)
        p[np.arange(len(y)), y] -= 1.0
        return (X1.T @ p).ravel()

    def data_hessian(self, theta: NDArray, X1: NDArray) -> NDArray:
        """``sum_i (diag(p_i) - p_i p_i^T) kron x_i x_i^T`` in the ``(d*k)`` parameter layout."""
        p = self.probabilities(theta, X1)
        h = np.zeros((self.d, self.k, self.d, self.k))
        for a in range(self.k):
            for b in range(self.k):
                w = p[:, a] * ((a == b) - p[:, b])
                h[:, a, :, b] = (X1 * w[:, None]).T @ X1
        return h.reshape(self.d * self.k, self.d * self.k)

    def fit(self, X1: NDArray, y: NDArray) -> NDArray:
        """``argmin sum_i l_i + (lambda/2) ||theta||^2`` by L-BFGS (deterministic)."""
        theta0 = np.zeros(self.d * self.k)

        def objective(theta):
            return (self.data_loss(theta, X1, y) + 0.5 * self.l2 * theta @ theta,
                    self.data_gradient(theta, X1, y) + self.l2 * theta)

        return minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500, "gtol": 1e-8}).x

    def accuracy(self, theta: NDArray, X1: NDArray, y: NDArray) -> float:
        return float(np.mean(self.probabilities(theta, X1).argmax(axis=1) == y))


class _ShardModel:
    """What every game here shares: the shards, the model family, validation data."""

    def __init__(self, shards: SellerShards, l2: float) -> None:
        self.shards = shards
        self.model = SoftmaxRegression(shards.X_train.shape[1], shards.n_classes, l2)
        self.X1 = _design(shards.X_train)
        self.X1_val = _design(shards.X_val)
        self.chance = 1.0 / shards.n_classes

    def points_of(self, sellers: NDArray[np.int64]) -> NDArray[np.bool_]:
        return np.isin(self.shards.owners, sellers)


class UnlearningGame(Game):
    """``v(S) = kappa (acc(theta_N minus the data of targets outside S) - 1/K)``.

    Players are the ``targets`` (default: every seller); the other sellers' data is never
    removed and never read after training (partial valuation). ``n_unlearning_runs`` counts
    the removals computed; the model is trained once.
    """

    def __init__(
        self, shards: SellerShards, *, targets: Sequence[int] | None = None,
        method: Literal["newton", "gradient_ascent"] = "newton", l2: float = 1.0,
        value_per_quality: float = 1.0, max_steps: int = 200, step_size: float = 1.0,
        player_names: Sequence[str] | None = None,
    ) -> None:
        targets = np.arange(shards.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        super().__init__(len(targets), player_names)
        self.base = _ShardModel(shards, l2)
        self.targets = targets
        self.method = method
        self.value_per_quality = float(value_per_quality)
        self.max_steps, self.step_size = max_steps, step_size
        m, s = self.base.model, shards
        self.theta = m.fit(self.base.X1, s.y_train)  # the one training run
        self.hessian = m.data_hessian(self.theta, self.base.X1) + m.l2 * np.eye(m.d * m.k)  # stored by the buyer
        self.validation_loss = m.data_loss(self.theta, self.base.X1_val, s.y_val) / len(s.y_val)
        self.n_unlearning_runs = 0

    def unlearn(self, removed: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Parameters after removing the points ``removed`` (a mask over training points)."""
        if not removed.any():
            return self.theta
        self.n_unlearning_runs += 1
        m, X1, y = self.base.model, self.base.X1[removed], self.base.shards.y_train[removed]
        if self.method == "newton":
            h_remaining = self.hessian - m.data_hessian(self.theta, X1)
            return self.theta + np.linalg.solve(h_remaining, m.data_gradient(self.theta, X1, y))
        theta = self.theta.copy()
        n_total = len(self.base.shards.y_train)
        for _ in range(self.max_steps):
            if m.data_loss(theta, X1, y) / len(y) >= self.validation_loss:
                break
            theta = theta + self.step_size * m.data_gradient(theta, X1, y) / n_total
        return theta

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        out = np.empty(coalitions.shape[0])
        s = self.base.shards
        for row, members in enumerate(coalitions):
            if not members.any() and len(self.targets) == s.n_sellers:
                out[row] = 0.0  # no data at all: chance level, v(empty) = 0
                continue
            removed = self.base.points_of(self.targets[~members])
            theta = self.unlearn(removed)
            out[row] = self.value_per_quality * (self.base.model.accuracy(theta, self.base.X1_val, s.y_val) - self.base.chance)
        return out


class RetrainingGame(Game):
    """``v(S) = kappa (acc(softmax regression trained from scratch on S's data) - 1/K)``:
    the ground truth for :class:`UnlearningGame` (same model family and regularisation)."""

    def __init__(self, shards: SellerShards, *, l2: float = 1.0, value_per_quality: float = 1.0,
                 targets: Sequence[int] | None = None, player_names: Sequence[str] | None = None) -> None:
        targets = np.arange(shards.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        super().__init__(len(targets), player_names)
        self.base = _ShardModel(shards, l2)
        self.targets = targets
        self.value_per_quality = float(value_per_quality)
        self.n_trainings = 0

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        out = np.empty(coalitions.shape[0])
        s = self.base.shards
        for row, members in enumerate(coalitions):
            keep = ~self.base.points_of(self.targets[~members])
            if not keep.any():
                out[row] = 0.0
                continue
            self.n_trainings += 1
            theta = self.base.model.fit(self.base.X1[keep], s.y_train[keep])
            out[row] = self.value_per_quality * (self.base.model.accuracy(theta, self.base.X1_val, s.y_val) - self.base.chance)
        return out
