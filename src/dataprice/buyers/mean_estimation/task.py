"""Mean-estimation buyers: linear estimation from sellers' noisy signals.

The model (a jointly Gaussian linear-estimation market):

* a latent vector ``z ~ N(0, I_d)``; buyer ``i`` wants ``theta_i = a_i . z``; seller ``j``
  observes ``y_j = g_j . z + eps_j`` with independent noise ``eps_j ~ N(0, sigma_j^2)``;
* hence ``C = G G^T`` (covariance of the sellers' signals, ``n x n``), ``V = diag(sigma^2)``
  (noise), ``B = A G^T`` (``m x n``, covariance of targets and signals) and
  ``Var theta_i = ||a_i||^2``;
* buyer ``i`` uses the linear estimate ``theta_hat_i = sum_j w_ij y_j``; its quality is the
  variance it removes: ``VR_i(w_i) = Var theta_i - MSE_i = 2 w_i . b_i - w_i^T (C + V) w_i``;
* the buyers' value is ``V(W) = kappa * sum_i VR_i(w_i)`` (``kappa`` = value per unit of
  variance removed) and seller ``j``'s privacy cost is ``c_j f_j(W)``, ``f_j = sum_i w_ij^2``.

Maximising welfare at reported costs ``a``, ``kappa sum_i VR_i - sum_j a_j f_j``, gives the
first-order condition ``(kappa (C + V) + A) w_i = kappa b_i``, so

    ``W(a) = B (C + V + A / kappa)^{-1}``,   ``A = diag(a)``

(with ``kappa = 1`` this is ``W = B (C + V + A)^{-1}``). Restricted to a coalition ``S`` the
same formula holds on the columns of ``S``, with zeros elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.rng import Stream, child_rng
from dataprice.valuation.game import Game


@dataclass(frozen=True)
class MeanEstimationTask:
    """Second moments of the market: ``B (m x n)``, ``C (n x n)``, ``noise (n,)``, ``target_var (m,)``."""

    B: NDArray[np.float64]
    C: NDArray[np.float64]
    noise: NDArray[np.float64]
    target_var: NDArray[np.float64]
    value_per_quality: float = 1.0

    @property
    def n_sellers(self) -> int:
        return self.C.shape[0]

    @property
    def n_buyers(self) -> int:
        return self.B.shape[0]

    def allocation(
        self, reports: NDArray[np.float64], members: NDArray[np.bool_] | None = None
    ) -> NDArray[np.float64]:
        """``W_S(a) = B_S (C_SS + V_S + A_S / kappa)^{-1}`` on the columns of ``S``, 0 elsewhere."""
        n = self.n_sellers
        members = np.ones(n, dtype=bool) if members is None else np.asarray(members, dtype=bool)
        W = np.zeros((self.n_buyers, n))
        idx = np.flatnonzero(members)
        if idx.size == 0:
            return W
        a = np.asarray(reports, dtype=np.float64)[idx]
        M = self.C[np.ix_(idx, idx)] + np.diag(self.noise[idx] + a / self.value_per_quality)
        # W_S M = B_S  <=>  M^T W_S^T = B_S^T  (M is symmetric)
        W[:, idx] = np.linalg.solve(M, self.B[:, idx].T).T
        return W

    def quantities(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        """``f_j(W) = sum_i w_ij^2``: how much of seller ``j``'s data is used."""
        return (W**2).sum(axis=0)

    def variance_reduction(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        """``VR_i = 2 w_i . b_i - w_i^T (C + V) w_i`` for each buyer."""
        cov = self.C + np.diag(self.noise)
        return 2 * np.einsum("ij,ij->i", W, self.B) - np.einsum("ij,jk,ik->i", W, cov, W)

    def value(self, W: NDArray[np.float64]) -> float:
        """Buyers' value ``kappa * sum_i VR_i(W)``."""
        return self.value_per_quality * float(self.variance_reduction(W).sum())

    def welfare(self, W: NDArray[np.float64], costs: NDArray[np.float64]) -> float:
        """``V(W) - sum_j c_j f_j(W)``."""
        return self.value(W) - float(np.asarray(costs) @ self.quantities(W))

    def coalition_game(self, reports: NDArray[np.float64]) -> MeanEstimationGame:
        """``S -> V(W_S(a))`` at the reports ``a`` (Shapley payments in the continuous market)."""
        return MeanEstimationGame(self, reports)


def make_mean_estimation_task(
    n_sellers: int,
    n_buyers: int = 5,
    *,
    dim: int | None = None,
    noise: Sequence[float] | float = 0.5,
    correlation: float = 0.5,
    value_per_quality: float = 1.0,
    seed: int | np.random.SeedSequence | None = 0,
) -> MeanEstimationTask:
    """A random market: latent dimension ``dim`` (default ``n_buyers``), each seller's signal a
    mix of one buyer-specific direction and a shared one (weight ``correlation``)."""
    rng = child_rng(seed, Stream.DATA)
    d = dim or n_buyers
    A = rng.normal(size=(n_buyers, d))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    shared = rng.normal(size=d)
    shared /= np.linalg.norm(shared)
    own = rng.normal(size=(n_sellers, d))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    G = np.sqrt(1 - correlation**2) * own + correlation * shared
    noise_arr = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n_sellers,)).copy()
    return MeanEstimationTask(
        B=A @ G.T,
        C=G @ G.T,
        noise=noise_arr,
        target_var=(A**2).sum(axis=1),
        value_per_quality=value_per_quality,
    )


class MeanEstimationGame(Game):
    """``v(S) = V(W_S(a))``: the buyers' gross value when they use only the sellers in ``S``,
    each buyer's weights re-optimised at the reports ``a`` (0 for the empty coalition)."""

    def __init__(
        self,
        task: MeanEstimationTask,
        reports: NDArray[np.float64],
        player_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(task.n_sellers, player_names)
        self.task = task
        self.reports = np.asarray(reports, dtype=np.float64)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.array([self.task.value(self.task.allocation(self.reports, row)) for row in coalitions])
