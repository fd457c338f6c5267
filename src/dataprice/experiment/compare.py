"""Compare payment rules across seeds: truthfulness, efficiency, cost, surplus, stability.

Each replicate (seed) runs the repeated market under every rule; this module reduces a
:class:`~dataprice.experiment.results.RunResult` to one row per rule and seed, then to the mean and
spread over seeds. Stability is measured across seeds: the coefficient of variation of
each seller's mean payment, and the Spearman rank correlation of payments between seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataprice.experiment.results import RunResult
from dataprice.market.metrics import TOLERANCE, efficiency, mean_rank_correlation

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
