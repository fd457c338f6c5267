"""FedRandom against fixed aggregators: how stable are contributions and payments?

:func:`aggregator_stability` trains the same federated task with every aggregation rule of
the pool and with FedRandom, over several training seeds, and measures the spread of each
client's reconstructed Shapley contribution, the agreement between seeds, the distance of
contribution shares to the data-size baseline (and to retraining-based Shapley), and the
spread of Myerson payments. The federated buyer runs it once a run is complete
(``buyer.compare_aggregators``); the report shows the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dataprice.market.metrics import TOLERANCE, mean_rank_correlation


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
    from dataprice.buyers.federated.training import (
        FederatedGame,
        FederatedRetrainingGame,
        train_federated,
    )
    from dataprice.market import SubsetMarket, settle
    from dataprice.valuation.game import tabulate
    from dataprice.valuation.methods import ExactShapley

    def shares(phi):
        # normalised by sum |phi|: meaningful even when helpful and harmful clients cancel out
        total = np.abs(phi).sum()
        return phi / total if total > 1e-12 else phi

    sizes = np.bincount(shards.owners, minlength=shards.n_sellers)
    rows = []
    for aggregator in aggregators:
        phi_rows: list[NDArray[np.float64]] = []
        payment_rows: list[NDArray[np.float64]] = []
        accs: list[float] = []
        truths: list[NDArray[np.float64]] = []
        for seed in seeds:
            run = train_federated(shards, aggregator, config, pool=pool, seed=seed)
            game = FederatedGame(shards, run, reconstruction=reconstruction, value_per_quality=value_per_quality)
            table = tabulate(game)
            phi_rows.append(ExactShapley().fit(table).result.values)
            payment_rows.append(settle(SubsetMarket(table), costs, "myerson").payments)
            accs.append(game._acc_global[-1])
            if ground_truth:
                truths.append(ExactShapley().fit(FederatedRetrainingGame(
                    shards, aggregator, config, pool=pool, seed=seed, value_per_quality=value_per_quality)).result.values)
        phis, payments = np.array(phi_rows), np.array(payment_rows)
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
