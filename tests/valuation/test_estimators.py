"""The sampling Shapley estimators added for speed (issue 18): each converges to the exact
values on reference games, is unbiased where it claims to be, respects its budget exactly,
and gives the same values in this process and on a 2-worker engine."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.engine import make_engine
from dataprice.valuation.game import CachedGame, TabulatedGame
from dataprice.valuation.methods import METHODS, ExactShapley
from dataprice.valuation.stopping import MaxEvaluations, StandardErrorBelow

#: Estimators of the Shapley value from coalition values, and the options under which each
#: is unbiased (None: it does not claim to be).
ESTIMATORS = {"stratified_shapley": {"regression": False}, "kernel_shapley": {"unbiased": True}, "shapley": None}
#: Evaluations per sampling unit (a budget not a multiple of it leaves the rest unspent).
UNIT = {"kernel_shapley": 2}


def _game(n: int, seed: int) -> TabulatedGame:
    """A noisy, non-additive game: a saturating accuracy-like curve of weighted members, with
    a complementary pair and per-coalition noise (like a trained model's score)."""
    rng = np.random.default_rng(seed)
    masks = np.arange(2**n)
    bits = ((masks[:, None] >> np.arange(n)) & 1).astype(float)
    weight = rng.uniform(0.2, 2.0, size=n)
    base = 1 - np.exp(-(bits @ weight) / 3)
    pair = 0.3 * bits[:, 0] * bits[:, -1]
    return TabulatedGame(base + pair + 0.02 * rng.normal(size=2**n))


@pytest.fixture(scope="module")
def loky2():
    engine = make_engine("loky", 2)
    yield engine
    engine.shutdown()


def _error(name: str, game: TabulatedGame, exact: np.ndarray, budget: int, seed: int) -> float:
    values = METHODS[name](max_evaluations=budget, seed=seed).fit(game).result.values
    return float(np.linalg.norm(values - exact) / np.linalg.norm(exact))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_error_falls_with_the_budget_and_vanishes_at_the_whole_table(name):
    game = _game(10, 0)
    exact = ExactShapley().fit(game).result.values
    errors = {b: np.median([_error(name, game, exact, b, s) for s in range(5)]) for b in (60, 250, 700)}
    assert errors[60] > errors[250] > errors[700], errors
    assert errors[250] < 0.1, errors
    full = METHODS[name](max_evaluations=2**10, seed=0).fit(game).result
    np.testing.assert_allclose(full.values, exact, atol=1e-12)
    assert full.converged and full.n_evaluations == 2**10


@pytest.mark.parametrize("name", [k for k, unbiased in ESTIMATORS.items() if unbiased is not None])
def test_mean_over_seeds_is_the_exact_value(name):
    """Unbiased: over 400 seeds at a budget well below the table (100 of 256 coalitions, so
    that every player has a sample of nearly every stratum), the mean estimate is within 4.5
    standard errors of the exact value, for every player."""
    game = _game(8, 1)
    exact = ExactShapley().fit(game).result.values
    options = ESTIMATORS[name]
    draws = np.array([METHODS[name](max_evaluations=100, seed=s, **options).fit(game).result.values for s in range(400)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) <= 4.5 * se + 1e-12), (draws.mean(axis=0) - exact) / se


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_budget_is_respected_and_counts_what_the_game_computed(name):
    game = CachedGame(_game(9, 2))
    result = METHODS[name](max_evaluations=137, seed=3).fit(game).result
    unit = UNIT.get(result.extra.get("estimator", name), 1)
    assert 137 - unit < result.n_evaluations <= 137
    assert result.n_evaluations == game.n_evaluations == game.computed
    assert not result.converged


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_a_standard_error_target_stops_the_run_and_covers_the_truth(name):
    game = _game(9, 3)
    exact = ExactShapley().fit(game).result.values
    covered = []
    for seed in range(20):
        result = METHODS[name](stopping=StandardErrorBelow(0.01) | MaxEvaluations(400), seed=seed).fit(game).result
        assert result.converged and result.n_evaluations < 400
        assert np.all(result.stderr <= 0.01)
        covered.append(np.abs(result.values - exact) <= 1.96 * result.stderr + 1e-12)
    assert np.mean(covered) > 0.85  # nominal 95%; the estimated standard errors are not exact


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_same_values_in_this_process_and_on_two_workers(name, loky2):
    game = _game(9, 4)
    here = METHODS[name](max_evaluations=300, seed=5).fit(game).result
    there = METHODS[name](max_evaluations=300, seed=5).fit(game, engine=loky2).result
    np.testing.assert_array_equal(here.values, there.values)
    np.testing.assert_array_equal(here.variances, there.variances)
    assert here.n_evaluations == there.n_evaluations


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_small_budgets_and_tiny_games(name):
    """Fewer evaluations than the method's first step still give values that add up to
    v(N) - v(empty) (not converged); games of 1 to 3 players are exact."""
    game = _game(8, 5)
    result = METHODS[name](max_evaluations=5, seed=0).fit(game).result
    assert result.n_evaluations <= 5 and not result.converged
    for n in (1, 2, 3):
        small = _game(n, n)
        exact = ExactShapley().fit(small).result.values
        np.testing.assert_allclose(METHODS[name](max_evaluations=100, seed=0).fit(small).result.values, exact, atol=1e-12)


def test_paired_permutations_are_unbiased_and_vary_less_on_a_diminishing_game():
    """Antithetic pairs (a permutation and its reverse): the mean over 300 seeds is the exact
    value, and on a game with diminishing returns the spread over seeds at the same budget
    is below that of independent permutations."""
    from dataprice.valuation.methods import PermutationShapley

    game = _game(7, 6)
    exact = ExactShapley().fit(game).result.values
    runs = {paired: np.array([PermutationShapley(max_evaluations=122, seed=s, paired=paired).fit(game).result.values
                              for s in range(300)]) for paired in (False, True)}
    paired = runs[True]
    se = paired.std(axis=0, ddof=1) / np.sqrt(len(paired))
    assert np.all(np.abs(paired.mean(axis=0) - exact) <= 4.5 * se + 1e-12)
    spread = {k: float(np.mean((v - exact) ** 2)) for k, v in runs.items()}
    assert spread[True] < spread[False], spread


def test_paired_permutations_refuse_ordered_groups():
    from dataprice.valuation.methods import AsymmetricPermutationShapley

    with pytest.raises(ValueError, match="cannot pair"):
        AsymmetricPermutationShapley(groups=[[0], [1]], paired=True)


# -- kernel_shapley --------------------------------------------------------------------------


def _additive(n: int, seed: int) -> TabulatedGame:
    rng = np.random.default_rng(seed)
    masks = np.arange(2**n)
    bits = ((masks[:, None] >> np.arange(n)) & 1).astype(float)
    return TabulatedGame(0.7 + bits @ rng.normal(size=n))


@pytest.mark.parametrize("n", [4, 7, 10, 11])
def test_kernel_values_add_up_on_every_run_and_are_exact_on_an_additive_game(n):
    """The efficiency constraint is solved exactly, whatever the sample; on an additive game
    the weighted least squares fit is exact from the first 2n + 2 evaluations on."""
    from dataprice.valuation.methods import KernelShapley

    game, additive = _game(n, 7), _additive(n, 8)
    total = float(game.grand_value() - game.empty_value())
    truth = ExactShapley().fit(additive).result.values
    for budget in (2 * n + 2, 2 * n + 9, 3 * n + 20, 2**n - 2):
        for seed in range(3):
            values = KernelShapley(max_evaluations=budget, seed=seed).fit(game).result.values
            assert abs(values.sum() - total) < 1e-10
            np.testing.assert_allclose(KernelShapley(max_evaluations=budget, seed=seed).fit(additive).result.values,
                                       truth, atol=1e-10)


def test_kernel_pairs_are_distinct_and_each_half_sized_pair_is_drawn_once():
    """At an even n the pairs of two halves are drawn once each: with the budget one pair
    short of the table, every coalition but two is evaluated exactly once."""
    from dataprice.valuation.methods import KernelShapley

    game = CachedGame(_game(8, 9))
    result = KernelShapley(max_evaluations=2**8 - 2, seed=1).fit(game).result
    assert game.n_evaluations == game.computed == 2**8 - 2
    assert result.extra["units_by_stratum"] == {1: 8, 2: 28, 3: 56, 4: 34}


# -- shapley (the default picker) ----------------------------------------------------------------


def test_shapley_is_exact_when_the_budget_covers_the_table():
    game = CachedGame(_game(8, 10))
    result = METHODS["shapley"](max_evaluations=256, seed=0).fit(game).result
    np.testing.assert_allclose(result.values, ExactShapley().fit(_game(8, 10)).result.values, atol=1e-12)
    assert result.extra["estimator"] == "exact_shapley" and result.converged
    assert game.computed == 256
    # a standard error alone bounds the run: exact within the default budget of 200 n^2
    assert METHODS["shapley"](stopping=StandardErrorBelow(0.1), seed=0).fit(_game(8, 10)).result.extra[
        "estimator"] == "exact_shapley"
    assert METHODS["shapley"](max_evaluations=255, seed=0).fit(_game(8, 10)).result.extra["estimator"] != "exact_shapley"


def test_additivity_gap_of_known_games():
    from dataprice.valuation.methods.auto import additivity_gap

    assert additivity_gap(_additive(9, 0)) < 1e-12
    n = 6  # v(S) = 1 when S is not empty: singletons sum to n, leave-one-out to 0
    anyone = TabulatedGame((np.arange(2**n) > 0).astype(float))
    assert additivity_gap(anyone) == pytest.approx(n)
    everyone = TabulatedGame((np.arange(2**n) == 2**n - 1).astype(float))  # only N: the reverse
    assert additivity_gap(everyone) == pytest.approx(n)


def test_shapley_picks_by_the_gap_and_pays_the_first_evaluations_once():
    additive_ish = TabulatedGame(_additive(12, 1).values + 0.01 * np.random.default_rng(2).normal(size=2**12))
    bits = ((np.arange(2**12)[:, None] >> np.arange(12)) & 1).astype(float)
    saturating = TabulatedGame(1 - np.exp(-2 * bits @ np.random.default_rng(3).uniform(0.2, 2.0, size=12)))
    for game, expected in ((additive_ish, "kernel_shapley"), (saturating, "stratified_shapley")):
        counted = CachedGame(game)
        result = METHODS["shapley"](max_evaluations=500, seed=4).fit(counted).result
        assert result.extra["estimator"] == expected, result.extra
        assert result.n_evaluations == counted.computed <= 500
        alone = METHODS[expected](max_evaluations=500, seed=4).fit(game).result
        np.testing.assert_array_equal(result.values, alone.values)


@pytest.mark.parametrize("name", ["stratified_shapley", "kernel_shapley"])
def test_games_whose_middle_size_has_more_than_2_to_the_63_coalitions_spend_their_budget(name):
    """C(70, 35) > 2^63: the room left in a size must not overflow on its way to an integer
    (it did: the run stopped after its first coalitions, 243 of 20,000 at 100 players)."""
    from dataprice.buyers.coverage.game import random_coverage_market

    game, _ = random_coverage_market(70, 30, seed=0)
    result = METHODS[name](max_evaluations=900, seed=0).fit(game).result
    assert result.n_evaluations == 900 and np.all(np.isfinite(result.values))


class _Crashing(TabulatedGame):
    """A tabulated game that fails once it has computed ``limit`` coalitions (a killed run)."""

    def __init__(self, values, limit):
        super().__init__(values)
        self.limit = limit

    def value_function(self, coalitions):
        if self.n_evaluations + coalitions.shape[0] > self.limit:
            raise KeyboardInterrupt("killed")
        return super().value_function(coalitions)


@pytest.mark.parametrize("name", ["stratified_shapley", "kernel_shapley", "shapley"])
def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_values(name, tmp_path):
    table = _game(10, 11).values
    whole = METHODS[name](max_evaluations=700, seed=2).fit(TabulatedGame(table)).result
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        METHODS[name](max_evaluations=700, seed=2, checkpoint=path, checkpoint_every=2).fit(_Crashing(table, 450))
    assert path.is_file()
    game = CachedGame(TabulatedGame(table))
    resumed = METHODS[name](max_evaluations=700, seed=2, checkpoint=path, checkpoint_every=2).fit(game).result
    np.testing.assert_array_equal(resumed.values, whole.values)
    assert resumed.n_evaluations == whole.n_evaluations
    assert game.computed < 700 - 200  # the saved coalitions were read, not computed again
    assert resumed.extra["replayed_from_checkpoint"] > 200
    # a checkpoint of another run is refused, naming the file
    with pytest.raises(ValueError, match="run.npz: checkpoint of another run"):
        METHODS[name](max_evaluations=700, seed=3, checkpoint=path).fit(TabulatedGame(table))
    path.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a dataprice sampling checkpoint"):
        METHODS[name](max_evaluations=700, seed=2, checkpoint=path).fit(TabulatedGame(table))


# -- the buyer's proxy game as control variate ------------------------------------------------


class _WithProxy(TabulatedGame):
    """A tabulated game that offers another table as its proxy, counting the proxy's calls."""

    def __init__(self, values, proxy_values):
        super().__init__(values)
        self.proxy = TabulatedGame(proxy_values)

    def proxy_game(self):
        return self.proxy


def _proxied(n: int, seed: int, noise: float) -> _WithProxy:
    """``v`` = a saturating game plus coalition noise; the proxy is the same curve, rescaled
    and shifted (what a cheaper model of the same data looks like), without the noise."""
    rng = np.random.default_rng(seed)
    bits = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    curve = 1 - np.exp(-2 * bits @ rng.uniform(0.2, 2.0, size=n))
    return _WithProxy(curve + noise * rng.normal(size=2**n), 0.5 * curve + 0.1)


def test_a_proxy_that_explains_the_game_cuts_the_error_and_converges():
    from dataprice.valuation.methods import StratifiedShapley

    game = _proxied(11, 0, 0.003)
    exact = ExactShapley().fit(TabulatedGame(game.values)).result.values

    def error(budget, seed, **options):
        values = StratifiedShapley(max_evaluations=budget, seed=seed, **options).fit(game).result.values
        return float(np.linalg.norm(values - exact) / np.linalg.norm(exact))

    for budget in (100, 300):
        without = np.median([error(budget, s) for s in range(6)])
        with_proxy = np.median([error(budget, s, proxy=True) for s in range(6)])
        assert with_proxy < 0.5 * without, (budget, with_proxy, without)
    full = StratifiedShapley(max_evaluations=2**11, seed=0, proxy=True).fit(game).result
    np.testing.assert_allclose(full.values, exact, atol=1e-10)
    assert full.n_evaluations == 2**11 and full.extra["proxy"]["slope"] == pytest.approx(2.0, rel=0.05)
    # the proxy's values are exact when its table fits in PROXY_BUDGET_FACTOR x the budget
    small = StratifiedShapley(max_evaluations=300, seed=0, proxy=True).fit(game).result
    assert small.extra["proxy"]["values"] == "stratified_shapley" and small.extra["proxy"]["evaluations"] <= 4 * 300
    assert full.extra["proxy"]["values"] == "exact"
    # a game without a proxy is valued as before
    plain = TabulatedGame(game.values)
    np.testing.assert_array_equal(StratifiedShapley(max_evaluations=300, seed=1, proxy=True).fit(plain).result.values,
                                  StratifiedShapley(max_evaluations=300, seed=1).fit(plain).result.values)


def test_shapley_uses_paired_permutations_on_a_submodular_game():
    from dataprice.buyers.coverage.game import random_coverage_market

    game, _ = random_coverage_market(30, 40, seed=1)
    result = METHODS["shapley"](max_evaluations=2000, seed=0).fit(game).result
    paired = METHODS["tmc_shapley"](max_evaluations=2000, seed=0, paired=True).fit(game).result
    assert result.extra["estimator"] == "tmc_shapley (paired)"
    np.testing.assert_array_equal(result.values, paired.values)


def test_shapley_takes_the_proxy_where_the_game_has_strong_interactions():
    game = _proxied(12, 3, 0.01)
    result = METHODS["shapley"](max_evaluations=400, seed=0).fit(game).result
    assert result.extra["estimator"] == "stratified_shapley" and result.extra["additivity_gap"] > 4
    assert result.extra["proxy"]["game"] == "TabulatedGame"


def test_shapley_uses_permutations_above_the_coalition_samplers_size():
    from dataprice.valuation.methods.auto import COALITION_SAMPLING_MAX_PLAYERS
    from dataprice.valuation.reference_games import AirportGame

    n = COALITION_SAMPLING_MAX_PLAYERS + 1
    game = AirportGame(np.random.default_rng(0).uniform(0, 5, n))
    assert not game.submodular
    result = METHODS["shapley"](max_evaluations=4 * n, seed=0).fit(game).result
    assert result.extra["estimator"] == "tmc_shapley (paired)" and result.n_evaluations <= 4 * n
