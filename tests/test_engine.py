"""Engines: the same seed gives the same values whatever runs the work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataprice.engine import DaskEngine, LokyEngine, SerialEngine, make_engine
from dataprice.scenario import parse_scenario
from dataprice.valuation.methods import PermutationShapley
from dataprice.valuation.stopping import MaxEvaluations, StandardErrorBelow
from dataprice.valuation.utilities.classifier import ClassifierGame, make_shards

from .conftest import random_monotone_table, run_serial_and_parallel


@pytest.fixture(scope="module")
def engines():
    made = {"serial": SerialEngine(), "loky": LokyEngine(2), "dask": DaskEngine(2)}
    yield made
    for engine in made.values():
        engine.shutdown()


@pytest.fixture(scope="module")
def game12():
    return random_monotone_table(12, np.random.default_rng(8))


@pytest.mark.parametrize("truncation", [0.0, 0.05])
def test_same_values_on_every_engine_and_window(engines, game12, truncation):
    results = []
    for name, engine in engines.items():
        for window in (1, 3, 8):
            method = PermutationShapley(max_evaluations=4_000, batch_size=16, seed=3, truncation_rtol=truncation)
            results.append((name, window, method.fit(game12, engine=engine, window=window).result))
    first = results[0][2]
    for name, window, result in results[1:]:
        np.testing.assert_array_equal(result.values, first.values, err_msg=f"{name} window {window}")
        assert result.n_evaluations == first.n_evaluations and result.n_batches == first.n_batches
    assert first.n_evaluations <= 4_000


def test_engine_run_stops_at_the_same_batch_and_cancels_the_rest(engines, game12):
    stop = StandardErrorBelow(0.05) | MaxEvaluations(200_000)
    runs = [
        PermutationShapley(stopping=stop, batch_size=8, seed=1).fit(game12, engine=engine, window=6).result
        for engine in engines.values()
    ]
    assert all(r.converged for r in runs)
    assert len({r.n_batches for r in runs}) == 1
    for r in runs[1:]:
        np.testing.assert_array_equal(r.values, runs[0].values)


def test_a_real_utility_ships_to_workers(engines):
    shards = make_shards("wine", 6, seed=1, noisy_sellers=[5])
    serial = PermutationShapley(max_evaluations=300, batch_size=10, seed=0).fit(
        ClassifierGame(shards, value_per_quality=100), engine=engines["serial"]).result
    for name in ("loky", "dask"):
        other = PermutationShapley(max_evaluations=300, batch_size=10, seed=0).fit(
            ClassifierGame(shards, value_per_quality=100), engine=engines[name]).result
        np.testing.assert_array_equal(other.values, serial.values, err_msg=name)


def test_scenario_replicates_identical_on_serial_and_dask():
    data = {
        "name": "e", "seed": 5, "replicates": 3,
        "sellers": {"count": 5, "costs": [0.5, 1, 1.5, 2, 2.5]},
        "buyer": {"task": "classifier", "dataset": "wine", "value_per_quality": 100},
        "valuation": [{"method": "exact_shapley"}, {"method": "tmc_shapley", "max_evaluations": 200}],
        "audit": {"enabled": False},
    }
    serial, distributed = run_serial_and_parallel(parse_scenario(data), lambda: DaskEngine(2))
    pd.testing.assert_frame_equal(serial.values_table(), distributed.values_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), distributed.outcomes_table())


def test_make_engine_names():
    assert make_engine("serial").name == "serial" and make_engine("loky").name == "loky"
    assert make_engine("dask").name == "dask"
    with pytest.raises(ValueError, match="choose 'serial', 'loky' or 'dask'"):
        make_engine("spark")
