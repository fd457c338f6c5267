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
from dataprice.models.estimators import EstimatorSpec, estimator_correct
from dataprice.models.softmax import logistic_regression_correct
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

    def inrun_trace(self, *, order: int, seed: int, epochs: int | None = None, batch_size: int | None = None,
                    learning_rate: float | None = None, validation_batch: int | None = None,
                    similarity: bool = False, projection_dim: int | None = None, progress: bool = False):
        """One SGD run of the buyer's softmax regression on all shards, with In-Run Shapley
        values per training point (:mod:`dataprice.buyers.classifier.inrun`)."""
        from dataprice.buyers.classifier.inrun import sgd_config, softmax_inrun

        if self.model != "logistic" or self.estimator is not None:
            raise TypeError("in-run Shapley trains the classifier's own model (model: logistic, no estimator)")
        config = sgd_config(self.shards, self.regularization, seed, epochs, batch_size, learning_rate)
        return softmax_inrun(self.shards, config, order=order, validation_batch=validation_batch,
                             similarity=similarity, projection_dim=projection_dim, progress=progress)[1]

    def proxy_game(self) -> Game | None:
        """The soft-KNN utility (``K = k_neighbors``) on the same shards, players and money
        scale: no training, vectorised over a batch of coalitions, and its values move with
        a trained classifier's accuracy on most data (a control variate for sampling). The
        KNN model itself needs no proxy."""
        if self.model == "knn" and self.estimator is None:
            return None
        return ClassifierGame(self.shards, model="knn", k_neighbors=self.k_neighbors,
                              value_per_quality=self.value_per_quality, player_names=self.player_names)

    @property
    def empty_quality(self) -> float:
        return 0.0 if self.model == "knn" and self.estimator is None else 1.0 / self.shards.n_classes

    @property
    def n_points(self) -> int:
        """Validation points the quality averages over (the evaluation set a bootstrap resamples)."""
        return int(self.shards.y_val.shape[0])

    @property
    def point_scale(self) -> int:
        """Point scores are in units of ``1 / point_scale`` so that sums stay whole numbers:
        the ``K`` neighbours of soft KNN, else the number of classes (a right prediction
        scores ``n_classes`` and the empty coalition's uniform guess scores 1 at every point,
        so ``quality(empty) = 1 / n_classes`` exactly)."""
        return self.k_neighbors if self.estimator is None and self.model == "knn" else int(self.shards.n_classes)

    def point_values(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, n_val]``: each validation point's score for each coalition, in units of
        ``1 / point_scale``: ``n_classes`` where it is classified right, else 0 (soft KNN: how
        many of its ``K`` nearest points of the coalition share its label)."""
        coalitions = np.asarray(coalitions, dtype=bool)
        if self.estimator is None and self.model == "knn":
            return self._soft_knn_hits(coalitions)
        correct = self._estimator_correct if self.estimator is not None else self._logistic_correct
        scores = np.ones((coalitions.shape[0], self.n_points))  # no data: the uniform guess
        for k, row in enumerate(coalitions):
            if row[self.shards.owners].any():
                scores[k] = correct(row) * float(self.point_scale)
        return scores

    def from_points(self, points: NDArray[np.float64], weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """``kappa * (quality - quality(empty))``, quality the (weighted) mean score over
        points divided by :attr:`point_scale` (sums of whole numbers: exact, so the values are
        the same floats as the accuracy computed directly)."""
        if weights is None:
            quality = points.sum(axis=-1) / (self.point_scale * points.shape[-1])
        else:
            quality = points @ weights / self.point_scale
        return self.value_per_quality * (quality - self.empty_quality)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.from_points(self.point_values(coalitions))

    # -- logistic regression ---------------------------------------------------------------
    def _logistic_correct(self, members: NDArray[np.bool_]) -> NDArray[np.bool_]:
        s = self.shards
        points = members[s.owners]
        return logistic_regression_correct(
            s.X_train[points], s.y_train[points], s.X_val, s.y_val, regularization=self.regularization
        )

    # -- a scikit-learn estimator ------------------------------------------------------------------
    def _estimator_correct(self, members: NDArray[np.bool_]) -> NDArray[np.bool_]:
        s = self.shards
        points = members[s.owners]
        assert self.estimator is not None
        return estimator_correct(
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

    def _soft_knn_hits(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[B, Q]``: how many of each validation point's ``K`` nearest coalition points
        share its label (the soft KNN utility is their sum over ``K * Q``)."""
        s = self.shards
        order = self.neighbor_order()
        membership = coalitions[:, s.owners]  # (B, N) points available to each coalition
        hits = np.zeros((coalitions.shape[0], order.shape[0]))
        for q in range(order.shape[0]):
            present = membership[:, order[q]]
            taken = present & (np.cumsum(present, axis=1) <= self.k_neighbors)
            correct = s.y_train[order[q]] == s.y_val[q]
            hits[:, q] = (taken & correct).sum(axis=1)
        return hits
