"""The allow-list of scikit-learn estimators: every entry is a real classifier whose listed
parameters it takes, builds from a scenario's settings, fits deterministically for a
random_state, and nothing outside the list can be named."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from pydantic import ValidationError

from dataprice.models.estimators import (
    ESTIMATORS,
    EstimatorSpec,
    estimator_accuracy,
    make_estimator,
)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_allowed_estimator_takes_its_listed_parameters_and_fits(name):
    entry = ESTIMATORS[name]
    cls = getattr(importlib.import_module(f"sklearn.{entry.module}"), entry.cls)
    assert set(entry.params) <= set(cls().get_params()), name
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    spec = EstimatorSpec(name=name)
    a = estimator_accuracy(spec, 7, X[:40], y[:40], X[40:], y[40:])
    b = estimator_accuracy(spec, 7, X[:40], y[:40], X[40:], y[40:])
    assert a == b and 0.5 <= a <= 1.0


def test_parameters_reach_the_estimator_and_the_seed_sets_random_state():
    spec = EstimatorSpec(name="mlp", params={"hidden_layer_sizes": [8, 4], "alpha": 1})
    model = make_estimator(spec, 2**40 + 3)
    assert model.hidden_layer_sizes == (8, 4) and model.alpha == 1 and model.random_state == (2**40 + 3) % 2**31
    assert "random_state" not in make_estimator(EstimatorSpec(name="naive_bayes"), 1).get_params()


def test_one_class_predicts_that_class_and_knn_uses_what_it_has():
    X = np.arange(10.0)[:, None]
    assert estimator_accuracy(EstimatorSpec(name="svc"), 0, X[:3], np.zeros(3, np.int64), X, np.r_[np.zeros(7), np.ones(3)].astype(np.int64)) == 0.7
    spec = EstimatorSpec(name="knn", params={"n_neighbors": 50})
    assert estimator_accuracy(spec, 0, X[:4], np.array([0, 0, 1, 1]), X[:4], np.array([0, 0, 1, 1])) == 0.5


@pytest.mark.parametrize(("settings", "parts"), [
    ({"name": "sklearn.svm.SVC"}, ["unknown estimator", "logistic_regression"]),
    ({"name": "svc", "params": {"kernel": "precomputed"}}, ["'kernel'", "'linear'"]),
    ({"name": "svc", "params": {"gamma": -1.0}}, ["'gamma'", "'scale' or 'auto'", "greater than 0"]),
    ({"name": "random_forest", "params": {"max_depth": 2.5}}, ["'max_depth'", "integer"]),
    ({"name": "logistic_regression", "params": {"verbose": 1}}, ["unknown parameter 'verbose'", "C, max_iter"]),
])
def test_bad_settings_are_one_line(settings, parts):
    with pytest.raises(ValidationError) as info:
        EstimatorSpec(**settings)
    message = str(info.value.errors()[0]["msg"])
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_small_runs_cap_a_chosen_estimators_size():
    """``--small`` is a smoke test: a forest of 500 trees or an MLP of 2,000 iterations runs
    at 10 trees and 50 iterations, 16 units a layer; other settings stay."""
    from dataprice.scenario import parse_scenario
    from dataprice.scenario.small import small_scenario

    def small(estimator):
        scenario = parse_scenario({"name": "t", "sellers": {"count": 3},
                                   "buyer": {"task": "classifier", "estimator": estimator}})
        return small_scenario(scenario).buyer.estimator

    forest = small({"name": "random_forest", "params": {"n_estimators": 500, "max_depth": 4}})
    assert forest.params == {"n_estimators": 10, "max_depth": 4}
    mlp = small({"name": "mlp", "params": {"max_iter": 2000, "hidden_layer_sizes": [64, 8]}})
    assert mlp.params == {"max_iter": 50, "hidden_layer_sizes": [16, 8]}
    assert small({"name": "random_forest", "params": {"n_estimators": 5}}).params == {"n_estimators": 5}
    assert small(None) is None
