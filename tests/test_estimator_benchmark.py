"""``benchmarks/estimators.py``: evaluations-to-accuracy is read off the right grid point, and
the coverage game's closed-form Shapley values are exact (shapiq's side is not run here)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from dataprice.buyers.coverage.game import random_coverage
from dataprice.valuation.game import TabulatedGame, masks_to_coalitions, tabulate
from dataprice.valuation.methods import ExactShapley, PermutationShapley
from dataprice.valuation.reference_games import AirportGame

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # estimators.py imports its sibling estimator_games.py
    try:
        yield importlib.import_module("estimators"), importlib.import_module("estimator_games")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_first_budget_whose_median_over_seeds_reaches_the_target(bench):
    estimators, _ = bench
    budgets = [64, 128, 256, 512]
    errors = np.array([
        [0.30, 0.20, 0.25],
        [0.12, 0.08, 0.20],  # one seed below 10%, median 0.12: not yet
        [0.09, 0.50, 0.01],  # median 0.09
        [np.nan, 0.01, 0.02],  # a failed run counts as missing the target: median 0.02
    ])
    spent = np.array([[60, 60, 60], [120, 120, 120], [250, 254, 240], [500, 500, 500]])
    assert estimators.evals_to_target(budgets, errors, 0.10, evaluations=spent) == (256, 250.0)
    assert estimators.evals_to_target(budgets, errors, 0.05) == (512, 512.0)
    assert estimators.evals_to_target(budgets, errors, 0.001) == (None, None)
    rho = np.array([[0.5, 0.9, 0.96], [0.97, 0.96, 0.2], [0.99, 0.99, 0.99], [0.99, 0.99, 0.99]])
    assert estimators.evals_to_target(budgets, rho, 0.95, higher_is_better=True) == (128, 128.0)
    assert estimators.budget_grid(64, 8192, 2.0) == [64, 128, 256, 512, 1024, 2048, 4096, 8192]
    assert estimators.budget_grid(16, 8192, 2.0, n_players=6) == [16, 32, 64, 128, 256]  # at most 4 * 2^n
    assert estimators.budget_grid(64, 256, 2**0.5) == [64, 91, 128, 181, 256]


def test_evals_to_target_on_a_reference_game(bench):
    """Airport game (known Shapley values) read from its table: the benchmark's answer is the
    first grid budget at which the median error of ``tmc_shapley`` runs made here is <= target."""
    estimators, games = bench
    airport = AirportGame([1.0, 2.0, 2.5, 4.0, 5.0, 7.0, 7.5, 9.0])
    exact = airport.shapley_values()
    table = tabulate(airport).values
    budgets, seeds = estimators.budget_grid(16, 8192, 2.0, n_players=8), [0, 1, 2, 3, 4]
    assert budgets[-1] == 1024
    runs = estimators.run_dataprice("tmc_shapley", lambda: games.LookupGame(table), exact, "airport", budgets, seeds)
    assert all(r["failure"] is None and r["evaluations"] == r["reported_evaluations"] <= r["budget"] for r in runs)
    summary = estimators.summarize(runs, budgets, seeds)
    for target, column in ((0.10, "evals to 10%"), (0.05, "evals to 5%")):
        medians = [np.median([np.linalg.norm(PermutationShapley(max_evaluations=b, seed=s).fit(airport).result.values
                                             - exact) / np.linalg.norm(exact) for s in seeds]) for b in budgets]
        first = next((b for b, m in zip(budgets, medians, strict=True) if m <= target), None)
        assert summary[column]["budget"] == first
    assert summary["evals to 10%"]["budget"] is not None
    spent = [r["evaluations"] for r in runs if r["budget"] == summary["evals to 10%"]["budget"]]
    assert summary["evals to 10%"]["evaluations"] == np.median(spent)


def test_a_failing_method_is_recorded_and_never_reaches(bench):
    estimators, games = bench

    class Broken:
        name = "broken"

        def __init__(self, **options):
            pass

        def fit(self, game):
            raise RuntimeError("no budget for that")

    exact = np.array([1.0, 2.0])
    runs = estimators.run_dataprice(Broken, lambda: games.LookupGame(np.array([0.0, 1.0, 2.0, 3.0])), exact, "g",
                                    [4, 8], [0, 1])
    summary = estimators.summarize(runs, [4, 8], [0, 1])
    assert summary["failed runs"] == 4 and summary["evals to 10%"]["budget"] is None
    assert "no budget for that" in runs[0]["failure"]


def test_default_methods_are_the_sampling_shapley_estimators(bench):
    estimators, _ = bench
    chosen, left_out = estimators.default_methods()
    assert {"tmc_shapley", "stratified_shapley", "kernel_shapley", "shapley", "tmc_shapley[paired=true]"} <= set(chosen)
    assert not {"msr_banzhaf", "asymmetric_shapley", "unlearning_shapley", "exact_shapley"} & set(chosen)
    assert {"msr_banzhaf", "asymmetric_shapley", "unlearning_shapley"} <= set(left_out)


def test_method_options_in_brackets(bench):
    estimators, _ = bench
    assert estimators.parse_method("tmc_shapley") == ("tmc_shapley", {})
    assert estimators.parse_method("tmc_shapley[paired=true,batch_size=8,x=a]") == (
        "tmc_shapley", {"paired": True, "batch_size": 8, "x": "a"})
    with pytest.raises(ValueError, match="key=value"):
        estimators.parse_method("tmc_shapley[paired]")
    game = TabulatedGame(np.arange(2**5, dtype=float))
    runs = estimators.run_dataprice("tmc_shapley[paired=true]", lambda: game, np.arange(1.0, 6.0), "g", [40], [0])
    assert runs[0]["method"] == "tmc_shapley[paired=true]" and runs[0]["failure"] is None


def test_the_goal_compares_the_default_with_the_best_approximator_and_the_best_per_target(bench):
    estimators, _ = bench

    def summary(*evals):
        columns = {c: {"evaluations": e, "budget": e} for (_, _, c), e in zip(estimators.TARGETS, evals, strict=True)}
        return {**columns, "median rel. error there": 0.01}

    # B ranks first (fewest evaluations to 5%); A is best at 10%
    shapiq = {("shapiq", "A"): summary(100, 400, None), ("shapiq", "B"): summary(200, 300, 900)}
    fewer = estimators.default_against_shapiq({("dataprice", "shapley"): summary(100, 300, 800), **shapiq})
    assert fewer["best"] == {"no_more": True, "fewer": True} and fewer["per_target"] == {"no_more": True, "fewer": True}
    assert "best shapiq approximator, B" in fewer["line"] and "10% 100 vs 100 (A)" in fewer["line"]
    tie = estimators.default_against_shapiq({("dataprice", "shapley"): summary(100, 300, 900), **shapiq})
    assert tie["best"]["fewer"] and tie["per_target"] == {"no_more": True, "fewer": False}
    between = estimators.default_against_shapiq({("dataprice", "shapley"): summary(150, 300, 900), **shapiq})
    assert between["best"]["fewer"] and not between["per_target"]["no_more"]
    more = estimators.default_against_shapiq({("dataprice", "shapley"): summary(90, None, 100), **shapiq})
    assert not more["best"]["no_more"] and not more["per_target"]["no_more"]


def test_a_report_is_written_again_from_the_runs_csv(bench, tmp_path):
    estimators, _ = bench
    runs = [estimators.record("g", "dataprice", "shapley", 64, 0, [1.0, 2.0], [1.0, 2.1], evaluations=60, seconds=0.1),
            estimators.record("g", "shapiq", "X", 64, 0, None, [1.0, 2.1], evaluations=None, seconds=None, failure="E")]
    estimators.write_csv(tmp_path / "e_runs.csv", runs)
    back = estimators.read_csv(tmp_path / "e_runs.csv")
    assert back[0]["evaluations"] == 60 and back[0]["rel_error"] == runs[0]["rel_error"] and back[0]["failure"] is None
    assert back[1]["failure"] == "E" and back[1]["evaluations"] is None and np.isnan(back[1]["rel_error"])


def test_coverage_closed_form_is_exact_shapley(bench):
    _, games = bench
    game = random_coverage(10, 30, seed=1)
    exact = ExactShapley().fit(tabulate(game)).result.values
    np.testing.assert_allclose(games.coverage_shapley(game.coverage, game.weights), exact, rtol=1e-10, atol=1e-10)
    # deterministic coverage (0/1): each need's weight split equally among its coverers
    rng = np.random.default_rng(2)
    incidence, weights = rng.random((10, 12)) < 0.3, rng.exponential(5.0, 12)
    coalitions = masks_to_coalitions(np.arange(2**10), 10)
    covered = (coalitions.astype(int) @ incidence.astype(int)) > 0
    exact = ExactShapley().fit(TabulatedGame(covered @ weights)).result.values
    np.testing.assert_allclose(games.equal_split_shapley(incidence, weights), exact, atol=1e-10)
    np.testing.assert_allclose(games.coverage_shapley(incidence.astype(float), weights), exact, atol=1e-10)
