"""Unlearning Shapley against retraining-based Shapley on the classifier buyer.

Both compute exact Shapley over all 2^n coalitions of the same game family (L2 softmax
regression, validation accuracy x 100): the retraining game trains a model per coalition,
the unlearning game trains once on all data and removes the other sellers' data with a
Newton step (or gradient ascent). Printed per data set: rank correlation and relative L1
error of the sellers' values, rank correlation of the coalition values, model trainings and
wall time of each (measured in the same process), and the ratio.

The bundled scikit-learn sets are small (178 to 1,797 points), so a retraining costs
milliseconds. ``--large POINTS`` adds a generated set (``make_classification``: 40
features, 3 classes, 5,000 validation points) where retraining is the expensive part.

    python benchmarks/unlearning_vs_retraining.py [--sellers 8] [--large 200000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from dataprice.buyers.classifier.unlearning import RetrainingGame, UnlearningGame
from dataprice.data.shards import SellerShards, generated_shards, make_shards
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley


def compare(name: str, shards: SellerShards) -> None:
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
        print(f"{name:18s} {method:16s} {rho:11.3f} {rel:8.3f} {rho_c:15.3f} {1:9d} "
              f"{game.n_unlearning_runs:8d} {seconds:7.2f}s {retrain_seconds:11.2f}s {retrain_seconds / seconds:8.1f}x")
    print(f"{'':18s} {'(retraining)':16s} {'':11s} {'':8s} {'':15s} {retrain.n_trainings:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--large", type=int, nargs="*", default=[], metavar="POINTS",
                        help="also a generated set of this many training points (one row each)")
    parser.add_argument("--skip-bundled", action="store_true", help="only the generated sets")
    args = parser.parse_args()
    n = args.sellers
    noisy = [n - 2, n - 1]
    print(f"{n} sellers, sellers {noisy} with 80% noisy labels; exact Shapley over {2**n} coalitions")
    print(f"{'dataset':18s} {'removal':16s} {'rho(values)':>11s} {'rel.err':>8s} {'rho(coalitions)':>15s} "
          f"{'trainings':>9s} {'removals':>8s} {'time':>8s} {'retrain time':>12s} {'speed-up':>9s}")
    if not args.skip_bundled:
        for dataset in ("breast_cancer", "wine", "digits"):
            compare(dataset, make_shards(dataset, n, seed=args.seed, noisy_sellers=noisy, noise_fraction=0.8))
    for points in args.large:
        compare(f"generated {points:,}", generated_shards(points, n, noisy_sellers=noisy, seed=args.seed))


if __name__ == "__main__":
    main()
