"""The continuous mean-estimation market: allocation ``W(a) = B (C + V + A/kappa)^{-1}``.

Seller ``j``'s *allocation quantity* is ``x_j(a) = f_j(W(a)) = sum_i w_ij^2``; it decreases
in ``j``'s own report, so the market is a single-parameter mechanism with a monotone
allocation, and the classical payment rules apply:

* **Myerson**: ``p_j = a_j x_j(a) + int_{a_j}^{U} x_j(u, a_-j) du`` with ``U = inf`` (or the
  reserve): the smallest truthful payment that leaves a seller of infinite cost with 0.
* **VCG**: ``p_j = a_j x_j(a) + SW_a(N) - SW_a(N \\ {j})`` with ``SW_a(S)`` the best welfare
  at the reports using sellers ``S``. By the envelope theorem
  ``d SW_a(N) / d a_j = -x_j``, so ``SW_a(N) - SW_a(N \\ j) = int_{a_j}^inf x_j du`` when
  ``x_j -> 0`` as ``a_j -> inf`` (it does, as ``O(a_j^-2)``): **Myerson and VCG coincide**
  without a reserve. A reserve ``U`` (the highest report accepted) cuts the integral, and
  VCG then pays more than Myerson.
* **LOO**: ``p_j = V(W(a)) - V(W_{-j}(a))``, the buyers' value lost without ``j``.
* **Shapley**: Shapley value of ``j`` in ``S -> V(W_S(a))`` (exact over ``2^n`` coalitions).
* **Pay-as-bid**: ``p_j = a_j x_j(a)``, the reported cost of what was used (manipulable).

A report of ``inf`` takes a seller out of the market (used by the agents for sellers who left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import integrate

from dataprice.market.mechanism import Outcome
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods.exact import ExactShapley
from dataprice.valuation.utilities.mean_estimation import MeanEstimationGame, MeanEstimationTask

CONTINUOUS_RULES = ("loo", "shapley", "myerson", "vcg", "pay_as_bid")


@dataclass
class ContinuousMarket:
    """The mean-estimation market with an optional reserve (highest accepted report)."""

    task: MeanEstimationTask
    reserve: float | None = None

    def members(self, reports: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Sellers in the market: a finite report, at most the reserve."""
        reports = np.asarray(reports)
        members = np.isfinite(reports)
        if self.reserve is not None:
            members &= reports <= self.reserve
        return members

    def allocate(self, reports: NDArray[np.float64], exclude: int | None = None) -> NDArray[np.float64]:
        members = self.members(reports)
        if exclude is not None:
            members = members.copy()
            members[exclude] = False
        return self.task.allocation(reports, members)

    def quantity(self, j: int, u: float, reports: NDArray[np.float64]) -> float:
        """``x_j(u, a_-j)``."""
        trial = np.asarray(reports, dtype=np.float64).copy()
        trial[j] = u
        return float(self.task.quantities(self.allocate(trial))[j])

    def social_welfare(self, reports: NDArray[np.float64], exclude: int | None = None) -> float:
        """``SW_a(S) = V(W_S(a)) - sum_{j in S} a_j f_j(W_S(a))``."""
        finite = np.where(np.isfinite(reports), reports, 0.0)  # sellers out of the market use nothing
        return self.task.welfare(self.allocate(reports, exclude), finite)

    def myerson(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        reports = np.asarray(reports, dtype=np.float64)
        x = self.task.quantities(self.allocate(reports))
        pay = np.zeros_like(x)
        upper = np.inf if self.reserve is None else self.reserve
        for j in np.flatnonzero(x > 0):
            tail, _ = integrate.quad(
                lambda u, j=j: self.quantity(j, u, reports), reports[j], upper, epsabs=1e-12, epsrel=1e-10, limit=200
            )
            pay[j] = reports[j] * x[j] + tail
        return pay

    def vcg(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        reports = np.asarray(reports, dtype=np.float64)
        x = self.task.quantities(self.allocate(reports))
        full = self.social_welfare(reports)
        pay = np.zeros_like(x)
        for j in np.flatnonzero(x > 0):
            pay[j] = reports[j] * x[j] + full - self.social_welfare(reports, exclude=j)
        return pay

    def pay_as_bid(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        """``p_j = a_j x_j(a)``: the reported cost of the data used (manipulable)."""
        reports = np.asarray(reports, dtype=np.float64)
        x = self.task.quantities(self.allocate(reports))
        return np.where(x > 0, reports * x, 0.0)

    def loo(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        reports = np.asarray(reports, dtype=np.float64)
        W = self.allocate(reports)
        x = self.task.quantities(W)
        value = self.task.value(W)
        pay = np.zeros_like(x)
        for j in np.flatnonzero(x > 0):
            pay[j] = value - self.task.value(self.allocate(reports, exclude=j))
        return pay

    def shapley(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        reports = np.asarray(reports, dtype=np.float64)
        members = self.members(reports)
        pay = np.zeros(self.task.n_sellers)
        idx = np.flatnonzero(members)
        if idx.size == 0:
            return pay
        game = MeanEstimationGame(self.task, reports)
        table = tabulate(game).restrict(idx)
        pay[idx] = ExactShapley().fit(table).result.values
        return pay

    def settle(self, reports: NDArray[np.float64], rule: str, costs: NDArray[np.float64] | None = None) -> Outcome:
        if rule not in CONTINUOUS_RULES:
            raise ValueError(f"unknown payment rule {rule!r}; choose one of {list(CONTINUOUS_RULES)}")
        reports = np.asarray(reports, dtype=np.float64)
        W = self.allocate(reports)
        return Outcome(
            rule=rule,
            bids=reports,
            quantities=self.task.quantities(W),
            payments=getattr(self, rule)(reports),
            value=self.task.value(W),
            costs=None if costs is None else np.asarray(costs, dtype=np.float64),
        )

    def optimal_welfare(self, costs: NDArray[np.float64]) -> float:
        """Welfare of the allocation at the true costs (the best possible, no reserve)."""
        return self.task.welfare(self.task.allocation(costs), costs)
