"""Market metrics: welfare, efficiency, individual rationality, truthfulness, stability.

* Welfare at true costs: ``W(S) = v(S) - sum_{j in S} c_j``; efficiency ratio
  ``W(S*(b)) / max_S W(S)`` (1 when the best welfare is 0 and reached).
* Individual rationality: a seller reporting truthfully should not lose (``u_j >= 0``).
* Truthfulness audit: for each seller, the best gain in utility from any report on a grid,
  others' reports fixed: ``gain_j = max_r u_j(r, b_-j) - u_j(c_j, b_-j)`` (0 for a truthful rule).
* Stability: spread of each seller's payment across seeds (coefficient of variation) and
  Spearman rank correlation of payments between seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dataprice.market.mechanism import Outcome, settle
from dataprice.market.protocol import Market

#: Tolerance below which a loss or a gain counts as zero (money units, relative to v(N)).
TOLERANCE = 1e-7

DEFAULT_MULTIPLIERS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0)


def optimal_welfare(market: Market, costs: NDArray[np.float64]) -> float:
    """The best welfare at the true costs (``max_S v(S) - c(S)`` in a subset market)."""
    return market.optimal_welfare(costs)


def efficiency(outcome: Outcome, best_welfare: float) -> float:
    """``W(S*) / max_S W(S)`` at true costs."""
    if best_welfare <= TOLERANCE:
        return 1.0 if outcome.welfare >= best_welfare - TOLERANCE else 0.0
    return outcome.welfare / best_welfare


def ir_violations(outcome: Outcome, scale: float = 1.0) -> int:
    """Number of sellers whose utility at the true cost is negative."""
    return int(np.sum(outcome.utilities < -TOLERANCE * max(scale, 1.0)))


def report_grid(cost: float, max_report: float, multipliers: Sequence[float], n_linear: int) -> NDArray:
    """Candidate misreports: multiples of the cost and an even grid over ``[0, max_report]``."""
    grid = np.concatenate([cost * np.asarray(multipliers), np.linspace(0.0, max_report, n_linear)])
    return np.unique(grid[grid >= 0])


@dataclass(frozen=True)
class AuditResult:
    """Per seller: utility when truthful, best utility on the grid, the report that gets it."""

    truthful_utility: NDArray[np.float64]
    best_utility: NDArray[np.float64]
    best_report: NDArray[np.float64]

    @property
    def gain(self) -> NDArray[np.float64]:
        return np.maximum(self.best_utility - self.truthful_utility, 0.0)


def truthfulness_audit(
    settle_fn: Callable[[NDArray[np.float64], str, NDArray[np.float64]], Outcome],
    rule: str,
    costs: NDArray[np.float64],
    bids: NDArray[np.float64] | None = None,
    *,
    span: float,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    n_linear: int = 21,
    sellers: Sequence[int] | None = None,
) -> AuditResult:
    """Each seller's best gain from misreporting, the others' reports fixed at ``bids``.

    Args:
        settle_fn: ``settle_fn(bids, rule, costs) -> Outcome`` for the market at hand.
        rule: the payment rule audited.
        costs: true costs.
        bids: the others' reports (default: the true costs, i.e. "is truth-telling a best
            response when everyone else is truthful?").
        span: scale of useful reports (``v(N) - v(empty)``); the grid covers multiples of
            the cost and ``[0, span + cost]``.
        sellers: audit only these sellers (default: all); the others get NaN.
    """
    costs = np.asarray(costs, dtype=np.float64)
    base = costs.copy() if bids is None else np.asarray(bids, dtype=np.float64).copy()
    n = costs.shape[0]
    truthful = np.full(n, np.nan)
    best = np.full(n, np.nan)
    best_report = np.full(n, np.nan)
    tol = TOLERANCE * max(span, 1.0)
    for j in range(n) if sellers is None else sellers:
        reports = base.copy()
        reports[j] = costs[j]
        truthful[j] = settle_fn(reports, rule, costs).utilities[j]
        best[j], best_report[j] = truthful[j], costs[j]
        for r in report_grid(costs[j], span + costs[j], multipliers, n_linear):
            reports[j] = r
            u = settle_fn(reports, rule, costs).utilities[j]
            if u > best[j] + tol:
                best[j], best_report[j] = u, r
    return AuditResult(truthful, best, best_report)


def settler(market: Market):
    """``settle_fn`` for :func:`truthfulness_audit` on any market."""
    return lambda bids, rule, costs: settle(market, bids, rule, costs)


#: The subset market's settler (the name the tests and benchmarks use).
subset_settler = settler


def market_span(market: Market) -> float:
    """The scale of useful reports in ``market`` (``|v(N) - v(empty)|`` in a subset market)."""
    return market.value_span()


def payment_stability(payments: NDArray[np.float64]) -> pd.DataFrame:
    """Stability of payments across replicates: ``payments`` has shape ``(n_seeds, n_sellers)``.

    Per seller: mean, standard deviation and coefficient of variation ``std / |mean|``
    (NaN when the mean is 0). The mean pairwise Spearman rank correlation between seeds is
    in ``attrs["rank_correlation"]`` (NaN with one seed).
    """
    payments = np.atleast_2d(np.asarray(payments, dtype=np.float64))
    mean = payments.mean(axis=0)
    std = payments.std(axis=0, ddof=1) if payments.shape[0] > 1 else np.zeros(payments.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(np.abs(mean) > TOLERANCE, std / np.abs(mean), np.nan)
    frame = pd.DataFrame({"mean": mean, "std": std, "cv": cv})
    frame.attrs["rank_correlation"] = mean_rank_correlation(payments)
    return frame


def mean_rank_correlation(samples: NDArray[np.float64]) -> float:
    """Mean Spearman correlation over all pairs of rows (NaN with fewer than two rows)."""
    rows = samples.shape[0]
    if rows < 2:
        return float("nan")
    from scipy.stats import spearmanr  # scipy.stats takes ~0.5 s to import: only when asked

    values = []
    for a in range(rows):
        for b in range(a + 1, rows):
            if np.ptp(samples[a]) == 0 or np.ptp(samples[b]) == 0:
                continue
            values.append(spearmanr(samples[a], samples[b]).statistic)
    return float(np.mean(values)) if values else float("nan")
