"""Contribution stability: FedRandom against each fixed aggregator.

For each aggregator (FedAvg, FedAvgM, FedAdam, FedProx, FedRandom) the data split is fixed
and only the training seed varies (client SGD order, FedRandom's draws). Per seed:
multi-round reconstruction, exact Shapley over the clients, Myerson payments at fixed costs.
Printed per aggregator:

* ``cv``: mean over clients of std/|mean| of the Shapley contribution across seeds;
* ``rank_corr``: mean pairwise Spearman correlation of contributions between seeds;
* ``dist_truth``: L1 distance between contribution shares (phi / sum phi) and the shares of
  retraining-based Shapley for the same aggregator (mean over the same seeds), and
  ``rho_truth``, their Spearman correlation;
* ``dist_size``: L1 distance of the shares to the data-size baseline ``n_j / sum n``;
* ``pay_cv``: mean std/|mean| of Myerson payments across seeds (sellers ever paid).

    python benchmarks/federated_stability.py [--clients 6] [--seeds 6] [--rounds 20]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy.stats import spearmanr

from dataprice.market import SubsetMarket, settle
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley
from dataprice.valuation.utilities.classifier import make_shards
from dataprice.valuation.utilities.federated import (
    FederatedConfig, FederatedGame, FederatedRetrainingGame, train_federated,
)


def shares(phi: np.ndarray) -> np.ndarray:
    return phi / phi.sum() if abs(phi.sum()) > 1e-12 else phi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--dataset", default="breast_cancer")
    args = parser.parse_args()
    n = args.clients
    shards = make_shards(args.dataset, n, seed=13, partition="dirichlet", alpha=args.alpha,
                         noisy_sellers=[n - 1], noise_fraction=0.8)
    sizes = np.bincount(shards.owners, minlength=n)
    costs = np.random.default_rng(0).uniform(1.0, 10.0, n)
    config = FederatedConfig(rounds=args.rounds)
    print(f"{args.dataset}: {n} clients (sizes {sizes.tolist()}, client {n - 1} noisy), Dirichlet {args.alpha}, "
          f"{args.rounds} rounds, {args.seeds} training seeds")
    print(f"{'aggregator':10s} {'cv':>6s} {'rank_corr':>9s} {'dist_truth':>10s} {'rho_truth':>9s} "
          f"{'dist_size':>9s} {'pay_cv':>7s} {'acc':>6s} {'seconds':>7s}")
    for aggregator in ("fedavg", "fedavgm", "fedadam", "fedprox", "fedrandom"):
        started = time.perf_counter()
        phis, truths, payments, accs = [], [], [], []
        for seed in range(args.seeds):
            run = train_federated(shards, aggregator, config, seed=seed)
            game = FederatedGame(shards, run, reconstruction="multi_round", value_per_quality=100)
            table = tabulate(game)
            phis.append(ExactShapley().fit(table).result.values)
            payments.append(settle(SubsetMarket(table), costs, "myerson").payments)
            accs.append(game._acc_global[-1])
            truths.append(ExactShapley().fit(FederatedRetrainingGame(
                shards, aggregator, config, seed=seed, value_per_quality=100)).result.values)
        phis, payments = np.array(phis), np.array(payments)
        truth = np.mean(truths, axis=0)
        cv = np.mean(phis.std(axis=0, ddof=1) / np.abs(phis.mean(axis=0)))
        rank = np.mean([spearmanr(a, b).statistic for a, b in itertools.combinations(phis, 2)])
        mean_shares = shares(phis.mean(axis=0))
        dist_truth = np.abs(mean_shares - shares(truth)).sum()
        rho_truth = spearmanr(phis.mean(axis=0), truth).statistic
        dist_size = np.abs(mean_shares - sizes / sizes.sum()).sum()
        paid = np.abs(payments.mean(axis=0)) > 1e-9
        pay_cv = np.mean(payments[:, paid].std(axis=0, ddof=1) / np.abs(payments[:, paid].mean(axis=0))) if paid.any() else float("nan")
        print(f"{aggregator:10s} {cv:6.3f} {rank:9.3f} {dist_truth:10.3f} {rho_truth:9.3f} {dist_size:9.3f} "
              f"{pay_cv:7.3f} {np.mean(accs):6.3f} {time.perf_counter() - started:7.1f}")


if __name__ == "__main__":
    main()
