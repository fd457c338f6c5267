"""Classifier buyer: data handling, soft-KNN utility, KNN-Shapley closed form, noisy sellers."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.data.shards import SellerShards, make_shards, partition_points
from dataprice.valuation.game import masks_to_coalitions, tabulate
from dataprice.valuation.methods import ExactShapley, KNNShapley, LeaveOneOut


def test_partitions_cover_every_point_and_every_seller():
    y = np.repeat(np.arange(3), 40)
    rng = np.random.default_rng(0)
    for kind, kwargs in [("iid", {}), ("sizes", {"sizes": [1, 2, 3, 4]}), ("dirichlet", {"alpha": 0.1})]:
        owners = partition_points(y, 4, rng, kind=kind, **kwargs)
        assert owners.shape == y.shape
        assert set(owners) == {0, 1, 2, 3}
    sized = np.bincount(partition_points(y, 4, rng, kind="sizes", sizes=[1, 2, 3, 4]))
    assert list(sized) == sorted(sized)


def test_label_noise_only_touches_noisy_sellers():
    shards = make_shards("wine", 5, seed=3, noisy_sellers=[1, 4], noise_fraction=1.0)
    frac = shards.noisy_fraction()
    assert frac[1] == 1.0 and frac[4] == 1.0
    assert frac[[0, 2, 3]].sum() == 0.0
    clean = make_shards("wine", 5, seed=3)
    changed = shards.y_train != clean.y_train
    assert np.array_equal(changed, shards.noisy_points)


def _direct_soft_knn(shards: SellerShards, members: np.ndarray, k: int) -> float:
    """The soft-KNN utility computed the plain way, one validation point at a time."""
    points = np.flatnonzero(members[shards.owners])
    if points.size == 0:
        return 0.0
    total = 0.0
    for x, y in zip(shards.X_val, shards.y_val, strict=True):
        d = ((shards.X_train[points] - x) ** 2).sum(axis=1)
        nearest = points[np.argsort(d, kind="stable")[:k]]
        total += np.sum(shards.y_train[nearest] == y) / k
    return total / len(shards.y_val)


def test_vectorised_soft_knn_equals_direct_computation():
    shards = make_shards("iris", 5, seed=1, noisy_sellers=[2])
    game = ClassifierGame(shards, model="knn", k_neighbors=3)
    coalitions = masks_to_coalitions(np.arange(32), 5)
    fast = game(coalitions)
    slow = np.array([_direct_soft_knn(shards, row, 3) for row in coalitions])
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_knn_shapley_closed_form_equals_exact_shapley_with_one_point_per_seller():
    """With one training point per seller, the seller game is the point game, so the
    closed form must equal brute-force Shapley over 2^n coalitions."""
    full = make_shards("iris", 3, seed=0)
    rng = np.random.default_rng(4)
    pick = rng.choice(full.X_train.shape[0], size=10, replace=False)
    shards = SellerShards(
        X_train=full.X_train[pick],
        y_train=full.y_train[pick],
        X_val=full.X_val[:20],
        y_val=full.y_val[:20],
        owners=np.arange(10),
        n_sellers=10,
        n_classes=full.n_classes,
    )
    game = ClassifierGame(shards, model="knn", k_neighbors=3, value_per_quality=7.0)
    exact = ExactShapley().fit(game).result.values
    closed = KNNShapley().fit(game).result.values
    np.testing.assert_allclose(closed, exact, atol=1e-12)
    assert KNNShapley().fit(game).result.n_evaluations == 0


def test_empty_coalition_is_worth_nothing():
    shards = make_shards("breast_cancer", 4, seed=0)
    for model in ("logistic", "knn"):
        game = ClassifierGame(shards, model=model, value_per_quality=100)
        assert game.empty_value() == 0.0


@pytest.mark.parametrize("model", ["logistic", "knn"])
def test_sellers_with_flipped_labels_get_the_lowest_values(model):
    noisy = [1, 5]
    shards = make_shards("breast_cancer", 6, seed=11, noisy_sellers=noisy, noise_fraction=1.0, max_points=300)
    game = ClassifierGame(shards, model=model, value_per_quality=100)
    table = tabulate(game)
    methods = [ExactShapley(), LeaveOneOut()] + ([KNNShapley()] if model == "knn" else [])
    for method in methods:
        values = method.fit(game if isinstance(method, KNNShapley) else table).result.values
        lowest_two = set(np.argsort(values)[:2].tolist())
        assert lowest_two == set(noisy), f"{method.name}: {values.round(3)}"


def test_a_trained_classifier_offers_soft_knn_on_the_same_data_as_its_proxy():
    from dataprice.valuation.game import CachedGame

    shards = make_shards("wine", 6, seed=2, noisy_sellers=[1])
    game = ClassifierGame(shards, model="logistic", value_per_quality=50.0, k_neighbors=4,
                          player_names=[f"s{j}" for j in range(6)])
    proxy = CachedGame(game).proxy_game()
    knn = ClassifierGame(shards, model="knn", value_per_quality=50.0, k_neighbors=4)
    coalitions = masks_to_coalitions(np.arange(2**6), 6)
    np.testing.assert_array_equal(proxy(coalitions), knn(coalitions))
    assert proxy.player_names == game.player_names and game.n_evaluations == 0
    assert knn.proxy_game() is None  # the KNN model is cheap already
    # a scenario that tabulates the game keeps the proxy; a subgame has none
    table = tabulate(game)
    np.testing.assert_array_equal(table.proxy_game()(coalitions), knn(coalitions))
    assert table.restrict([0, 1]).proxy_game() is None
    # the proxy moves with the trained model: their Shapley values rank sellers alike
    phi, phi_proxy = ExactShapley().fit(game).result.values, ExactShapley().fit(proxy).result.values
    assert np.corrcoef(phi, phi_proxy)[0, 1] > 0.5
