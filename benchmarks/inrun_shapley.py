"""In-Run Data Shapley on the classifier buyer: overhead over the plain run, and agreement.

One SGD run of the buyer's softmax regression (5 epochs, batches of 32, learning rate 0.1)
on 8 sellers' shards, two of them with 80% of their labels redrawn. Printed per data set:

* the time of the plain run and of the run with in-run values (first and second order,
  and second order with a validation batch of 32 drawn per step), medians of
  ``--repeats`` runs in this process, one BLAS thread, and their ratio;
* the Taylor remainder (what the values miss of the run's utility change);
* per-seller Spearman correlation with exact Shapley and LOO of the buyer's retraining game
  (logistic regression trained per coalition, validation accuracy: 2^8 trainings);
* per-example ROC AUC of "a low value means a redrawn label";
* Spearman between the seller values of runs with different seeds (batch orders).

    python benchmarks/inrun_shapley.py [--repeats 5] [--large 200000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.buyers.classifier.inrun import sgd_config, softmax_inrun
from dataprice.data.shards import generated_shards, make_shards
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley, LeaveOneOut


def _median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, nargs="*", default=[], metavar="POINTS",
                        help="also a generated set of this many training points (no exact reference)")
    args = parser.parse_args()
    n = args.sellers
    noisy = [n - 2, n - 1]
    print(f"{n} sellers, sellers {noisy} with 80% of labels redrawn; SGD 5 epochs, batch 32, lr 0.1\n")
    print("| data set | points (train / validation) | plain run | order 1 | order 2 | order 2, validation batch 32 "
          "| overhead (1 / 2 / 2 batched) | remainder / change (1 / 2) | Spearman vs exact Shapley (1 / 2 / 2 batched) "
          "| vs LOO (2) | flipped-label AUC (1 / 2 / 2 batched) | seed-to-seed Spearman (2) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for dataset in ("breast_cancer", "wine", "digits"):
            shards = make_shards(dataset, n, seed=args.seed, noisy_sellers=noisy, noise_fraction=0.8)
            row(dataset, shards, args.repeats, exact=True)
        for points in args.large:
            shards = generated_shards(points, n, noisy_sellers=noisy, seed=args.seed)
            row(f"generated {points:,}", shards, args.repeats, exact=False)


def row(name: str, shards, repeats: int, *, exact: bool) -> None:
    game = ClassifierGame(shards, value_per_quality=100)
    config = sgd_config(shards, game.regularization, seed=0)
    plain = _median_seconds(lambda: softmax_inrun(shards, config, value=False), repeats)
    first = _median_seconds(lambda: softmax_inrun(shards, config, order=1), repeats)
    second = _median_seconds(lambda: softmax_inrun(shards, config, order=2), repeats)
    batched = _median_seconds(lambda: softmax_inrun(shards, config, order=2, validation_batch=32), repeats)
    traces = {order: softmax_inrun(shards, config, order=order)[1] for order in (1, 2)}
    sub = softmax_inrun(shards, config, order=2, validation_batch=32)[1]
    auc = {o: roc_auc_score(shards.noisy_points, -t.values) for o, t in traces.items()}
    auc_sub = roc_auc_score(shards.noisy_points, -sub.values)
    rem = {o: t.remainder / t.utility_change for o, t in traces.items()}
    agreement = "n/a (2^8 trainings on this data not run) | n/a"
    if exact:
        table = tabulate(game)
        truth = ExactShapley().fit(table).result.values
        loo = LeaveOneOut().fit(table).result.values
        rho = {o: spearmanr(t.seller_values(), truth).statistic for o, t in traces.items()}
        rho_sub = spearmanr(sub.seller_values(), truth).statistic
        rho_loo = spearmanr(traces[2].seller_values(), loo).statistic
        agreement = f"{rho[1]:.3f} / {rho[2]:.3f} / {rho_sub:.3f} | {rho_loo:.3f}"
    seeds = [softmax_inrun(shards, sgd_config(shards, game.regularization, seed=s), order=2)[1].seller_values()
             for s in range(1, 4)]
    between = np.mean([spearmanr(seeds[a], seeds[b]).statistic for a in range(3) for b in range(a + 1, 3)])
    print(f"| {name} | {shards.X_train.shape[0]:,} / {shards.X_val.shape[0]:,} | {plain * 1e3:.1f} ms | "
          f"{first * 1e3:.1f} ms | {second * 1e3:.1f} ms | {batched * 1e3:.1f} ms | "
          f"{first / plain:.2f}x / {second / plain:.2f}x / {batched / plain:.2f}x | {rem[1]:+.3f} / {rem[2]:+.3f} | "
          f"{agreement} | {auc[1]:.3f} / {auc[2]:.3f} / {auc_sub:.3f} | {between:.3f} |", flush=True)

if __name__ == "__main__":
    main()
