"""The classifier buyer's unlearning game: one model trained on all data, coalitions measured by removal.

The model is L2-regularised softmax regression (:class:`~dataprice.models.softmax.SoftmaxRegression`,
the classifier buyer's model family):

    ``L_D(theta) = sum_{i in D} l_i(theta) + (lambda / 2) ||theta||^2``,  ``theta_N = argmin L_D``.

``v(S)`` is the validation accuracy of the model with the data of the sellers *outside* S
removed from ``theta_N`` -- never retrained. Two removal rules:

* ``newton`` (Guo et al. 2020, certified removal): one Newton step on the remaining loss,
  ``theta' = theta_N + (H_N - H_R)^{-1} grad L_R(theta_N)``, using that
  ``grad L_{D \\ R}(theta_N) = -grad L_R(theta_N)`` at the optimum. ``H_N`` (the full Hessian,
  ``lambda I`` included) is stored once by the buyer at training time, and so are each
  valued seller's Hessian ``H_j`` and gradient ``g_j`` at ``theta_N`` (when they fit in
  :data:`SUMMARY_BYTES`). ``H_R`` and ``grad L_R`` are sums over the removed sellers, so a
  removal costs ``O(|R| p^2 + p^3)`` for ``p = d k`` parameters, whatever the data size
  (one Cholesky solve: ``H_N - H_R = H_{D \\ R} + lambda I`` is positive definite). Exact
  for a quadratic loss; second-order accurate otherwise, and least accurate when ``R`` is
  most of the data.
* ``gradient_ascent``: ascend ``L_R`` (scaled by ``1/|D|``) from ``theta_N`` until the mean
  loss on ``R`` reaches the model's mean loss on validation data (``R`` then looks unseen)
  or ``max_steps`` -- model-agnostic, needs no Hessian.

:class:`RetrainingGame` trains the same model from scratch on each coalition: the ground
truth the unlearning values are compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve

from dataprice._typing import CoalitionMatrix
from dataprice.data.shards import SellerShards
from dataprice.models.softmax import SoftmaxRegression, with_intercept
from dataprice.valuation.game import Game

#: The most memory the per-seller Hessians may take (else a removal reads the removed data).
SUMMARY_BYTES = 512 * 2**20


class _ShardModel:
    """What every game here shares: the shards, the model family, validation data."""

    def __init__(self, shards: SellerShards, l2: float) -> None:
        self.shards = shards
        self.model = SoftmaxRegression(shards.X_train.shape[1], shards.n_classes, l2)
        self.X1 = with_intercept(shards.X_train)
        self.X1_val = with_intercept(shards.X_val)
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
        method: str = "newton", l2: float = 1.0,
        value_per_quality: float = 1.0, max_steps: int = 200, step_size: float = 1.0,
        player_names: Sequence[str] | None = None,
    ) -> None:
        chosen: NDArray[np.int64] = (
            np.arange(shards.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        )
        super().__init__(len(chosen), player_names)
        self.base = _ShardModel(shards, l2)
        self.targets = chosen
        if method not in ("newton", "gradient_ascent"):
            raise ValueError(f"unknown unlearning method {method!r}; use 'newton' or 'gradient_ascent'")
        self.method = method
        self.value_per_quality = float(value_per_quality)
        self.max_steps, self.step_size = max_steps, step_size
        m, s = self.base.model, shards
        self.theta = m.fit(self.base.X1, s.y_train)  # the one training run
        self.hessian = m.data_hessian(self.theta, self.base.X1) + m.l2 * np.eye(m.d * m.k)  # stored by the buyer
        self.validation_loss = m.data_loss(self.theta, self.base.X1_val, s.y_val) / len(s.y_val)
        self.n_unlearning_runs = 0
        p = m.d * m.k
        self.summaries: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        if method == "newton" and chosen.size * p * p * 8 <= SUMMARY_BYTES:
            hessians, gradients = np.empty((chosen.size, p, p)), np.empty((chosen.size, p))
            for t, seller in enumerate(chosen):
                mine = s.owners == seller
                hessians[t] = m.data_hessian(self.theta, self.base.X1[mine])
                gradients[t] = m.data_gradient(self.theta, self.base.X1[mine], s.y_train[mine])
            self.summaries = (hessians, gradients)

    def newton_removal(self, removed_targets: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``theta_N + (H_N - H_R)^{-1} grad L_R(theta_N)`` from the stored per-seller sums
        (``removed_targets``: a mask over the targets)."""
        assert self.summaries is not None
        hessians, gradients = self.summaries
        self.n_unlearning_runs += 1
        h_remaining = self.hessian - hessians[removed_targets].sum(axis=0)
        g = gradients[removed_targets].sum(axis=0)
        try:
            return self.theta + cho_solve(cho_factor(h_remaining), g)
        except np.linalg.LinAlgError:  # not positive definite numerically: fall back to LU
            return self.theta + np.linalg.solve(h_remaining, g)

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
            if self.summaries is not None:
                theta = self.newton_removal(~members)
            else:
                theta = self.unlearn(self.base.points_of(self.targets[~members]))
            out[row] = self.value_per_quality * (self.base.model.accuracy(theta, self.base.X1_val, s.y_val) - self.base.chance)
        return out


class RetrainingGame(Game):
    """``v(S) = kappa (acc(softmax regression trained from scratch on S's data) - 1/K)``:
    the ground truth for :class:`UnlearningGame` (same model family and regularisation)."""

    def __init__(self, shards: SellerShards, *, l2: float = 1.0, value_per_quality: float = 1.0,
                 targets: Sequence[int] | None = None, player_names: Sequence[str] | None = None) -> None:
        chosen: NDArray[np.int64] = (
            np.arange(shards.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        )
        super().__init__(len(chosen), player_names)
        self.base = _ShardModel(shards, l2)
        self.targets = chosen
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
