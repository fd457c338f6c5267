"""Engines: the same seed gives the same values whatever runs the work."""

from __future__ import annotations

import sys
import time
from concurrent.futures import CancelledError

import numpy as np
import pandas as pd
import pytest

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.data.shards import make_shards
from dataprice.engine import DaskEngine, LokyEngine, RayEngine, SerialEngine, make_engine
from dataprice.errors import EngineError
from dataprice.scenario import parse_scenario
from dataprice.valuation.methods import PermutationShapley
from dataprice.valuation.stopping import MaxEvaluations, StandardErrorBelow

from ..conftest import random_monotone_table, run_serial_and_parallel


@pytest.fixture(scope="module")
def engines():
    """Every engine once for the module (Ray and Dask start once: several seconds each)."""
    made = {"serial": SerialEngine(), "loky": LokyEngine(2), "dask": DaskEngine(2), "ray": RayEngine(2)}
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
    for name in ("loky", "dask", "ray"):
        other = PermutationShapley(max_evaluations=300, batch_size=10, seed=0).fit(
            ClassifierGame(shards, value_per_quality=100), engine=engines[name]).result
        np.testing.assert_array_equal(other.values, serial.values, err_msg=name)


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_scenario_replicates_identical_on_serial_and_parallel(engines, kind):
    data = {
        "name": "e", "seed": 5, "replicates": 3,
        "sellers": {"count": 5, "costs": [0.5, 1, 1.5, 2, 2.5]},
        "buyer": {"task": "classifier", "dataset": "wine", "value_per_quality": 100},
        "valuation": [{"method": "exact_shapley"}, {"method": "tmc_shapley", "max_evaluations": 200}],
        "audit": {"enabled": False},
    }
    # a fresh Dask cluster; for Ray, the module's engine starts Ray first, so this engine
    # uses that instance and must leave it running when it shuts down
    if kind == "ray":
        engines["ray"].submit(abs, 1).result()
    serial, distributed = run_serial_and_parallel(parse_scenario(data), lambda: make_engine(kind, 2))
    pd.testing.assert_frame_equal(serial.values_table(), distributed.values_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), distributed.outcomes_table())
    assert distributed.provenance["engine"]["kind"] == kind
    if kind == "ray":
        import ray

        assert ray.is_initialized(), "an engine that did not start Ray must not stop it"


def _busy(seconds: float) -> float:
    """Python-level waiting (a cancelled Ray task is interrupted between bytecodes)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
    return seconds


def test_ray_futures_carry_errors_and_cancel(engines):
    ray_engine = engines["ray"]
    with pytest.raises(ZeroDivisionError):
        ray_engine.submit(divmod, 1, 0).result(timeout=60)
    shipped = ray_engine.put(np.arange(5))
    assert ray_engine.submit(np.sum, shipped).result(timeout=60) == 10  # the object, not the ref
    assert ray_engine.map(abs, [-3, 1, -2]) == [3, 1, 2]
    started = time.monotonic()
    busy = [ray_engine.submit(_busy, 120) for _ in range(3)]  # 2 running (or starting), 1 queued
    assert all(future.cancel() for future in busy)
    for future in busy:
        assert future.cancelled()
        with pytest.raises(CancelledError):
            future.result()
    assert ray_engine.submit(_busy, 0.0).result(timeout=60) == 0.0, "cancelled tasks free the workers"
    assert time.monotonic() - started < 60


def test_ray_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(EngineError) as info:
        RayEngine(2).submit(abs, 1)
    assert str(info.value) == "engine.kind: 'ray' needs Ray: pip install \"dataprice[ray]\""


def test_make_engine_names():
    assert make_engine("serial").name == "serial" and make_engine("loky").name == "loky"
    assert make_engine("dask").name == "dask" and make_engine("ray").name == "ray"
    with pytest.raises(EngineError, match="^engine.kind: unknown engine 'spark'; choose 'serial', 'loky', 'dask' or 'ray'$"):
        make_engine("spark")


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_any_executor_runs_a_scenario_with_the_serial_results(pool):
    """A caller's ``concurrent.futures`` pool as the engine: the same values and outcomes as
    the serial engine, its kind recorded in the provenance, and the pool left running."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from dataprice.experiment import run_scenario

    data = {
        "name": "x", "seed": 5, "replicates": 2,
        "sellers": {"count": 4, "costs": [0.5, 1, 1.5, 2]},
        "buyer": {"task": "classifier", "dataset": "wine", "value_per_quality": 100},
        "valuation": [{"method": "exact_shapley"}, {"method": "tmc_shapley", "max_evaluations": 120}],
        "audit": {"enabled": False}, "uncertainty": {"resamples": 0},
    }
    scenario = parse_scenario(data)
    serial = run_scenario(scenario, progress=False)
    make = ThreadPoolExecutor if pool == "threads" else ProcessPoolExecutor
    with make(max_workers=2) as executor:
        pooled = run_scenario(scenario, progress=False, engine=executor)
        assert executor.submit(abs, -3).result() == 3  # still the caller's, still running
    pd.testing.assert_frame_equal(serial.values_table(), pooled.values_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), pooled.outcomes_table())
    described = pooled.provenance["engine"]
    assert described["kind"] == "executor" and described["library"].endswith(make.__name__)
