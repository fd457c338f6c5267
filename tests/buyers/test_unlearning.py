"""Unlearning Shapley against retraining on the classifier buyer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.buyers.classifier.unlearning import RetrainingGame, UnlearningGame
from dataprice.data.shards import make_shards
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley, UnlearningShapley


@pytest.fixture(scope="module")
def shards():
    return make_shards("breast_cancer", 8, seed=4, noisy_sellers=[6, 7], noise_fraction=0.8)


def test_newton_removal_of_one_seller_is_close_to_retraining(shards):
    """One Newton step removes most of a seller's influence on the parameters: measured
    here 88-95% of ||theta_N - theta_retrained|| for clean sellers, 73% for a noisy one
    (whose points the model fits worst, so the quadratic model of the loss is least exact)."""
    game = UnlearningGame(shards)
    for seller, kept in ((0, 0.85), (3, 0.9), (6, 0.65)):
        removed = game.base.points_of(np.array([seller]))
        unlearned = game.unlearn(removed)
        retrained = game.base.model.fit(game.base.X1[~removed], shards.y_train[~removed])
        before = np.linalg.norm(game.theta - retrained)
        after = np.linalg.norm(unlearned - retrained)
        assert after < (1 - kept) * before, (seller, after / before)
    assert game.n_unlearning_runs == 3


def test_unlearning_shapley_tracks_retraining_shapley(shards):
    unlearning = ExactShapley().fit(tabulate(UnlearningGame(shards, value_per_quality=100))).result.values
    retraining = ExactShapley().fit(tabulate(RetrainingGame(shards, value_per_quality=100))).result.values
    assert spearmanr(unlearning, retraining).statistic > 0.85
    assert np.abs(unlearning - retraining).sum() / np.abs(retraining).sum() < 0.25
    assert set(np.argsort(unlearning)[:2]) == {6, 7} == set(np.argsort(retraining)[:2])


def test_partial_valuation_never_reads_other_sellers_data(shards):
    """Value sellers 5-7 only: after the one training run, the other sellers' points may be
    destroyed without changing anything."""
    game = UnlearningGame(shards, targets=[5, 6, 7])
    coalitions = np.array([[True, False, True], [False, False, False], [True, True, True]])
    before = game(coalitions)
    others = ~np.isin(shards.owners, [5, 6, 7])
    game.base.X1[others] = np.nan
    game.base.shards.y_train[others] = -1
    np.testing.assert_array_equal(game(coalitions), before)


def test_unlearning_shapley_method_trains_once_and_counts_removals():
    shards = make_shards("wine", 6, seed=2, noisy_sellers=[5])
    game = ClassifierGame(shards, value_per_quality=100)
    result = UnlearningShapley(max_evaluations=600, seed=0).fit(game).result
    assert result.extra["model_trainings"] == 1
    assert 0 < result.extra["unlearning_runs"] <= 2**6
    assert int(np.argmin(result.values)) == 5
    partial = UnlearningShapley(targets=[4, 5], max_evaluations=50, seed=0).fit(game).result
    assert np.isnan(partial.values[:4]).all() and np.isfinite(partial.values[4:]).all()
    with pytest.raises(TypeError, match="classifier"):
        from dataprice.valuation.reference_games import AirportGame

        UnlearningShapley(max_evaluations=10).fit(AirportGame([1.0, 2.0]))


def test_stored_seller_summaries_give_the_removal_computed_from_the_data(shards):
    """The Newton removal from the per-seller Hessians and gradients stored at training time
    equals the removal computed from the removed points, and needs no training data after."""
    game = UnlearningGame(shards)
    assert game.summaries is not None
    rng = np.random.default_rng(0)
    for _ in range(5):
        members = rng.random(8) < 0.5
        from_data = game.unlearn(game.base.points_of(np.flatnonzero(~members)))
        np.testing.assert_allclose(game.newton_removal(~members), from_data, rtol=1e-8, atol=1e-10)
    coalitions = rng.random((6, 8)) < 0.5
    before = game(coalitions)
    game.base.X1[:] = np.nan  # the training data is gone; validation data stays
    np.testing.assert_array_equal(game(coalitions), before)


def test_without_room_for_summaries_removals_read_the_data(shards, monkeypatch):
    import dataprice.buyers.classifier.unlearning as module

    monkeypatch.setattr(module, "SUMMARY_BYTES", 0)
    small = UnlearningGame(shards)
    monkeypatch.undo()
    stored = UnlearningGame(shards)
    assert small.summaries is None
    coalitions = np.random.default_rng(1).random((5, 8)) < 0.5
    np.testing.assert_allclose(small(coalitions), stored(coalitions))
