"""Unlearning Shapley against retraining-based Shapley on the classifier buyer.

Both compute exact Shapley over all 2^n coalitions of the same game family (L2 softmax
regression, validation accuracy x 100): the retraining game trains a model per coalition,
the unlearning game trains once on all data and removes the other sellers' data with a
Newton step (or gradient ascent). Printed per dataset: rank correlation and relative L1
error of the sellers' values, rank correlation of the coalition values, model trainings and
wall time of each (measured in the same process), and the ratio.

    python benchmarks/unlearning_vs_retraining.py [--sellers 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from dataprice.buyers.classifier.unlearning import RetrainingGame, UnlearningGame
from dataprice.data.shards import make_shards
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    n = args.sellers
    noisy = [n - 2, n - 1]
    print(f"{n} sellers, sellers {noisy} with 80% noisy labels; exact Shapley over {2**n} coalitions")
    print(f"{'dataset':14s} {'removal':16s} {'rho(values)':>11s} {'rel.err':>8s} {'rho(coalitions)':>15s} "
          f"{'trainings':>9s} {'removals':>8s} {'time':>7s} {'retrain time':>12s} {'speed-up':>8s}")
    for dataset in ("breast_cancer", "wine", "digits"):
        shards = make_shards(dataset, n, seed=args.seed, noisy_sellers=noisy, noise_fraction=0.8)
        started = time.perf_counter()
        retrain = RetrainingGame(shards, value_per_quality=100)
        retrain_table = tabulate(retrain)
        truth = ExactShapley().fit(retrain_table).result.values
        retrain_seconds = time.perf_counter() - started
        for method in ("newton", "gradient_ascent"):
            started = time.perf_counter()
            game = UnlearningGame(shards, method=method, value_per_quality=100)
            table = tabulate(game)
            values = ExactShapley().fit(table).result.values
            seconds = time.perf_counter() - started
            rho = spearmanr(values, truth).statistic
            rel = np.abs(values - truth).sum() / np.abs(truth).sum()
            rho_c = spearmanr(table.values, retrain_table.values).statistic
            print(f"{dataset:14s} {method:16s} {rho:11.3f} {rel:8.3f} {rho_c:15.3f} {1:9d} "
                  f"{game.n_unlearning_runs:8d} {seconds:6.2f}s {retrain_seconds:11.2f}s {retrain_seconds / seconds:7.1f}x")
        print(f"{'':14s} {'(retraining)':16s} {'':11s} {'':8s} {'':15s} {retrain.n_trainings:9d}")


if __name__ == "__main__":
    main()
