"""Federated buyer: reconstruction identities, FedRandom, efficiency, retraining ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from dataprice.buyers.federated.training import (
    AGGREGATORS,
    FederatedConfig,
    FederatedGame,
    FederatedRetrainingGame,
    train_federated,
)
from dataprice.data.shards import make_shards
from dataprice.valuation.game import coalition, tabulate
from dataprice.valuation.methods import ExactShapley

CONFIG = FederatedConfig(rounds=8)


@pytest.fixture(scope="module")
def shards():
    return make_shards("breast_cancer", 5, seed=1, partition="dirichlet", alpha=0.5, noisy_sellers=[4], noise_fraction=0.8)


@pytest.mark.parametrize("reconstruction", ["one_round", "multi_round"])
def test_reconstruction_with_one_client_is_that_clients_model_path(shards, reconstruction):
    solo = train_federated(shards, "fedavg", CONFIG, clients=[2], seed=3)
    game = FederatedGame(shards, solo, reconstruction=reconstruction)
    models = game.reconstruct(coalition(5, [2])[0])
    # with one client and FedAvg the global model *is* the client's model after each round
    np.testing.assert_allclose(np.array(models), np.array(solo.thetas[1:]), atol=1e-12)
    # and in a full federation, multi-round reconstruction of {j} is j's local model each round
    full = train_federated(shards, "fedavg", CONFIG, seed=3)
    mr = FederatedGame(shards, full, reconstruction="multi_round").reconstruct(coalition(5, [2])[0])
    np.testing.assert_allclose(np.array(mr), full.local_models[:, 2], atol=1e-12)


@pytest.mark.parametrize("rule", AGGREGATORS)
def test_fedrandom_with_a_pool_of_one_is_that_strategy(shards, rule):
    fixed = train_federated(shards, rule, CONFIG, seed=5)
    random = train_federated(shards, "fedrandom", CONFIG, pool=[rule], seed=5)
    assert random.rules == [rule] * CONFIG.rounds
    np.testing.assert_array_equal(np.array(random.thetas), np.array(fixed.thetas))


def test_fedrandom_draws_rules_from_its_pool_reproducibly(shards):
    a = train_federated(shards, "fedrandom", CONFIG, seed=7)
    b = train_federated(shards, "fedrandom", CONFIG, seed=7)
    assert a.rules == b.rules and len(set(a.rules)) > 1 and set(a.rules) <= set(AGGREGATORS)
    np.testing.assert_array_equal(np.array(a.thetas), np.array(b.thetas))


@pytest.mark.parametrize("reconstruction", ["one_round", "multi_round"])
@pytest.mark.parametrize("aggregator", ["fedavg", "fedadam", "fedrandom"])
def test_reconstructed_shapley_is_efficient(shards, reconstruction, aggregator):
    run = train_federated(shards, aggregator, CONFIG, seed=0)
    game = FederatedGame(shards, run, reconstruction=reconstruction, value_per_quality=100)
    table = tabulate(game)
    phi = ExactShapley().fit(table).result.values
    assert phi.sum() == pytest.approx(table.values[-1] - table.values[0], abs=1e-9)
    assert table.values[0] == 0.0


def test_reconstruction_tracks_retraining_on_four_clients():
    shards = make_shards("breast_cancer", 4, seed=2, partition="dirichlet", alpha=1.0, noisy_sellers=[3], noise_fraction=0.9)
    run = train_federated(shards, "fedavg", CONFIG, seed=1)
    reconstructed = ExactShapley().fit(FederatedGame(shards, run, reconstruction="one_round", value_per_quality=100)).result.values
    retraining_game = FederatedRetrainingGame(shards, "fedavg", CONFIG, seed=1, value_per_quality=100)
    retrained = ExactShapley().fit(retraining_game).result.values
    assert retraining_game.n_trainings == 15
    assert int(np.argmin(reconstructed)) == int(np.argmin(retrained)) == 3
    assert spearmanr(reconstructed, retrained).statistic >= 0.8


def test_federated_scenario_report_compares_aggregators(tmp_path):
    import pandas as pd
    import yaml

    from dataprice.cli import main

    scenario = {
        "name": "fed", "seed": 2, "replicates": 2,
        "sellers": {"count": 4, "costs": [1, 2, 3, 4], "partition": {"kind": "dirichlet", "alpha": 1.0}},
        "buyer": {"task": "federated", "rounds": 5, "compare_aggregators": True, "ground_truth": True,
                  "pool": ["fedavg", "fedadam"]},
        "valuation": [{"method": "exact_shapley"}],
        "audit": {"grid_points": 5},
    }
    path = tmp_path / "fed.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "r" / "aggregators.csv")
    assert table["aggregator"].tolist() == ["fedavg", "fedadam", "fedrandom"]
    assert {"contribution_cv", "rank_correlation", "distance_to_retraining", "payment_cv"} <= set(table.columns)
    assert "## Aggregator comparison" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("aggregator", [*AGGREGATORS, "fedrandom"])
def test_reconstruction_replays_the_server_rule_so_the_grand_coalition_is_the_trained_model(shards, aggregator):
    """With the round's server rule applied to the coalition's aggregate (momentum and Adam
    state included), the grand coalition reproduces every trained global model, one-round
    and multi-round, and a federation of one client reproduces that client's own path."""
    config = FederatedConfig(rounds=8, server_lr=0.7)
    run = train_federated(shards, aggregator, config, seed=4)
    everyone = np.ones(5, dtype=bool)
    trained = np.array(run.thetas[1:])
    scale = np.abs(trained).max()
    for reconstruction in ("one_round", "multi_round"):
        models = np.array(FederatedGame(shards, run, reconstruction=reconstruction).reconstruct(everyone))
        assert np.abs(models - trained).max() <= 1e-6 * scale, (aggregator, reconstruction)
    solo = train_federated(shards, aggregator, config, clients=[1], seed=4)
    path = np.array(FederatedGame(shards, solo, reconstruction="one_round").reconstruct(coalition(5, [1])[0]))
    assert np.abs(path - np.array(solo.thetas[1:])).max() <= 1e-6 * np.abs(np.array(solo.thetas[1:])).max()
    if aggregator in ("fedavgm", "fedadam"):  # the raw sum of aggregates is not the trained model
        raw = run.thetas[0] + np.cumsum(np.einsum("j,tjp->tp", run.sizes / run.sizes.sum(), run.updates), axis=0)
        assert np.abs(raw[-1] - trained[-1]).max() > 1e-2 * scale


# --- in-run values from the stored run ------------------------------------------------------------


@pytest.mark.parametrize("aggregator", [*AGGREGATORS, "fedrandom"])
def test_inrun_splits_each_round_by_the_shapley_values_of_its_quadratic_local_game(shards, aggregator):
    """The clients' parts add up to the server's actual step under every rule (momentum and
    Adam moments carried per client); per round, the closed form equals brute-force exact
    Shapley of the second-order local game ``v(S) = grad U . u_S + u_S . H u_S / 2``; and the
    values account for the run's utility change up to a remainder that shrinks with the
    steps (under 3% of the change at client rate 0.001)."""
    from dataprice.buyers.federated.inrun import client_parts, federated_inrun
    from dataprice.models.softmax import SoftmaxValidation, with_intercept
    from dataprice.valuation.game import TabulatedGame, masks_to_coalitions

    run = train_federated(shards, aggregator, FederatedConfig(rounds=4), seed=2)
    model = SoftmaxValidation(with_intercept(shards.X_val), shards.y_val, shards.n_classes)
    shape = (model.X1_val.shape[1], shards.n_classes)
    coalitions = masks_to_coalitions(np.arange(32), 5)
    total = np.zeros(5)
    for t, parts in enumerate(client_parts(run)):
        np.testing.assert_allclose(parts.sum(axis=0), run.thetas[t + 1] - run.thetas[t], rtol=1e-9, atol=1e-12)
        theta = run.thetas[t].reshape(shape)
        grad = model.utility_gradient(theta).reshape(-1)
        u = coalitions @ parts
        hu = np.array([model.utility_hvp(theta, row.reshape(shape)).reshape(-1) for row in u])
        local = TabulatedGame(u @ grad + 0.5 * np.einsum("cp,cp->c", u, hu))
        total += ExactShapley().fit(local).result.values
    trace = federated_inrun(shards, run, order=2)
    np.testing.assert_allclose(trace.values, total, rtol=1e-8, atol=1e-12)
    assert trace.steps == 4
    small = train_federated(shards, aggregator, FederatedConfig(rounds=10, client_lr=0.001), seed=2)
    second, first = federated_inrun(shards, small, order=2), federated_inrun(shards, small, order=1)
    assert abs(second.remainder) < min(0.03 * abs(second.utility_change), abs(first.remainder))


def test_inrun_values_of_a_users_table_through_the_cli_pay_every_rule(tmp_path, capsys):
    """The federated buyer on a user's CSV: ``inrun_shapley`` reads the stored run (no
    retraining), the client whose labels are all flipped gets the lowest value, the rules
    pay on the in-run values, and a training setting given to the method is refused in one
    line (the run is the buyer's)."""
    import pandas as pd

    from dataprice.cli import main

    from .test_classifier_tables import five_owners_last_flipped, run_cli, values, write_scenario

    five_owners_last_flipped(tmp_path / "five.csv")
    buyer = {"task": "federated", "table": {"file": "five.csv"}, "aggregator": "fedavgm", "rounds": 10}
    valuation = [{"method": "inrun_shapley", "order": 2}, {"method": "gradient_similarity"}, {"method": "exact_shapley"}]
    market = {"payment_rules": ["loo", "myerson", "vcg"], "value_basis": "inrun_shapley"}
    scenario = write_scenario(tmp_path, buyer, count=5, valuation=valuation, market=market)
    assert run_cli(scenario, tmp_path / "a") == 0
    a = values(tmp_path / "a")
    phi = a["value[inrun_shapley]"].to_numpy()
    assert int(np.argmin(phi)) == 4 and int(np.argmin(a["value[gradient_similarity]"].to_numpy())) == 4
    chosen = phi >= a["bid"].to_numpy()
    for rule in market["payment_rules"]:
        np.testing.assert_allclose(a[f"payment[{rule}]"], np.where(chosen, phi, 0.0), rtol=1e-9, atol=1e-12)
    bad = write_scenario(tmp_path, buyer, count=5, name="bad", market=market,
                         valuation=[{"method": "inrun_shapley", "learning_rate": 0.5}])
    assert main(["run", str(bad), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert not (tmp_path / "b").exists()
    err = capsys.readouterr().err.strip()
    assert "valuation[0].method: 'inrun_shapley' needs an in-run training of its own" in err and "\n" not in err
    assert isinstance(pd.read_csv(tmp_path / "a" / "examples.csv"), pd.DataFrame)
