"""Monte Carlo methods: convergence to exact values, budgets, seeds, resume."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.valuation.methods import ExactBanzhaf, ExactShapley, MSRBanzhaf, PermutationShapley
from dataprice.valuation.reference_games import AirportGame
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import MaxEvaluations, MaxTime, StandardErrorBelow

from .conftest import random_monotone_table


@pytest.fixture(scope="module")
def game12():
    return random_monotone_table(12, np.random.default_rng(7))


def test_permutation_shapley_converges_to_exact_on_12_players(game12):
    exact = ExactShapley().fit(game12).result.values
    small = PermutationShapley(max_evaluations=2_000, seed=1).fit(game12).result
    large = PermutationShapley(max_evaluations=60_000, seed=1).fit(game12).result
    err_small = np.abs(small.values - exact).max()
    err_large = np.abs(large.values - exact).max()
    assert err_large < err_small
    # within 4 standard errors for every player, and the stderr shrinks like 1/sqrt(m)
    assert np.all(np.abs(large.values - exact) <= 4 * large.stderr + 1e-9)
    assert large.stderr.mean() < 0.3 * small.stderr.mean()


def test_msr_banzhaf_converges_to_exact_on_12_players(game12):
    exact = ExactBanzhaf().fit(game12).result.values
    result = MSRBanzhaf(max_evaluations=40_000, seed=3).fit(game12).result
    assert np.all(np.abs(result.values - exact) <= 4 * result.stderr + 1e-9)


@pytest.mark.parametrize("cls", [PermutationShapley, MSRBanzhaf])
@pytest.mark.parametrize("budget", [1, 50, 333, 1000])
def test_budget_is_respected_exactly(cls, budget, game12):
    from dataprice.valuation.game import CachedGame

    counted = CachedGame(game12)
    result = cls(max_evaluations=budget, seed=0).fit(counted).result
    assert result.n_evaluations <= budget
    assert counted.n_evaluations == result.n_evaluations
    assert not result.converged


@pytest.mark.parametrize("cls", [PermutationShapley, MSRBanzhaf])
def test_same_seed_same_values_different_seed_different(cls, game12):
    a = cls(max_evaluations=3_000, seed=11).fit(game12).result
    b = cls(max_evaluations=3_000, seed=11).fit(game12).result
    c = cls(max_evaluations=3_000, seed=12).fit(game12).result
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


@pytest.mark.parametrize(
    ("cls", "batch", "per_batch", "fixed"),
    [(PermutationShapley, 8, 8 * 11, 2), (MSRBanzhaf, 64, 64, 0)],
)
def test_resume_continues_the_same_stream(cls, batch, per_batch, fixed, game12):
    """A run of 6 batches equals a run of 3 batches resumed for 3 more (whole batches:
    a budget that cuts a batch short ends that batch's stream)."""
    one_go = cls(max_evaluations=6 * per_batch + fixed, batch_size=batch, seed=5).fit(game12).result
    first = cls(max_evaluations=3 * per_batch + fixed, batch_size=batch, seed=5).fit(game12).result
    assert first.n_batches == 3
    resumed = cls(max_evaluations=6 * per_batch + fixed, batch_size=batch, seed=5).fit(
        game12, resume_from=first
    ).result
    assert resumed.n_batches == one_go.n_batches == 6
    np.testing.assert_allclose(resumed.values, one_go.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(resumed.stderr, one_go.stderr, rtol=1e-9)
    assert resumed.n_evaluations == one_go.n_evaluations


def test_resume_rejects_other_method(game12):
    banzhaf = MSRBanzhaf(max_evaluations=100).fit(game12).result
    with pytest.raises(ValueError, match="cannot resume"):
        PermutationShapley(max_evaluations=100).fit(game12, resume_from=banzhaf)


def test_standard_error_stopping_declares_convergence():
    game = AirportGame(np.linspace(1, 3, 6))
    crit = StandardErrorBelow(0.02) | MaxEvaluations(200_000)
    result = PermutationShapley(stopping=crit, seed=0).fit(game).result
    assert result.converged
    assert np.all(result.stderr <= 0.02)
    assert result.n_evaluations < 200_000


def test_max_time_stops():
    game = AirportGame(np.linspace(1, 3, 6))
    result = PermutationShapley(stopping=MaxTime(0.2), seed=0).fit(game).result
    assert not result.converged and result.n_evaluations > 0


def test_truncation_saves_evaluations_with_small_bias():
    # an airport game saturates once the most expensive player arrives
    game = AirportGame(np.concatenate([np.full(9, 0.1), [10.0]]))
    exact = ExactShapley().fit(game).result.values
    plain = PermutationShapley(max_evaluations=20_000, seed=2).fit(game).result
    trunc = PermutationShapley(max_evaluations=20_000, seed=2, truncation_rtol=1e-9).fit(game).result
    assert trunc.extra["truncated_evaluations_saved"] > 0
    assert trunc.counts.min() > plain.counts.min()  # more permutations for the same budget
    np.testing.assert_allclose(trunc.values, exact, atol=0.05)


def test_merge_of_two_runs_pools_samples(game12):
    a = PermutationShapley(max_evaluations=2_000, seed=1).fit(game12).result
    b = PermutationShapley(max_evaluations=2_000, seed=2).fit(game12).result
    merged = a.merge(b)
    assert np.array_equal(merged.counts, a.counts + b.counts)
    np.testing.assert_allclose(merged.values, (a.values * a.counts + b.values * b.counts) / merged.counts)
    assert merged.stderr.mean() < min(a.stderr.mean(), b.stderr.mean())


def test_result_roundtrip_and_dataframe(tmp_path, game12):
    result = MSRBanzhaf(max_evaluations=500, seed=1).fit(game12).result
    path = tmp_path / "r.json"
    result.save(path)
    from dataprice.valuation.result import ValuationResult

    loaded = ValuationResult.load(path)
    assert np.array_equal(loaded.values, result.values)
    frame = loaded.to_dataframe()
    assert list(frame.columns) == ["player", "value", "stderr", "count", "method"]
    assert len(frame) == 12


@pytest.mark.parametrize("cls", [PermutationShapley, MSRBanzhaf])
def test_checkpoint_file_resumes_an_interrupted_run(cls, game12, tmp_path):
    """A game that dies mid-run: the checkpoint keeps the finished batches, and a new run
    with the same checkpoint file ends exactly where an uninterrupted run ends."""
    from dataprice.valuation.game import Game

    class Dies(Game):
        def __init__(self, inner, after):
            super().__init__(inner.n_players)
            self.inner, self.after = inner, after

        def value_function(self, coalitions):
            if self.n_evaluations >= self.after:
                raise KeyboardInterrupt
            return self.inner(coalitions)

    batch = 8 if cls is PermutationShapley else 64
    budget = 3_000
    whole = cls(max_evaluations=budget, batch_size=batch, seed=4).fit(game12).result
    path = tmp_path / f"{cls.name}.json"
    with pytest.raises(KeyboardInterrupt):
        cls(max_evaluations=budget, batch_size=batch, seed=4, checkpoint=path, checkpoint_every=2).fit(Dies(game12, 1_200))
    saved = ValuationResult.load(path)
    assert 0 < saved.n_batches and saved.n_evaluations < budget
    resumed = cls(max_evaluations=budget, batch_size=batch, seed=4, checkpoint=path, checkpoint_every=2).fit(game12).result
    np.testing.assert_allclose(resumed.values, whole.values, rtol=1e-12, atol=1e-12)
    assert resumed.n_evaluations == whole.n_evaluations


@pytest.mark.parametrize("window", [1, 5])
def test_msr_banzhaf_on_an_engine_equals_the_in_process_run(game12, window):
    """Batches evaluated on two local workers and folded in order: the same values, the
    same budget and the same stopping batch as in-process."""
    from dataprice.engine import LokyEngine

    in_process = MSRBanzhaf(max_evaluations=3000, batch_size=128, seed=4).fit(game12).result
    engine = LokyEngine(2)
    try:
        on_engine = MSRBanzhaf(max_evaluations=3000, batch_size=128, seed=4).fit(
            game12, engine=engine, window=window).result
        stop = StandardErrorBelow(0.3, relative=False) | MaxEvaluations(10_000)
        early = MSRBanzhaf(stopping=stop, batch_size=64, seed=4).fit(game12).result
        early_engine = MSRBanzhaf(stopping=stop, batch_size=64, seed=4).fit(game12, engine=engine, window=window).result
    finally:
        engine.shutdown()
    np.testing.assert_array_equal(on_engine.values, in_process.values)
    assert on_engine.n_evaluations == in_process.n_evaluations == 3000
    np.testing.assert_array_equal(early_engine.values, early.values)
    assert early_engine.n_batches == early.n_batches and early.n_evaluations < 10_000 and early.converged
