"""Contribution stability: FedRandom against each fixed aggregator.

For each aggregator (FedAvg, FedAvgM, FedAdam, FedProx, FedRandom) the data split is fixed
and only the training seed varies (client SGD order, FedRandom's draws). Per seed:
multi-round reconstruction, exact Shapley over the clients, Myerson payments at fixed costs.
Printed per aggregator:

* ``cv``: mean over clients of std/|mean| of the Shapley contribution across seeds;
* ``rank_corr``: mean pairwise Spearman correlation of contributions between seeds;
* ``dist_truth``: L1 distance between contribution shares (phi / sum |phi|) and the shares of
  retraining-based Shapley for the same aggregator (mean over the same seeds), and
  ``rho_truth``, their Spearman correlation;
* ``dist_size``: L1 distance of the shares to the data-size baseline ``n_j / sum n``;
* ``pay_cv``: mean std/|mean| of Myerson payments across seeds (sellers ever paid).

    python benchmarks/federated_stability.py [--clients 6] [--seeds 6] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dataprice.buyers.federated.stability import aggregator_stability
from dataprice.buyers.federated.training import AGGREGATORS, FederatedConfig
from dataprice.data.shards import make_shards


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
    print(f"{args.dataset}: {n} clients (sizes {sizes.tolist()}, client {n - 1} noisy), Dirichlet {args.alpha}, "
          f"{args.rounds} rounds, {args.seeds} training seeds")
    started = time.perf_counter()
    table = aggregator_stability(
        shards, FederatedConfig(rounds=args.rounds), aggregators=[*AGGREGATORS, "fedrandom"],
        seeds=range(args.seeds), costs=costs, pool=AGGREGATORS, ground_truth=True,
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
