"""DPO Shapley against retraining: cost, and how close the arithmetic values are.

DPO Shapley trains one policy per owner (n trainings) and scores the reference and each
policy on the held-out pairs (n + 1 passes); every coalition's value is then arithmetic.
Exact Shapley by retraining needs a policy per non-empty coalition (2^n - 1 trainings).
This script runs both on the built-in medical preference data, in one process, with a
fresh checkpoint folder (nothing comes from the cache), and prints:

* the number of trainings of each approach and the measured time per training;
* the rank correlation and mean absolute error of the arithmetic coalition values against
  values measured with retrained policies;
* the same for the owners' Shapley values (DPO Shapley vs retraining-based Shapley);
* with ``--unlearning``, unlearning Shapley on the same owners (one policy trained on all
  pairs, every coalition measured by gradient-ascent unlearning of the others' pairs), its
  time and its agreement with both.

``--cache DIR`` keeps the trained policies, so a second run reads them instead of
training (its times are then not training times; the first run's are the ones to quote).

    python benchmarks/dpo_shapley.py --model tiny               # seconds
    python benchmarks/dpo_shapley.py --model smollm2 --owners 4 # SmolLM2 + LoRA, ~10-20 min on 2 cores
    python benchmarks/dpo_shapley.py --model smollm2 --owners 6 --pairs 8 --unlearning --cache /tmp/dpo6
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from dataprice.buyers import dpo_base_model
from dataprice.buyers.dpo.game import (
    DPOContext,
    DPOShapleyGame,
    DPOUnlearningGame,
    retrain_coalitions,
    score_owners,
)
from dataprice.buyers.dpo.training import DPOConfig
from dataprice.data.preferences import medical_preferences
from dataprice.models.cache import PolicyCache
from dataprice.valuation.game import TabulatedGame, masks_to_coalitions
from dataprice.valuation.methods import ExactShapley


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--owners", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=16, help="pairs per owner")
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--flipped", type=int, nargs="*", default=[3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unlearning", action="store_true", help="also run unlearning Shapley on the same owners")
    parser.add_argument("--cache", type=Path, default=None, help="policy folder kept between runs (default: a fresh one)")
    args = parser.parse_args()

    n = args.owners
    sizes = [args.pairs + 8 * (j % 2) for j in range(n)]  # unequal owners: 16, 24, 16, 24, ...
    sold, held = medical_preferences(sizes, flipped_sellers=[f for f in args.flipped if f < n],
                                     n_heldout=args.heldout, n_categories=6, seed=args.seed)
    base, tokenizer, base_id = dpo_base_model(args.model)
    if args.model == "tiny":
        config = DPOConfig(lora_r=0, learning_rate=3e-3, epochs=3, beta=0.5, seed=args.seed)
    else:
        config = DPOConfig(lora_r=8, learning_rate=1e-3, epochs=2, beta=0.1, seed=args.seed)
    cache = PolicyCache(base_id, args.cache or Path(tempfile.mkdtemp(prefix="dpo-bench-")))
    print(f"model {args.model}: {n} owners with {sizes} pairs (flipped: {args.flipped}), {len(held)} held-out pairs")

    started = time.perf_counter()
    policies = [cache.policy(base, tokenizer, sold.of_owner(j), config) for j in range(n)]
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = score_owners(base, tokenizer, policies, held, config)
    score_seconds = time.perf_counter() - started
    game = DPOShapleyGame(scores.margins(), sold.sizes(), value_per_quality=100)
    started = time.perf_counter()
    coalitions = masks_to_coalitions(np.arange(2**n), n)
    arithmetic_shapley = ExactShapley().fit(TabulatedGame(game(coalitions))).result.values
    arithmetic_seconds = time.perf_counter() - started
    dpo_total = train_seconds + score_seconds + arithmetic_seconds
    print(f"DPO Shapley: {n} trainings ({train_seconds / n:.1f} s each) + {n + 1} scoring passes "
          f"({score_seconds:.1f} s) + arithmetic over {2**n} coalitions ({arithmetic_seconds * 1e3:.1f} ms) "
          f"= {dpo_total:.1f} s")

    unlearning_shapley = None
    if args.unlearning:  # before retraining, so its one training of the full policy is timed here
        started = time.perf_counter()
        unlearning = DPOUnlearningGame(DPOContext(base, tokenizer, sold, held, config, cache), value_per_quality=100)
        unlearning_table = unlearning(coalitions)
        unlearning_shapley = ExactShapley().fit(TabulatedGame(unlearning_table)).result.values
        unlearning_seconds = time.perf_counter() - started
        print(f"unlearning Shapley: 1 training + {unlearning.n_unlearning_runs} unlearning runs "
              f"({unlearning.n_unlearning_steps} ascent steps) + {2**n - 1} scoring passes = {unlearning_seconds:.1f} s")

    comparison = retrain_coalitions(base, tokenizer, sold, held, config, coalitions, game, cache, progress=True)
    retrain_total = comparison.seconds_per_training * (2**n - 1)
    print(f"retraining Shapley: {2**n - 1} trainings ({comparison.seconds_per_training:.1f} s each, "
          f"incl. scoring) = {retrain_total:.1f} s (estimated for all, {comparison.trainings} run here "
          f"+ {n} reused)")
    print(f"cost ratio (trainings): {(2**n - 1) / n:.2f}x; measured time ratio: {retrain_total / dpo_total:.1f}x")

    nonempty = coalitions.any(axis=1)
    rho = spearmanr(comparison.arithmetic[nonempty], comparison.retrained[nonempty]).statistic
    mae = np.mean(np.abs(comparison.arithmetic[nonempty] - comparison.retrained[nonempty]))
    print(f"coalition values, arithmetic vs retrained: Spearman {rho:.3f}, mean abs error {mae:.2f} "
          f"(value scale: 100 per unit of held-out accuracy)")
    retrained_shapley = ExactShapley().fit(TabulatedGame(comparison.retrained)).result.values
    print("owner  DPO-Shapley  retraining-Shapley" + ("  unlearning-Shapley" if unlearning_shapley is not None else ""))
    for j in range(n):
        line = f"{j:5d}  {arithmetic_shapley[j]:11.2f}  {retrained_shapley[j]:18.2f}"
        if unlearning_shapley is not None:
            line += f"  {unlearning_shapley[j]:18.2f}"
        print(line)
    _agreement("DPO Shapley vs retraining", arithmetic_shapley, retrained_shapley)
    if unlearning_shapley is not None:
        _agreement("unlearning Shapley vs retraining", unlearning_shapley, retrained_shapley)
        _agreement("unlearning Shapley vs DPO Shapley", unlearning_shapley, arithmetic_shapley)
        rho_c = spearmanr(unlearning_table[nonempty], comparison.retrained[nonempty]).statistic
        print(f"coalition values, unlearning vs retrained: Spearman {rho_c:.3f}")
        print(f"time ratios: retraining / unlearning {retrain_total / unlearning_seconds:.1f}x, "
              f"unlearning / DPO Shapley {unlearning_seconds / dpo_total:.1f}x")


def _agreement(label: str, values: np.ndarray, reference: np.ndarray) -> None:
    relative = np.linalg.norm(values - reference) / np.linalg.norm(reference)
    print(f"{label}: Spearman {spearmanr(values, reference).statistic:.3f}, "
          f"max abs error {np.max(np.abs(values - reference)):.2f}, relative L2 error {relative:.3f}")


if __name__ == "__main__":
    main()
