"""In-Run Data Shapley on the classifier buyer: overhead over the plain run, and agreement.

One SGD run of the buyer's softmax regression (5 epochs, batches of 32, learning rate 0.1)
on 8 sellers' shards, two of them with 80% of their labels redrawn. Printed per data set:

* the time of the plain run and of the run with in-run values (first and second order,
  and second order with a validation batch of 32 drawn per step), medians of
  ``--repeats`` runs in this process, one BLAS thread, and their ratio;
* the Taylor remainder (what the values miss of the run's utility change);
* per-seller Spearman correlation with exact Shapley and LOO of the buyer's retraining game
  (logistic regression trained per coalition, validation accuracy: 2^8 trainings);
* per-example ROC AUC of "a low value means a redrawn label", for the in-run values and
  for the gradient-similarity screening score of the same run;
* Spearman between the seller values of runs with different seeds (batch orders).

With ``--dpo tiny`` (or ``smollm2``) the DPO buyer instead: one SGD run of the LoRA
adapters on ``--owners`` owners' preference pairs (owner 3 flipped), first order, timed
against the plain run (all held-out pairs per step, and a held-out batch of 8), with the
flipped-pair AUC and per-owner Spearman against DPO Shapley (n trainings) and retraining
Shapley (2^n - 1 trainings, through ``--cache``: policies trained before are read).

    python benchmarks/inrun_shapley.py [--repeats 5] [--large 200000]
    python benchmarks/inrun_shapley.py --dpo tiny --owners 4 [--cache DIR]
    python benchmarks/inrun_shapley.py --dpo smollm2 --owners 6 --learning-rate 0.05 --repeats 1 --overhead-only
    python benchmarks/inrun_shapley.py --federated
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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
    return _timed(run, repeats)[0]


def _timed(run, repeats: int):
    """Median seconds of ``repeats`` calls of ``run``, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, nargs="*", default=[], metavar="POINTS",
                        help="also a generated set of this many training points (no exact reference)")
    parser.add_argument("--dpo", choices=["tiny", "smollm2"], default=None, help="value the DPO buyer's pairs instead")
    parser.add_argument("--owners", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.005, help="SGD rate of the DPO run")
    parser.add_argument("--cache", type=Path, default=None, help="DPO policy folder kept between runs")
    parser.add_argument("--federated", action="store_true",
                        help="the federated buyer instead: in-run values of its stored run against retraining")
    parser.add_argument("--overhead-only", action="store_true",
                        help="DPO: time the plain run and held-out batches of 8 and 4 only (no references)")
    args = parser.parse_args()
    if args.dpo:
        dpo(args)
        return
    if args.federated:
        with threadpool_limits(1):
            federated(args)
        return
    n = args.sellers
    noisy = [n - 2, n - 1]
    print(f"{n} sellers, sellers {noisy} with 80% of labels redrawn; SGD 5 epochs, batch 32, lr 0.1\n")
    print("| data set | points (train / validation) | plain run | order 1 | order 2 | order 2, validation batch 32 "
          "| overhead (1 / 2 / 2 batched) | remainder / change (1 / 2) | Spearman vs exact Shapley (1 / 2 / 2 batched) "
          "| vs LOO (2) | flipped-label AUC (1 / 2 / 2 batched) | gradient-similarity AUC | seed-to-seed Spearman (2) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
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
    screened = softmax_inrun(shards, config, order=1, similarity=True)[1]
    auc_similarity = roc_auc_score(shards.noisy_points, -screened.similarity)
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
          f"{agreement} | {auc[1]:.3f} / {auc[2]:.3f} / {auc_sub:.3f} | {auc_similarity:.3f} | {between:.3f} |",
          flush=True)

def federated(args) -> None:
    """Per aggregator: the in-run values of the stored run (orders 1 and 2) against exact
    Shapley of the reconstruction game and of retraining (2^n - 1 federated runs)."""
    from dataprice.buyers.federated.inrun import federated_inrun
    from dataprice.buyers.federated.training import (
        FederatedConfig,
        FederatedGame,
        FederatedRetrainingGame,
        train_federated,
    )

    n = 6
    shards = make_shards("breast_cancer", n, seed=1, partition="dirichlet", alpha=0.5, noisy_sellers=[n - 1],
                         noise_fraction=0.8)
    print(f"{n} clients (breast cancer, Dirichlet 0.5, client {n - 1} with 80% of labels redrawn), 20 rounds\n")
    print("| aggregator | client rate | in-run time | remainder / change (1 / 2) | Spearman vs reconstruction Shapley "
          "(1 / 2) | vs retraining Shapley (1 / 2) | noisy client last (2) |")
    print("|---|---|---|---|---|---|---|")
    for aggregator in ("fedavg", "fedavgm", "fedadam", "fedrandom"):
        for rate in (0.1, 0.01):
            config = FederatedConfig(rounds=20, client_lr=rate)
            run = train_federated(shards, aggregator, config, seed=0)
            started = time.perf_counter()
            traces = {order: federated_inrun(shards, run, order=order) for order in (1, 2)}
            seconds = (time.perf_counter() - started) / 2
            reconstruction = ExactShapley().fit(tabulate(FederatedGame(shards, run))).result.values
            retraining = ExactShapley().fit(tabulate(FederatedRetrainingGame(shards, aggregator, config, seed=0)))
            rho = {o: (spearmanr(t.seller_values(), reconstruction).statistic,
                       spearmanr(t.seller_values(), retraining.result.values).statistic) for o, t in traces.items()}
            rem = {o: t.remainder / t.utility_change for o, t in traces.items()}
            print(f"| {aggregator} | {rate} | {seconds * 1e3:.1f} ms | {rem[1]:+.3f} / {rem[2]:+.3f} | "
                  f"{rho[1][0]:.3f} / {rho[2][0]:.3f} | {rho[1][1]:.3f} / {rho[2][1]:.3f} | "
                  f"{'yes' if int(np.argmin(traces[2].seller_values())) == n - 1 else 'no'} |", flush=True)


def dpo(args) -> None:
    from dataprice.buyers import dpo_base_model
    from dataprice.buyers.dpo.game import DPOShapleyGame, retrain_coalitions, score_owners
    from dataprice.buyers.dpo.inrun import dpo_inrun
    from dataprice.buyers.dpo.training import DPOConfig
    from dataprice.data.preferences import medical_preferences
    from dataprice.models.cache import PolicyCache
    from dataprice.valuation.game import TabulatedGame, masks_to_coalitions

    n = args.owners
    sizes = [16 + 8 * (j % 2) for j in range(n)] if args.dpo == "tiny" else [8 + 8 * (j % 2) for j in range(n)]
    sold, held = medical_preferences(sizes, flipped_sellers=[3], n_heldout=32, n_categories=6, seed=0)
    base, tokenizer, base_id = dpo_base_model(args.dpo)
    if args.dpo == "tiny":
        config = DPOConfig(lora_r=8, learning_rate=3e-3, epochs=3, beta=0.5, seed=0)
    else:
        config = DPOConfig(lora_r=8, learning_rate=1e-3, epochs=2, beta=0.1, seed=0)
    lr = args.learning_rate
    print(f"DPO ({args.dpo}, LoRA r=8): {n} owners with {sizes} pairs (owner 3 flipped), {len(held)} held-out "
          f"pairs; SGD {config.epochs} epochs, batch {config.batch_size}, learning rate {lr}")

    def run(**kw):
        return dpo_inrun(base, tokenizer, sold, held, config, learning_rate=lr, **kw)

    plain = _median_seconds(lambda: run(value=False), args.repeats)
    if args.overhead_only:  # the step cost with a held-out batch of 8 and 4 per step
        for batch in (8, 4):
            seconds, (_, part) = _timed(lambda b=batch: run(validation_batch=b), args.repeats)
            print(f"plain run {plain:.2f} s; held-out batch of {batch}: {seconds:.2f} s ({seconds / plain:.2f}x), "
                  f"flipped-pair AUC {roc_auc_score(np.asarray(sold.owners) == 3, -part.values):.3f}, remainder "
                  f"{part.remainder / part.utility_change:+.1%} of the change", flush=True)
        return
    full, (_, trace) = _timed(lambda: run(), args.repeats)
    batched, (_, sub) = _timed(lambda: run(validation_batch=8), args.repeats)
    flipped = np.asarray(sold.owners) == 3
    print(f"plain run {plain:.2f} s; with in-run values {full:.2f} s ({full / plain:.2f}x, all {len(held)} held-out "
          f"pairs per step), {batched:.2f} s ({batched / plain:.2f}x, held-out batch of 8)")
    print(f"utility change {trace.utility_change:+.4f}, first-order remainder {trace.remainder:+.4f} "
          f"({trace.remainder / trace.utility_change:+.1%} of the change)")
    print(f"flipped-pair AUC {roc_auc_score(flipped, -trace.values):.3f} (held-out batch 8: "
          f"{roc_auc_score(flipped, -sub.values):.3f})")
    cache = PolicyCache(base_id, args.cache or Path(tempfile.mkdtemp(prefix="inrun-dpo-")))
    policies = [cache.policy(base, tokenizer, sold.of_owner(j), config) for j in range(n)]
    game = DPOShapleyGame(score_owners(base, tokenizer, policies, held, config).margins(), sold.sizes(),
                          value_per_quality=100)
    coalitions = masks_to_coalitions(np.arange(2**n), n)
    dpo_shapley = ExactShapley().fit(TabulatedGame(game(coalitions))).result.values
    retrained = retrain_coalitions(base, tokenizer, sold, held, config, coalitions, game, cache).retrained
    retraining_shapley = ExactShapley().fit(TabulatedGame(retrained)).result.values
    print("owner  in-run  in-run (batch 8)  DPO Shapley  retraining Shapley")
    for j in range(n):
        print(f"{j:5d}  {trace.seller_values()[j]:+.4f}  {sub.seller_values()[j]:+.4f}  {dpo_shapley[j]:11.2f}  "
              f"{retraining_shapley[j]:18.2f}")
    for label, ref in (("DPO Shapley", dpo_shapley), ("retraining Shapley", retraining_shapley)):
        print(f"Spearman of in-run owner values vs {label}: {spearmanr(trace.seller_values(), ref).statistic:.3f} "
              f"(batch 8: {spearmanr(sub.seller_values(), ref).statistic:.3f})")


if __name__ == "__main__":
    main()
