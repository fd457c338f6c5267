"""Classifier buyer: sellers own shards of a tabular dataset; ``v(S)`` is validation accuracy.

``v(S) = kappa * (acc(model trained on the union of the shards of S) - acc(empty))`` where
``kappa`` is the buyer's value per unit of accuracy (money) and ``acc(empty)`` is the
accuracy the buyer has without data (chance level, ``1/K`` for ``K`` classes, for trained
models; 0 for the soft-KNN utility), so that ``v(empty) = 0``.

Data comes from scikit-learn's bundled datasets (``load_*``, no download). Some sellers
can hold noisy labels: a fraction of their points get another class at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn import datasets as skdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dataprice._typing import CoalitionMatrix
from dataprice.errors import DataError
from dataprice.rng import child_rng
from dataprice.valuation.game import Game

DATASETS = {
    "breast_cancer": skdatasets.load_breast_cancer,
    "wine": skdatasets.load_wine,
    "iris": skdatasets.load_iris,
    "digits": skdatasets.load_digits,
}

ClassifierModel = Literal["logistic", "knn"]


@dataclass
class SellerShards:
    """A tabular dataset split into a validation set and sellers' training shards."""

    X_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    X_val: NDArray[np.float64]
    y_val: NDArray[np.int64]
    owners: NDArray[np.int64]  # seller index of each training point
    n_sellers: int
    n_classes: int
    noisy_points: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dataset: str = "custom"

    def shard_sizes(self) -> NDArray[np.int64]:
        return np.bincount(self.owners, minlength=self.n_sellers)

    def noisy_fraction(self) -> NDArray[np.float64]:
        """Fraction of each seller's points whose label was corrupted."""
        if self.noisy_points.size == 0:
            return np.zeros(self.n_sellers)
        sizes = np.maximum(self.shard_sizes(), 1)
        return np.bincount(self.owners, weights=self.noisy_points, minlength=self.n_sellers) / sizes


def partition_points(
    y: NDArray[np.int64],
    n_sellers: int,
    rng: np.random.Generator,
    *,
    kind: Literal["iid", "sizes", "dirichlet"] = "iid",
    sizes: Sequence[float] | None = None,
    alpha: float = 1.0,
) -> NDArray[np.int64]:
    """Owner (seller index) of each point.

    * ``iid``: a random split into near-equal shards;
    * ``sizes``: shard sizes proportional to ``sizes``;
    * ``dirichlet``: label skew, class ``k``'s points split with proportions drawn from
      ``Dirichlet(alpha)`` (small ``alpha`` = very non-IID).

    Every seller gets at least one point.
    """
    n_points = y.shape[0]
    if n_points < n_sellers:
        raise ValueError(f"{n_points} training points cannot be split among {n_sellers} sellers")
    if kind == "dirichlet":
        owners = np.empty(n_points, dtype=np.int64)
        for k in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == k))
            props = rng.dirichlet(np.full(n_sellers, alpha))
            cuts = (np.cumsum(props)[:-1] * idx.size).astype(int)
            for seller, part in enumerate(np.split(idx, cuts)):
                owners[part] = seller
        # make sure nobody is empty: give each empty seller one point of the largest shard
        for seller in range(n_sellers):
            if not np.any(owners == seller):
                donor = np.argmax(np.bincount(owners, minlength=n_sellers))
                owners[rng.choice(np.flatnonzero(owners == donor))] = seller
        return owners
    weights = np.ones(n_sellers) if kind == "iid" else np.asarray(sizes, dtype=float)
    if weights.shape[0] != n_sellers or np.any(weights <= 0):
        raise ValueError("sizes must give one positive number per seller")
    counts = np.maximum(np.floor(weights / weights.sum() * n_points).astype(int), 1)
    while counts.sum() > n_points:
        counts[np.argmax(counts)] -= 1
    counts[np.argmax(weights)] += n_points - counts.sum()
    owners = np.repeat(np.arange(n_sellers), counts)
    return rng.permutation(owners)


def make_shards(
    dataset: str,
    n_sellers: int,
    *,
    seed: int | np.random.SeedSequence | None = 0,
    validation_fraction: float = 0.3,
    partition: Literal["iid", "sizes", "dirichlet"] = "iid",
    sizes: Sequence[float] | None = None,
    alpha: float = 1.0,
    noisy_sellers: Sequence[int] = (),
    noise_fraction: float = 1.0,
    max_points: int | None = None,
    copies: Sequence[tuple[int, int, float]] = (),
) -> SellerShards:
    """Load a bundled scikit-learn dataset, standardise it, split it and corrupt some labels.

    Label noise: in each seller of ``noisy_sellers`` a ``noise_fraction`` of the points get
    a different class drawn uniformly (for binary tasks: the flipped label).

    Copies: for each ``(seller, source, noise)`` the seller's own points are dropped and it
    holds a copy of the source's shard, features jittered by ``noise`` standard deviations
    (a reseller or a data augmenter).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    X, y = DATASETS[dataset](return_X_y=True)
    rng = child_rng(seed, 0)
    if max_points is not None and max_points < X.shape[0]:
        keep = rng.choice(X.shape[0], size=max_points, replace=False)
        X, y = X[keep], y[keep]
    classes, per_class = np.unique(y, return_counts=True)
    n_val = int(np.ceil(validation_fraction * y.shape[0]))
    if per_class.min() < 2 or n_val < classes.size or y.shape[0] - n_val < classes.size:
        raise DataError(
            f"buyer.max_points: {y.shape[0]} points of {dataset} (validation_fraction {validation_fraction:g}) "
            f"cannot be split with each of the {classes.size} classes they hold on both sides (the rarest has "
            f"{per_class.min()} point(s)); raise max_points or use a validation_fraction nearer 0.5"
        )
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=validation_fraction, random_state=int(rng.integers(2**31)), stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    owners = partition_points(y_train, n_sellers, child_rng(seed, 1), kind=partition, sizes=sizes, alpha=alpha)
    n_classes = int(np.max(y)) + 1
    y_train = y_train.astype(np.int64).copy()
    noisy = np.zeros(y_train.shape[0], dtype=bool)
    noise_rng = child_rng(seed, 2)
    for seller in noisy_sellers:
        idx = np.flatnonzero(owners == seller)
        chosen = noise_rng.choice(idx, size=int(round(noise_fraction * idx.size)), replace=False)
        shift = noise_rng.integers(1, n_classes, size=chosen.size)
        y_train[chosen] = (y_train[chosen] + shift) % n_classes
        noisy[chosen] = True
    copy_rng = child_rng(seed, 3)
    for seller, source, jitter in copies:
        keep = owners != seller
        X_train, y_train, owners, noisy = X_train[keep], y_train[keep], owners[keep], noisy[keep]
        src = np.flatnonzero(owners == source)
        X_train = np.concatenate([X_train, X_train[src] + jitter * copy_rng.normal(size=X_train[src].shape)])
        y_train = np.concatenate([y_train, y_train[src]])
        owners = np.concatenate([owners, np.full(src.size, seller)])
        noisy = np.concatenate([noisy, noisy[src]])
    return SellerShards(
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val.astype(np.int64),
        owners=owners,
        n_sellers=n_sellers,
        n_classes=n_classes,
        noisy_points=noisy,
        dataset=dataset,
    )


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
    ) -> None:
        super().__init__(shards.n_sellers, player_names)
        self.shards = shards
        self.model = model
        self.value_per_quality = float(value_per_quality)
        self.k_neighbors = int(k_neighbors)
        self.regularization = float(regularization)
        self._neighbor_order: NDArray[np.int64] | None = None

    def unlearning_game(self, targets=None, method: str = "newton") -> Game:
        """The unlearning counterpart of this game (one model, removals instead of retraining)."""
        from dataprice.valuation.utilities.unlearning import UnlearningGame

        targets = list(range(self.n_players)) if targets is None else list(targets)
        return UnlearningGame(
            self.shards, targets=targets, method=method, l2=1.0 / self.regularization,
            value_per_quality=self.value_per_quality, player_names=[self.player_names[t] for t in targets],
        )

    @property
    def empty_quality(self) -> float:
        return 0.0 if self.model == "knn" else 1.0 / self.shards.n_classes

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        if self.model == "knn":
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
        y = s.y_train[points]
        classes = np.unique(y)
        if classes.size == 1:
            return float(np.mean(s.y_val == classes[0]))
        clf = LogisticRegression(C=self.regularization, max_iter=500)
        clf.fit(s.X_train[points], y)
        return float(np.mean(clf.predict(s.X_val) == s.y_val))

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
