"""Compare payment rules across seeds: truthfulness, efficiency, cost, surplus, stability.

Each replicate (seed) runs the repeated market under every rule; this module reduces a
:class:`~dataprice.runner.RunResult` to one row per rule and seed, then to the mean and
spread over seeds. Stability is measured across seeds: the coefficient of variation of
each seller's mean payment, and the Spearman rank correlation of payments between seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dataprice.market.metrics import TOLERANCE, efficiency, mean_rank_correlation
from dataprice.results import RunResult

#: Metrics per rule and seed, with what they mean (for the report).
METRICS = {
    "max_misreport_gain": "largest gain any seller gets from misreporting at the final reports",
    "misreport": "mean |report / cost - 1| over the last fifth of the rounds",
    "misreport_winners": "the same, over sellers selected at least once in those rounds",
    "efficiency": "welfare at true costs over the best welfare, mean over rounds",
    "late_efficiency": "efficiency over the last fifth of the rounds",
    "buyer_cost": "total payments per round",
    "seller_surplus": "sum of sellers' utilities per round",
    "ir_violations": "sellers paid less than their cost, per round",
}


def per_seed_metrics(run: RunResult) -> pd.DataFrame:
    """One row per rule and replicate."""
    rows = []
    late_from = int(np.floor(0.8 * run.scenario.rounds))
    costs = run.costs
    positive = costs > 0
    for rep in run.replicates:
        for rule in run.rules:
            outcomes = rep.outcomes[rule]
            eff = [efficiency(o, b) for o, b in zip(outcomes, rep.round_best_welfare, strict=True)]
            late = outcomes[late_from:]
            bids = np.array([o.bids for o in late])
            ok = positive & np.all(np.isfinite(bids), axis=0)
            ratios = np.abs(bids[:, ok] / costs[ok] - 1)
            winners = ok & np.any([o.selected for o in late], axis=0)
            winner_ratios = np.abs(bids[:, winners] / costs[winners] - 1)
            tol = TOLERANCE * max(abs(rep.best_welfare), 1.0)
            rows.append(
                {
                    "rule": rule,
                    "replicate": rep.replicate,
                    "max_misreport_gain": float(np.nanmax(rep.audits[rule].gain)) if rule in rep.audits else np.nan,
                    "misreport": float(ratios.mean()) if ratios.size else np.nan,
                    "misreport_winners": float(winner_ratios.mean()) if winner_ratios.size else np.nan,
                    "efficiency": float(np.mean(eff)),
                    "late_efficiency": float(np.mean(eff[late_from:])),
                    "buyer_cost": float(np.mean([o.total_paid for o in outcomes])),
                    "seller_surplus": float(np.mean([o.utilities.sum() for o in outcomes])),
                    "ir_violations": float(np.mean([np.sum(o.utilities < -tol) for o in outcomes])),
                }
            )
    return pd.DataFrame(rows)


def comparison_table(run: RunResult) -> pd.DataFrame:
    """One row per rule: mean and standard deviation over seeds of every metric, plus
    payment stability across seeds (``payment_cv``, ``rank_correlation``)."""
    per_seed = per_seed_metrics(run)
    grouped = per_seed.drop(columns="replicate").groupby("rule", sort=False)
    # the standard deviation of a single seed is NaN: no spread was measured
    table = pd.concat([grouped.mean().add_suffix("_mean"), grouped.std(ddof=1).add_suffix("_sd")], axis=1)
    order = [c for m in METRICS for c in (f"{m}_mean", f"{m}_sd")]
    table = table[order]
    cv, rho = [], []
    for rule in table.index:
        payments = np.array(
            [np.mean([o.payments for o in rep.outcomes[rule]], axis=0) for rep in run.replicates]
        )
        m = payments.mean(axis=0)
        paid = np.abs(m) > TOLERANCE
        if len(run.replicates) > 1 and paid.any():
            cv.append(float(np.mean(payments[:, paid].std(axis=0, ddof=1) / np.abs(m[paid]))))
        else:
            cv.append(np.nan)
        rho.append(mean_rank_correlation(payments))
    table["payment_cv"] = cv
    table["rank_correlation"] = rho
    return table.reset_index()


def aggregator_stability(
    shards, config, *, aggregators: Sequence[str], seeds: Sequence[int], costs: np.ndarray,
    pool: Sequence[str], reconstruction: str = "multi_round", value_per_quality: float = 100.0,
    ground_truth: bool = False,
) -> pd.DataFrame:
    """Contribution and payment stability of each aggregator over training seeds.

    The data (``shards``) is fixed; only the training seed varies. Per aggregator: the
    coefficient of variation of each client's reconstructed Shapley contribution across
    seeds (mean over clients), the mean pairwise Spearman correlation between seeds, the L1
    distance of the mean contribution shares (``phi / sum |phi|``) to the data-size baseline and, with
    ``ground_truth``, to retraining-based Shapley (``2^n - 1`` federated runs per seed), the
    coefficient of variation of Myerson payments at ``costs``, and the final accuracy.
    """
    from dataprice.market import SubsetMarket, settle
    from dataprice.valuation.game import tabulate
    from dataprice.valuation.methods import ExactShapley
    from dataprice.valuation.utilities.federated import (
        FederatedGame,
        FederatedRetrainingGame,
        train_federated,
    )

    def shares(phi):
        # normalised by sum |phi|: meaningful even when helpful and harmful clients cancel out
        total = np.abs(phi).sum()
        return phi / total if total > 1e-12 else phi

    sizes = np.bincount(shards.owners, minlength=shards.n_sellers)
    rows = []
    for aggregator in aggregators:
        phis, payments, accs, truths = [], [], [], []
        for seed in seeds:
            run = train_federated(shards, aggregator, config, pool=pool, seed=seed)
            game = FederatedGame(shards, run, reconstruction=reconstruction, value_per_quality=value_per_quality)
            table = tabulate(game)
            phis.append(ExactShapley().fit(table).result.values)
            payments.append(settle(SubsetMarket(table), costs, "myerson").payments)
            accs.append(game._acc_global[-1])
            if ground_truth:
                truths.append(ExactShapley().fit(FederatedRetrainingGame(
                    shards, aggregator, config, pool=pool, seed=seed, value_per_quality=value_per_quality)).result.values)
        phis, payments = np.array(phis), np.array(payments)
        mean = phis.mean(axis=0)
        paid = np.abs(payments.mean(axis=0)) > TOLERANCE
        row = {
            "aggregator": aggregator,
            "contribution_cv": float(np.mean(phis.std(axis=0, ddof=1) / np.abs(mean))) if len(seeds) > 1 else np.nan,
            "rank_correlation": mean_rank_correlation(phis),
            "distance_to_data_size": float(np.abs(shares(mean) - sizes / sizes.sum()).sum()),
            "payment_cv": float(np.mean(payments[:, paid].std(axis=0, ddof=1) / np.abs(payments[:, paid].mean(axis=0))))
            if paid.any() and len(seeds) > 1 else np.nan,
            "accuracy": float(np.mean(accs)),
        }
        if ground_truth:
            truth = np.mean(truths, axis=0)
            row["distance_to_retraining"] = float(np.abs(shares(mean) - shares(truth)).sum())
            from scipy.stats import spearmanr

            row["rank_correlation_with_retraining"] = float(spearmanr(mean, truth).statistic)
        rows.append(row)
    return pd.DataFrame(rows)


def federated_comparison(run: RunResult) -> pd.DataFrame:
    """:func:`aggregator_stability` for a federated scenario: every rule of the pool and
    FedRandom, on the first replicate's data split, over the scenario's replicate seeds."""
    from dataprice.buyers import build_task
    from dataprice.valuation.utilities.federated import FederatedConfig

    s = run.scenario
    buyer = s.buyer
    built = build_task(s, run.replicates[0].seed, run.costs)
    config = FederatedConfig(rounds=buyer.rounds, local_epochs=buyer.local_epochs, client_lr=buyer.client_lr,
                             batch_size=buyer.batch_size, mu=buyer.mu)
    seeds = [rep.seed for rep in run.replicates] if len(run.replicates) > 1 else [run.replicates[0].seed + k for k in range(3)]
    return aggregator_stability(
        built.game.shards, config, aggregators=[*buyer.pool, "fedrandom"], seeds=seeds, costs=run.costs,
        pool=buyer.pool, reconstruction=buyer.reconstruction, value_per_quality=buyer.value_per_quality,
        ground_truth=buyer.ground_truth,
    )
