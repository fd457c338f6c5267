"""The classifier buyer's game: sellers own shards of a tabular dataset; ``v(S)`` is validation accuracy.

``v(S) = kappa * (acc(model trained on the union of the shards of S) - acc(empty))`` where
``kappa`` is the buyer's value per unit of accuracy (money) and ``acc(empty)`` is the
accuracy the buyer has without data (chance level, ``1/K`` for ``K`` classes, for trained
models; 0 for the soft-KNN utility), so that ``v(empty) = 0``.

The shards come from :mod:`dataprice.data.shards` (scikit-learn's bundled datasets, no
download; some sellers can hold noisy labels: a fraction of their points get another class
at random) or :mod:`dataprice.data.tabular` (the user's table); the trained model from
:mod:`dataprice.models.softmax`, or a scikit-learn estimator of the allow-list in
:mod:`dataprice.models.estimators`. The unlearning
counterpart of the game lives in :mod:`dataprice.buyers.classifier.unlearning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.buyers.classifier.unlearning import UnlearningGame
from dataprice.data.shards import SellerShards
from dataprice.models.estimators import EstimatorSpec, estimator_accuracy
from dataprice.models.softmax import logistic_regression_accuracy
from dataprice.valuation.game import Game

ClassifierModel = Literal["logistic", "knn"]


class ClassifierGame(Game):
    """``v(S) = kappa * (quality(S) - quality(empty))`` for a classifier trained on S's shards.

    Models:
        * ``logistic``: L2-regularised logistic regression (lbfgs, deterministic); quality is
          validation accuracy; a coalition whose data has one class predicts that class;
          ``quality(empty) = 1/K``.
        * ``knn``: the soft K-nearest-neighbour utility of Jia et al. (2019),
          ``U(S) = mean_val (1/K) sum_{k <= min(K, |S|)} 1[y_{alpha_k(S)} = y_val]`` with
          ``alpha_k(S)`` the k-th nearest training point of ``S``; ``U(empty) = 0``. It is
          vectorised over a batch of coalitions and is the utility whose point-level Shapley
          values KNN-Shapley computes in closed form.
        * ``estimator`` given: that scikit-learn estimator (fitted afresh on each coalition's
          points, ``random_state`` the same for every coalition); quality is validation
          accuracy; a coalition whose data has one class predicts that class;
          ``quality(empty) = 1/K``. ``model`` is then not used.
    """

    def __init__(
        self,
        shards: SellerShards,
        *,
        model: ClassifierModel = "logistic",
        value_per_quality: float = 1.0,
        k_neighbors: int = 5,
        regularization: float = 1.0,
        player_names: Sequence[str] | None = None,
        estimator: EstimatorSpec | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(shards.n_sellers, player_names)
        self.estimator = estimator
        self.random_state = int(random_state)
        self.shards = shards
        self.model = model
        self.value_per_quality = float(value_per_quality)
        self.k_neighbors = int(k_neighbors)
        self.regularization = float(regularization)
        self._neighbor_order: NDArray[np.int64] | None = None

    def unlearning_game(self, targets=None, method: str = "newton") -> Game:
        """The unlearning counterpart of this game (one model, removals instead of retraining)."""
        targets = list(range(self.n_players)) if targets is None else list(targets)
        return UnlearningGame(
            self.shards, targets=targets, method=method, l2=1.0 / self.regularization,
            value_per_quality=self.value_per_quality, player_names=[self.player_names[t] for t in targets],
        )

    @property
    def empty_quality(self) -> float:
        return 0.0 if self.model == "knn" and self.estimator is None else 1.0 / self.shards.n_classes

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        if self.estimator is not None:
            quality = np.array([self._estimator_accuracy(row) for row in coalitions])
        elif self.model == "knn":
            quality = self._soft_knn(coalitions)
        else:
            quality = np.array([self._logistic_accuracy(row) for row in coalitions])
        return self.value_per_quality * (quality - self.empty_quality)

    # -- logistic regression ---------------------------------------------------------------
    def _logistic_accuracy(self, members: NDArray[np.bool_]) -> float:
        s = self.shards
        points = members[s.owners]
        if not points.any():
            return self.empty_quality
        return logistic_regression_accuracy(
            s.X_train[points], s.y_train[points], s.X_val, s.y_val, regularization=self.regularization
        )

    # -- a scikit-learn estimator ------------------------------------------------------------------
    def _estimator_accuracy(self, members: NDArray[np.bool_]) -> float:
        s = self.shards
        points = members[s.owners]
        if not points.any():
            return self.empty_quality
        assert self.estimator is not None
        return estimator_accuracy(
            self.estimator, self.random_state, s.X_train[points], s.y_train[points], s.X_val, s.y_val
        )

    # -- soft KNN ---------------------------------------------------------------------------
    def neighbor_order(self) -> NDArray[np.int64]:
        """``order[q]``: training points sorted by distance to validation point ``q``."""
        if self._neighbor_order is None:
            s = self.shards
            d2 = ((s.X_val[:, None, :] - s.X_train[None, :, :]) ** 2).sum(axis=2)
            self._neighbor_order = np.argsort(d2, axis=1, kind="stable")
        return self._neighbor_order

    def knn_labels(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """``(y_train, y_val, owners)`` (KNN-Shapley's closed form reads them)."""
        return self.shards.y_train, self.shards.y_val, self.shards.owners

    def _soft_knn(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        s = self.shards
        order = self.neighbor_order()
        membership = coalitions[:, s.owners]  # (B, N) points available to each coalition
        total = np.zeros(coalitions.shape[0])
        for q in range(order.shape[0]):
            present = membership[:, order[q]]
            taken = present & (np.cumsum(present, axis=1) <= self.k_neighbors)
            correct = s.y_train[order[q]] == s.y_val[q]
            total += (taken & correct).sum(axis=1)
        return total / (self.k_neighbors * order.shape[0])
