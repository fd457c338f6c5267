"""The repeated market (Mesa): truthful markets stay efficient, learners find the truth
under Myerson and not under a manipulable rule, results independent of workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataprice.agents.model import MarketEnvironment, MarketModel, RoundMarket
from dataprice.agents.strategies import BestResponse, FixedMarkup, Hedge, Truthful, make_strategy
from dataprice.buyers.single_winner.game import SingleWinnerGame
from dataprice.market import SubsetMarket
from dataprice.market.allocation import subset_sums
from dataprice.market.metrics import market_span, optimal_welfare, subset_settler
from dataprice.rng import child_rng
from dataprice.scenario import parse_scenario
from dataprice.valuation.game import TabulatedGame, tabulate

from ..conftest import run_serial_and_parallel

VALUES = np.array([1.0, 0.9, 0.8, 0.7])
COSTS = np.array([0.3, 0.25, 0.2, 0.15])


def noisy_single_winner(noise: float = 0.5) -> MarketEnvironment:
    """Four documents competing per query; each round the values get independent shocks."""
    base = tabulate(SingleWinnerGame(VALUES))
    scale = market_span(SubsetMarket(base))
    sigma = noise * scale / len(VALUES)

    def round_market(t: int) -> RoundMarket:
        shocks = child_rng(7, t).normal(0, sigma, len(VALUES))
        market = SubsetMarket(TabulatedGame(base.values + subset_sums(shocks)))
        return RoundMarket(subset_settler(market), optimal_welfare(market, COSTS))

    return MarketEnvironment(round_market, COSTS, scale, [f"doc_{j}" for j in range(4)])


def late_misreport(model: MarketModel, fraction: float = 0.2) -> float:
    bids = np.array([o.bids for o in model.outcomes[-int(len(model.outcomes) * fraction) :]])
    return float(np.mean(np.abs(bids / COSTS - 1)))


def test_truthful_sellers_under_vcg_are_efficient_every_round():
    model = MarketModel(noisy_single_winner(), "vcg", [Truthful() for _ in COSTS], seed=3).run(60)
    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == 60
    np.testing.assert_allclose(frame["efficiency"], 1.0)
    # the rounds really differ: the best welfare moves with the shocks
    assert frame["best_welfare"].std() > 0.01


def test_learners_under_myerson_converge_to_truthful_reports():
    strategies = [Hedge(learning_rate=30.0) for _ in COSTS]
    model = MarketModel(noisy_single_winner(), "myerson", strategies, seed=1).run(300)
    assert late_misreport(model) < 0.05
    for seller in model.sellers:
        assert seller.strategy.probabilities[np.isclose(seller.strategy.multipliers, 1.0)][0] > 0.8
    late = model.datacollector.get_model_vars_dataframe()["efficiency"].iloc[-60:]
    assert late.mean() > 0.99


def test_learners_under_a_manipulable_rule_do_not():
    """Pay-as-bid rewards overbidding up to the critical price: learners overbid."""
    strategies = [Hedge(learning_rate=30.0) for _ in COSTS]
    model = MarketModel(noisy_single_winner(), "pay_as_bid", strategies, seed=1).run(300)
    assert late_misreport(model) > 0.3
    winners_bid = np.concatenate([o.bids[o.selected] / COSTS[o.selected] for o in model.outcomes[-60:]])
    assert np.mean(winners_bid) > 1.2


def test_learners_under_shapley_underbid_and_lose_welfare():
    """Shapley pays for value whatever the report, so winning is all that matters: learners
    bid low, and sellers whose cost exceeds their net value get chosen."""
    strategies = [Hedge(learning_rate=30.0) for _ in COSTS]
    model = MarketModel(noisy_single_winner(), "shapley", strategies, seed=1).run(300)
    late_bids = np.array([o.bids / COSTS for o in model.outcomes[-60:]])
    assert late_bids.mean() < 0.5
    efficiency = model.datacollector.get_model_vars_dataframe()["efficiency"].iloc[-60:]
    assert efficiency.mean() < 0.97


def test_best_response_overbids_to_the_critical_price_under_pay_as_bid():
    base = tabulate(SingleWinnerGame(VALUES))
    market = SubsetMarket(base)
    env = MarketEnvironment.static(subset_settler(market), optimal_welfare(market, COSTS), COSTS, 1.0, list("abcd"))
    grid = np.linspace(0, 3, 61)
    model = MarketModel(env, "pay_as_bid", [BestResponse(grid) for _ in COSTS], seed=0).run(5)
    # seller 0 (net 0.7) wins; against truthful others its best report keeps it ahead of
    # seller 1 (net 0.65): b < 1.0 - 0.65 = 0.35, i.e. 1.15 x cost on the grid
    assert model.outcomes[1].bids[0] == pytest.approx(0.3 * 1.15)


def test_sellers_with_losses_leave_and_budget_caps_payments():
    base = tabulate(SingleWinnerGame(VALUES))
    market = SubsetMarket(base)
    env = MarketEnvironment.static(subset_settler(market), optimal_welfare(market, COSTS), COSTS, 1.0, list("abcd"))
    strategies = [FixedMarkup(-0.9), Truthful(), Truthful(), Truthful()]
    model = MarketModel(env, "pay_as_bid", strategies, seed=0, exit_after=3).run(8)
    frame = model.datacollector.get_model_vars_dataframe()
    assert frame["sellers_active"].tolist()[:3] == [4, 4, 3] and frame["sellers_active"].iloc[-1] == 3
    assert not model.sellers[0].active and model.outcomes[-1].bids[0] == np.inf
    capped = MarketModel(env, "vcg", [Truthful() for _ in COSTS], seed=0, budget=0.1).run(3)
    assert all(o.total_paid <= 0.1 + 1e-12 for o in capped.outcomes)
    transactions = model.datacollector.get_table_dataframe("transactions")
    assert len(transactions) == sum(int(o.selected.sum()) for o in model.outcomes)


def test_results_do_not_depend_on_agent_order():
    a = MarketModel(noisy_single_winner(), "myerson", [Hedge() for _ in COSTS], seed=5).run(30)
    b = MarketModel(noisy_single_winner(), "myerson", [Hedge() for _ in COSTS], seed=5).run(30)
    assert np.array_equal(np.array([o.bids for o in a.outcomes]), np.array([o.bids for o in b.outcomes]))


LEARNING = {
    "name": "learning",
    "seed": 3,
    "replicates": 3,
    "rounds": 40,
    "sellers": {"count": 5, "costs": {"distribution": "uniform", "low": 0.05, "high": 0.3}},
    "buyer": {"task": "single_winner", "values": [1.0, 0.9, 0.85, 0.8, 0.6]},
    "valuation": [{"method": "exact_shapley"}],
    "market": {"payment_rules": ["shapley", "myerson", "pay_as_bid"], "value_noise": 0.5},
    "bidding": {"strategy": "hedge", "learning_rate": 10.0},
    "audit": {"grid_points": 5},
}


def test_same_seed_identical_with_one_and_two_workers():
    scenario = parse_scenario(LEARNING)
    serial, parallel = run_serial_and_parallel(scenario)
    pd.testing.assert_frame_equal(serial.dynamics_table(), parallel.dynamics_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), parallel.outcomes_table())
    pd.testing.assert_frame_equal(serial.transactions_table(), parallel.transactions_table())


def test_compare_command_writes_a_comparison(tmp_path):
    import yaml

    from dataprice.cli import main

    path = tmp_path / "learning.yaml"
    path.write_text(yaml.safe_dump(LEARNING))
    out = tmp_path / "cmp"
    assert main(["compare", str(path), "--out", str(out), "--quiet", "--seeds", "2"]) == 0
    table = pd.read_csv(out / "comparison.csv").set_index("rule")
    assert list(table.index) == ["shapley", "myerson", "pay_as_bid"]
    assert {"max_misreport_gain_mean", "efficiency_sd", "payment_cv", "rank_correlation"} <= set(table.columns)
    assert table.loc["myerson", "max_misreport_gain_mean"] == pytest.approx(0.0, abs=1e-9)
    assert (out / "bids_over_rounds.png").exists() and (out / "welfare_over_rounds.png").exists()
    assert "Mechanism comparison" in (out / "report.md").read_text()


def test_make_strategy_rejects_unknown_names():
    with pytest.raises(ValueError, match="choose one of"):
        make_strategy("psychic")
