"""Multinomial logistic (softmax) regression: the model the classifier and federated buyers train.

Parameters ``theta`` are a ``(d + 1) x K`` matrix (features plus an intercept, ``K`` classes)
stored flat; for a design row ``x`` (:func:`with_intercept`),
``p(y = k | x) = exp(x theta_k) / sum_c exp(x theta_c)``. :class:`SoftmaxRegression` writes
the L2-regularised objective

    ``L_D(theta) = sum_{i in D} l_i(theta) + (lambda / 2) ||theta||^2``,  ``l_i = -log p(y_i | x_i)``,

with its exact gradient and Hessian (what unlearning's Newton step and federated clients'
SGD need) and fits it by L-BFGS. :func:`logistic_regression_accuracy` trains scikit-learn's
L2 logistic regression (lbfgs, deterministic) and returns its validation accuracy: the
classifier buyer's ``logistic`` model.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression


def with_intercept(X: NDArray) -> NDArray:
    """``[X, 1]``: the design matrix with a constant column (the intercept) appended."""
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


def logistic_regression_accuracy(
    X: NDArray[np.float64], y: NDArray[np.int64], X_val: NDArray[np.float64], y_val: NDArray[np.int64],
    *, regularization: float = 1.0,
) -> float:
    """Validation accuracy of L2 logistic regression (scikit-learn, ``C = regularization``,
    lbfgs, deterministic) trained on ``(X, y)``; data of a single class predicts that class."""
    return float(np.mean(logistic_regression_correct(X, y, X_val, y_val, regularization=regularization)))


def logistic_regression_correct(
    X: NDArray[np.float64], y: NDArray[np.int64], X_val: NDArray[np.float64], y_val: NDArray[np.int64],
    *, regularization: float = 1.0,
) -> NDArray[np.bool_]:
    """Whether each validation point is classified right by the model of
    :func:`logistic_regression_accuracy` (its accuracy is the mean of this vector)."""
    classes = np.unique(y)
    if classes.size == 1:
        return np.asarray(y_val == classes[0])
    clf = LogisticRegression(C=regularization, max_iter=500)
    clf.fit(X, y)
    return np.asarray(clf.predict(X_val) == y_val)


class SoftmaxValidation:
    """Softmax regression as a :class:`~dataprice.valuation.inrun.LinearFeatureModel`: the
    example gradient of ``l_i = -log p(y_i | x_i)`` is ``x_i (p_i - e_{y_i})^T``, and the
    validation utility is the mean log-likelihood ``U(theta) = -(1/m) sum_v l_v(theta)``,
    with ``grad U = -(1/m) X_v^T (P_v - Y_v)`` and
    ``H_U V = -(1/m) sum_v x_v [diag(p_v) - p_v p_v^T] V^T x_v``. Parameters are ``(d, k)``."""

    def __init__(self, X1_val: NDArray, y_val: NDArray, n_classes: int) -> None:
        self.X1_val, self.y_val, self.k = X1_val, np.asarray(y_val, dtype=np.int64), n_classes
        self._at: tuple[NDArray, NDArray] | None = None  # (theta, validation probabilities) last computed

    def subset(self, rows: NDArray[np.int64]) -> SoftmaxValidation:
        """The same model with the utility on validation rows ``rows`` only."""
        return SoftmaxValidation(self.X1_val[rows], self.y_val[rows], self.k)

    @staticmethod
    def _probabilities(theta: NDArray, X1: NDArray) -> NDArray:
        logits = X1 @ theta
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def _validation_probabilities(self, theta: NDArray) -> NDArray:
        """``P_v`` at ``theta``, computed once per parameter array (a step asks for the
        gradient and the Hessian-vector product at the same ``theta``)."""
        if self._at is None or self._at[0] is not theta:
            self._at = (theta, self._probabilities(theta, self.X1_val))
        return self._at[1]

    def residuals(self, theta: NDArray, X1: NDArray, y: NDArray) -> NDArray:
        r = self._probabilities(theta, X1)
        r[np.arange(len(y)), y] -= 1.0
        return r

    def utility(self, theta: NDArray) -> float:
        p = self._validation_probabilities(theta)
        return float(np.mean(np.log(np.clip(p[np.arange(len(self.y_val)), self.y_val], 1e-300, None))))

    def utility_gradient(self, theta: NDArray) -> NDArray:
        r = self._validation_probabilities(theta).copy()
        r[np.arange(len(self.y_val)), self.y_val] -= 1.0
        return -(self.X1_val.T @ r) / len(self.y_val)

    def utility_hvp(self, theta: NDArray, direction: NDArray) -> NDArray:
        p = self._validation_probabilities(theta)
        a = self.X1_val @ direction
        s = p * (a - np.sum(p * a, axis=1, keepdims=True))
        return -(self.X1_val.T @ s) / len(self.y_val)

    def accuracy(self, theta: NDArray) -> float:
        return float(np.mean(self._probabilities(theta, self.X1_val).argmax(axis=1) == self.y_val))
