"""Seller shards of a bundled scikit-learn data set: the data of the classifier and federated buyers.

:func:`make_shards` loads one of scikit-learn's bundled data sets (``load_*``, no download),
standardises it on the training part, holds out a stratified validation set and splits the
training points among the sellers (:func:`partition_points`: IID, by given sizes, or
label-skewed by a Dirichlet draw). Some sellers can hold noisy labels: a fraction of their
points get another class at random; a seller can hold a jittered copy of another's shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dataprice.errors import DataError
from dataprice.rng import Stream, child_rng

#: The bundled scikit-learn data sets, by name: loaders that read files shipped with scikit-learn.
DATASETS = {
    "breast_cancer": skdatasets.load_breast_cancer,
    "wine": skdatasets.load_wine,
    "iris": skdatasets.load_iris,
    "digits": skdatasets.load_digits,
}


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
    rng = child_rng(seed, Stream.DATA)
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
    owners = partition_points(y_train, n_sellers, child_rng(seed, Stream.PARTITION), kind=partition, sizes=sizes, alpha=alpha)
    n_classes = int(np.max(y)) + 1
    X_train, y_train, owners, noisy = corrupt_shards(
        X_train, y_train, owners, n_classes, seed, noisy_sellers=noisy_sellers, noise_fraction=noise_fraction,
        copies=copies,
    )
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


def corrupt_shards(
    X_train: NDArray[np.float64],
    y_train: NDArray[np.int64],
    owners: NDArray[np.int64],
    n_classes: int,
    seed: int | np.random.SeedSequence | None,
    *,
    noisy_sellers: Sequence[int] = (),
    noise_fraction: float = 1.0,
    copies: Sequence[tuple[int, int, float]] = (),
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The sellers' label noise and copies (see :func:`make_shards`), on any split data.

    Returns ``(X_train, y_train, owners, noisy)``; the inputs are not modified. Label noise
    draws from stream ``LABEL_NOISE`` and copies' jitter from ``COPIES`` below ``seed``.
    """
    y_train = y_train.astype(np.int64).copy()
    noisy = np.zeros(y_train.shape[0], dtype=bool)
    noise_rng = child_rng(seed, Stream.LABEL_NOISE)
    for seller in noisy_sellers:
        idx = np.flatnonzero(owners == seller)
        chosen = noise_rng.choice(idx, size=int(round(noise_fraction * idx.size)), replace=False)
        shift = noise_rng.integers(1, n_classes, size=chosen.size)
        y_train[chosen] = (y_train[chosen] + shift) % n_classes
        noisy[chosen] = True
    copy_rng = child_rng(seed, Stream.COPIES)
    for seller, source, jitter in copies:
        keep = owners != seller
        X_train, y_train, owners, noisy = X_train[keep], y_train[keep], owners[keep], noisy[keep]
        src = np.flatnonzero(owners == source)
        X_train = np.concatenate([X_train, X_train[src] + jitter * copy_rng.normal(size=X_train[src].shape)])
        y_train = np.concatenate([y_train, y_train[src]])
        owners = np.concatenate([owners, np.full(src.size, seller)])
        noisy = np.concatenate([noisy, noisy[src]])
    return X_train, y_train, owners, noisy


def generated_shards(points: int, n_sellers: int, *, noisy_sellers: Sequence[int] = (), noise_fraction: float = 0.8,
                     n_features: int = 40, n_classes: int = 3, n_validation: int = 5000, seed: int = 0) -> SellerShards:
    """A generated classification problem of any size (scikit-learn's ``make_classification``:
    half the features informative, a quarter redundant, ``class_sep`` 0.8), standardised,
    ``points`` training points split IID among the sellers and ``n_validation`` held out;
    ``noisy_sellers`` get ``noise_fraction`` of their labels redrawn. For benchmarks where
    training is the expensive part; nothing is downloaded."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=points + n_validation, n_features=n_features,
                               n_informative=n_features // 2, n_redundant=n_features // 4, n_classes=n_classes,
                               class_sep=0.8, random_state=seed)
    X_train, y_train, X_val, y_val = X[:points], y[:points], X[points:], y[points:]
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    owners = partition_points(y_train, n_sellers, child_rng(seed, Stream.PARTITION))
    X_train, y_train, owners, noisy = corrupt_shards(X_train, y_train, owners, n_classes, seed,
                                                    noisy_sellers=noisy_sellers, noise_fraction=noise_fraction)
    return SellerShards(X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val.astype(np.int64), owners=owners,
                        n_sellers=n_sellers, n_classes=n_classes, noisy_points=noisy, dataset=f"generated {points:,}")

