"""Guards over the registries: every registered buyer, valuation method and payment rule is
tested the moment it is registered, reachable from the scenario schema, and documented.

* every method on games with known values (what it ``estimates``), or on the buyer's own
  game when it needs one;
* every buyer at small size: the same tables on one process and on two loky workers;
* every rule on every market kind it supports: finite payments, and no profitable misreport
  and no loss at truthful reports for rules that claim truthfulness (``truthful_exact``);
* every name reachable from a scenario, listed in the README, exported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataprice.buyers import BUYERS
from dataprice.errors import ScenarioError
from dataprice.market.kinds import ContinuousMarket, PerQueryMarket, SubsetMarket
from dataprice.market.metrics import settler, truthfulness_audit
from dataprice.market.rules import RULES
from dataprice.scenario import absolute_paths, parse_scenario, small_scenario
from dataprice.valuation.game import TabulatedGame, tabulate
from dataprice.valuation.methods import METHODS, MonteCarloSpec
from dataprice.valuation.reference_games import AirportGame, GloveGame, UnanimityGame

from .conftest import random_monotone_table

ROOT = Path(__file__).resolve().parents[1]
# data files and model folders a shipped scenario names are taken from its folder, as load_scenario does
SHIPPED = {
    path.stem: absolute_paths(yaml.safe_load(path.read_text()), path.parent)
    for path in sorted((ROOT / "scenarios").glob("*.yaml"))
}
REFERENCE_GAMES = [AirportGame([1.0, 2.0, 4.0, 4.0, 7.0]), GloveGame(1, 3), UnanimityGame(5, [0, 2])]


def _spec(name: str, n_players: int, **extra):
    cls = METHODS[name]
    fields = cls.Spec.model_fields
    data = {"method": name, **extra}
    if "groups" in fields:
        data["groups"] = [list(range(n_players))]  # one group: the plain Shapley value
    if issubclass(cls.Spec, MonteCarloSpec):
        data["max_evaluations"] = 24_000
    return cls.Spec(**data)


def _expected(game, estimates: str) -> np.ndarray:
    if estimates == "leave_one_out":
        n = game.n_players
        without = np.ones((n, n), dtype=bool)
        without[np.arange(n), np.arange(n)] = False
        return game.grand_value() - game(without)
    return game.shapley_values() if estimates == "shapley" else game.banzhaf_values()


@pytest.mark.parametrize("name", [m for m in METHODS if not METHODS[m].uses_buyer_game])
@pytest.mark.parametrize("game", REFERENCE_GAMES, ids=lambda g: type(g).__name__)
def test_every_method_estimates_what_it_says_on_games_with_known_values(name, game):
    cls = METHODS[name]
    method = cls.from_spec(_spec(name, game.n_players), seed=7)
    target = tabulate(game) if cls.needs_tabulation else game
    result = method.fit(target).result
    expected = _expected(game, cls.estimates)
    tolerance = 1e-9 + (6 * result.stderr if issubclass(cls.Spec, MonteCarloSpec) else 0.0)
    assert np.all(np.abs(result.values - expected) <= tolerance), (result.values, expected, result.stderr)


@pytest.mark.parametrize("name", [m for m in METHODS if METHODS[m].uses_buyer_game])
def test_methods_that_read_the_buyer_run_on_a_buyer_that_offers_what_they_need(name):
    """Such a method is fitted on the game of a registered buyer that offers its capability
    (six classifier sellers, the last two with every label flipped): its values are finite
    and the two noisy sellers get the two lowest values."""
    from dataprice.buyers import BuildContext

    spec = _spec(name, 6, max_evaluations=300) if issubclass(METHODS[name].Spec, MonteCarloSpec) else _spec(name, 6)
    task = next(t for t, cls in BUYERS.items() if spec.requires() <= cls.offers)
    assert task == "classifier", f"no test scenario for buyer {task!r}: add one here"
    model = "knn" if "knn" in spec.requires() else "logistic"
    scenario = parse_scenario({
        "name": "t", "sellers": {"count": 6, "costs": [1.0] * 6, "label_noise": {"sellers": [4, 5], "fraction": 1.0}},
        "buyer": {"task": "classifier", "dataset": "breast_cancer", "model": model, "max_points": 240},
        "valuation": [spec.model_dump(mode="json")],
    })
    names = scenario.sellers.player_names()
    game = scenario.buyer.build(BuildContext(scenario, 3, np.ones(6), names)).game
    values = METHODS[name].from_spec(spec, seed=0).fit(game).result.values
    assert np.all(np.isfinite(values))
    assert set(np.argsort(values)[:2]) == {4, 5}, values


def _scenario_of(task: str) -> dict:
    # a scenario whose data files are relative to scenarios/ is read here only if no other has the task
    shipped = sorted(SHIPPED.values(), key=lambda data: "data/" in json.dumps(data["buyer"]))
    for data in shipped:
        if data["buyer"]["task"] == task:
            return data
    raise AssertionError(f"buyer {task!r} has no scenario in scenarios/: add one (the library documents every buyer)")


@pytest.fixture(scope="module")
def two_workers():
    from dataprice.engine import LokyEngine

    engine = LokyEngine(2)
    yield engine
    engine.shutdown()


@pytest.mark.parametrize("task", list(BUYERS))
def test_every_buyer_gives_the_same_tables_on_one_process_and_two_workers(task, two_workers):
    from dataprice.engine import SerialEngine
    from dataprice.experiment import run_scenario

    data = {**_scenario_of(task), "replicates": 2, "rounds": 1, "audit": {"enabled": False}}
    scenario = small_scenario(parse_scenario(data))
    serial = run_scenario(scenario, progress=False, engine=SerialEngine())
    parallel = run_scenario(scenario, progress=False, engine=two_workers)
    pd.testing.assert_frame_equal(serial.values_table(), parallel.values_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), parallel.outcomes_table())
    assert serial.notes["buyer"] == BUYERS[task].label


def _market(kind: str, rng: np.random.Generator):
    """A small random market of ``kind`` and true costs."""
    if kind == "subset":
        game = random_monotone_table(4, rng)
        return SubsetMarket(game), rng.uniform(0.2, 3.0, 4)
    if kind == "continuous":
        from dataprice.buyers.mean_estimation.task import make_mean_estimation_task

        return ContinuousMarket(make_mean_estimation_task(4, 3, seed=int(rng.integers(1000)))), rng.uniform(0.05, 0.5, 4)
    if kind == "per_query":
        owners = np.array([rng.permutation(5)[:3] for _ in range(12)])
        return PerQueryMarket(rng.uniform(0, 1, owners.shape), owners, 5), rng.uniform(0.0, 0.6, 5)
    raise AssertionError(f"no random market for kind {kind!r}: add one here")


@pytest.mark.parametrize(("rule", "kind"), [(r, k) for r, rule in RULES.items() for k in rule.pay])
def test_every_rule_settles_every_kind_it_supports(rule, kind):
    rng = np.random.default_rng(11)
    for _ in range(3):
        market, costs = _market(kind, rng)
        outcome = market.settle(costs, rule, costs)
        assert outcome.payments.shape == costs.shape and np.all(np.isfinite(outcome.payments))
        if RULES[rule].truthful_exact:
            assert np.all(outcome.utilities >= -1e-7), "a rule that claims truthfulness must be IR"
            audit = truthfulness_audit(settler(market), rule, costs, span=market.value_span(), n_linear=9)
            assert np.nanmax(audit.gain) <= 1e-6 * max(market.value_span(), 1.0), (rule, kind, audit.gain)


BASE = {"name": "t", "sellers": {"count": 3, "costs": [0.1, 0.2, 0.3]},
        "buyer": {"task": "single_winner", "values": [1.0, 2.0, 3.0]}}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_reachable_from_a_scenario(name):
    entry = _spec(name, 3).model_dump(mode="json", exclude_defaults=True)
    try:
        parse_scenario({**BASE, "valuation": [{"method": name, **entry}]})
    except ScenarioError as exc:  # only because the single-winner buyer cannot give what it needs
        assert "unknown value" not in str(exc) and "needs" in str(exc), str(exc)


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_is_reachable_from_a_scenario(name):
    base = BASE
    if not RULES[name].supports("subset"):  # a rule of the per-query market only (value_bought)
        assert RULES[name].supports("per_query"), name
        base = {**BASE, "buyer": {"task": "rag_single_document"}}
    scenario = parse_scenario({**base, "market": {"payment_rules": [name]}})
    assert scenario.market.payment_rules == [name]


def test_every_name_is_documented_and_exported():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in [*BUYERS, *METHODS, *RULES] if name not in readme]
    assert not missing, f"the README's scenario template does not name {missing}"
    import dataprice.valuation.methods as methods

    assert {cls.__name__ for cls in METHODS.values()} <= set(methods.__all__)
    for task in BUYERS:
        _scenario_of(task)


def test_a_table_is_not_retabulated():
    game = TabulatedGame(np.arange(8.0))
    assert tabulate(game) is game
