"""Monte Carlo methods: convergence to exact values, budgets, seeds, resume."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from dataprice.valuation.game import TabulatedGame
from dataprice.valuation.methods import (
    AsymmetricPermutationShapley,
    ExactBanzhaf,
    ExactShapley,
    MSRBanzhaf,
    PermutationShapley,
)
from dataprice.valuation.reference_games import AirportGame
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import MaxEvaluations, MaxTime, StandardErrorBelow

from ..conftest import random_monotone_table


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


# --- in-process and engine runs agree exactly -------------------------------------------


@pytest.fixture(scope="module")
def loky2():
    """One two-worker loky engine for the module (start-up takes a second or two)."""
    from dataprice.engine import make_engine

    engine = make_engine("loky", 2)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def saturating10():
    """A 10-player game that reaches v(N) early in most permutations, so truncation saves
    many evaluations and batch costs vary."""
    masks = np.arange(2**10)
    bits = ((masks[:, None] >> np.arange(10)) & 1).astype(bool)
    costs = np.random.default_rng(4).uniform(0, 10, size=10)
    return TabulatedGame(np.max(np.where(bits, costs, 0.0), axis=1))


_METHODS = {
    "tmc": partial(PermutationShapley, batch_size=8),
    "tmc-truncated": partial(PermutationShapley, batch_size=8, truncation_rtol=1e-9),
    "tmc-truncated-block1": partial(
        PermutationShapley, batch_size=8, truncation_rtol=1e-9, block_size=1
    ),
    "tmc-paired": partial(PermutationShapley, batch_size=8, paired=True),
    "tmc-paired-truncated": partial(PermutationShapley, batch_size=8, truncation_rtol=1e-9, paired=True),
    "msr": partial(MSRBanzhaf, batch_size=64),
    "asymmetric-truncated": partial(
        AsymmetricPermutationShapley,
        groups=[[3, 0, 7], [1, 2, 4, 5, 6, 8, 9]],
        batch_size=8,
        truncation_rtol=1e-9,
    ),
}


def _same_run(a: ValuationResult, b: ValuationResult, what: str) -> None:
    for field in ("values", "variances", "counts"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), f"{what}: {field}"
    for field in ("n_evaluations", "n_batches", "converged"):
        assert getattr(a, field) == getattr(b, field), f"{what}: {field}"
    saved = "truncated_evaluations_saved"
    assert a.extra.get(saved) == b.extra.get(saved), f"{what}: {saved}"


@pytest.mark.parametrize("method", list(_METHODS))
@pytest.mark.parametrize("stop", ["budget", "stderr"])
def test_engine_runs_equal_the_in_process_run(method, stop, saturating10, loky2):
    """Values, variances, counts, n_evaluations and n_batches are identical in-process and
    on any engine and window, with truncation too (the budget of 997 binds mid-batch)."""
    from dataprice.engine import SerialEngine

    if stop == "budget":
        criterion = MaxEvaluations(997)
    else:
        criterion = StandardErrorBelow(0.4, relative=False) | MaxEvaluations(20_000)
    make = _METHODS[method]
    reference = make(stopping=criterion, seed=6).fit(saturating10).result
    if stop == "budget":
        assert reference.n_evaluations <= 997 and not reference.converged
    else:
        assert reference.converged and reference.n_evaluations < 20_000
    if "truncated" in method:
        assert reference.extra["truncated_evaluations_saved"] > 0
    for engine in (SerialEngine(), loky2):
        for window in (1, 3, 8):
            run = make(stopping=criterion, seed=6).fit(saturating10, engine=engine, window=window)
            _same_run(run.result, reference, f"{method} {engine.name} window {window}")


def test_engine_run_without_truncation_evaluates_no_more_than_it_counts(game12):
    """Batches submitted ahead have exactly their final size when every unit costs the
    same: the game is evaluated on exactly the coalitions the result counts."""
    from dataprice.engine import SerialEngine
    from dataprice.valuation.game import CachedGame

    for method in (
        PermutationShapley(max_evaluations=997, batch_size=8, seed=1),
        MSRBanzhaf(max_evaluations=997, batch_size=64, seed=1),
    ):
        counted = CachedGame(game12)
        result = method.fit(counted, engine=SerialEngine(), window=8).result
        assert counted.n_evaluations == result.n_evaluations <= 997


def test_engine_run_recomputes_a_batch_submitted_too_small(saturating10, loky2):
    """A criterion whose budget grows mid-run defeats the bound on a batch submitted ahead:
    the batch is computed again at its right size, and the run still equals in-process."""
    from dataprice.valuation.stopping import StoppingCriterion

    class Stepped(StoppingCriterion):
        def __call__(self, state):
            return state.n_evaluations >= 1500

        def remaining_evaluations(self, state):
            s = state.n_evaluations
            return 200 - s if s < 190 else 1500 - s

    make = partial(
        PermutationShapley, stopping=Stepped(), batch_size=4, truncation_rtol=1e-9, seed=2
    )
    reference = make().fit(saturating10).result
    _same_run(make().fit(saturating10, engine=loky2, window=4).result, reference, "stepped budget")


def test_unlearning_shapley_on_an_engine_equals_the_in_process_run(loky2):
    from dataprice.buyers.classifier.game import ClassifierGame
    from dataprice.data.shards import make_shards
    from dataprice.engine import SerialEngine
    from dataprice.valuation.methods import UnlearningShapley

    game = ClassifierGame(make_shards("wine", 6, seed=2, noisy_sellers=[5]), value_per_quality=100)
    make = partial(
        UnlearningShapley, max_evaluations=90, batch_size=4, truncation_rtol=0.05, seed=0
    )
    reference = make().fit(game).result
    assert reference.extra["truncated_evaluations_saved"] > 0
    for engine in (SerialEngine(), loky2):
        _same_run(make().fit(game, engine=engine, window=3).result, reference, engine.name)


@pytest.mark.parametrize("method", list(_METHODS))
def test_a_batch_is_a_prefix_of_a_larger_batch(method, saturating10):
    """What the engine loop relies on: the first k units of batch b drawn at size K > k are
    batch b drawn at size k, marginals and evaluation counts included."""
    from dataprice.valuation.methods.banzhaf import _msr_batch
    from dataprice.valuation.methods.permutation import _permutation_batch

    m = _METHODS[method](max_evaluations=100, seed=9)
    for b, (k, big) in enumerate([(1, 8), (3, 8), (5, 64)]):
        if isinstance(m, MSRBanzhaf):
            small = _msr_batch(m.seed, saturating10, b, k)
            large = _msr_batch(m.seed, saturating10, b, big)
        else:
            if isinstance(m, AsymmetricPermutationShapley):
                m.fit(saturating10)  # sets the checked groups
            ends = (saturating10.empty_value(), saturating10.grand_value())
            small = _permutation_batch(m, saturating10, *ends, b, k)
            large = _permutation_batch(m, saturating10, *ends, b, big)
        for part_small, part_large in zip(small, large, strict=True):
            np.testing.assert_array_equal(part_large[:k], part_small)


def test_one_player_game_is_valued_exactly_and_ends():
    """A single seller's Shapley value is v(N) - v(empty); sampling permutations of one
    player spends no evaluations, which once made a budget-only run loop forever."""
    from dataprice.valuation.methods.asymmetric import AsymmetricPermutationShapley
    from dataprice.valuation.reference_games import AdditiveGame

    game = AdditiveGame([2.5])
    for method in (PermutationShapley(max_evaluations=50, truncation_rtol=0.1),
                   AsymmetricPermutationShapley(groups=[[0]], max_evaluations=50)):
        result = method.fit(game).result
        assert result.values.tolist() == [2.5] and result.n_evaluations == 2 and result.converged
