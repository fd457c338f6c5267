"""Stratified Shapley without marginal contributions, with optimal allocation across sizes.

The Shapley value splits by coalition size (Kolpaczki et al. 2024, "Approximating the
Shapley value without marginal contributions", AAAI; stratified SVARM):

    ``phi_i = (1/n) sum_{l=0}^{n-1} [ P(i, l+1) - M(i, l) ]``,

with ``P(i, s)`` the mean of ``v(T)`` over the coalitions ``T ∋ i`` of size ``s`` and
``M(i, s)`` the mean of ``v(S)`` over ``S ∌ i`` of size ``s``. One evaluated coalition
``A`` of size ``s`` is a sample of ``P(i, s)`` for each of its members and of ``M(i, s)``
for every other player, so every evaluation informs all ``n`` values (a marginal
contribution informs one). The strata are the sizes:

* sizes ``0, 1, n-1, n`` are evaluated exactly first (``2n + 2`` coalitions): they settle
  ``P(i, 1)``, ``M(i, 0)``, ``M(i, 1)``, ``P(i, n-1)``, ``M(i, n-1)``, ``P(i, n)``;
* every other size ``s`` gets ``m_s`` coalitions drawn uniformly *without replacement*
  among its ``C(n, s)``. The allocation is Neyman's, made adaptively batch by batch: the
  summed variance of the values is ``sum_s K_s / m_s`` with ``K_s = n^3 sigma_s^2 / (s (n -
  s))`` (``sigma_s^2``: the variance of ``v`` among coalitions of size ``s``, estimated and
  shrunk towards the pooled variance), minimised by ``m_s ∝ sqrt(K_s)``; a size whose share
  reaches half its coalitions is enumerated whole and becomes exact.

Each stratum mean is an unbiased estimate (simple random sampling without replacement; a
player's samples within a size are the draws that contain it, a simple random sample of
those coalitions), so the value is unbiased once every stratum has a sample. The standard
error is ``(1/n) sqrt(sum_s [var_P(i, s) / c_P(i, s) + var_M(i, s) / c_M(i, s)] (1 - m_s /
C(n, s)))``, with the finite-population correction. A stratum with no sample yet takes
its size's mean (interpolated across sizes where the size has no sample), which splits
that stratum's increase of ``v`` equally: the value is then marked as not converged.

**Proxy control variate** (``proxy``, where the buyer offers a cheap game that moves with
``v``: :meth:`~dataprice.valuation.game.Game.proxy_game`, e.g. the soft-KNN utility for a
trained classifier): the proxy ``w`` is evaluated on the same coalitions, its Shapley
values ``phi_w`` are computed once with cheap evaluations (:func:`proxy_shapley`), and the
fit below gains the column ``w(S)``: ``v ~ a_0 + sum_j a_j + b w``, so ``phi = a + b phi_w +
phi_hat(r)``. With one slope to fit it starts at 16 coalitions. Measured on the 12-seller
classifier (10 seeds, median relative error at 91 / 181 / 362 evaluations): 0.159 / 0.087 /
0.045 without, 0.097 / 0.048 / 0.029 with the proxy's exact values.

**Additive control variate** (``regression``, on by default; the idea of regression-adjusted
Monte Carlo, Witter et al. 2025, in its simplest form): once there are ``8 (n + 1)``
evaluated coalitions, ``v(S) ~ a_0 + sum_{j in S} a_j`` is fitted by least squares on all of
them and the strata hold the residuals ``r = v - fit`` (fitted again each time the
coalitions have grown by an eighth). The estimator is linear in the game
and the additive game's Shapley values are its slopes, exactly, so ``phi_i = a_i +
phi_hat_i(r)``: the sampling error is that of the residuals, small when the game is
nearly additive (retrieval, coverage). Fitting on the same samples adds a bias of order
``1/m``; ``regression: false`` gives the unbiased estimator. Measured (5 seeds, median
relative error at 1,024 evaluations, without/with): KNN 18 sellers 0.040/0.023, RAG 20
sellers 0.044/0.010, coverage 40 sellers 0.123/0.054, classifier 12 sellers 0.018/0.013.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import comb

from dataprice.rng import child_rng, child_seed
from dataprice.valuation.game import MAX_TABULATION_PLAYERS, Game
from dataprice.valuation.methods._coalitions import (
    Estimate,
    Ledger,
    all_of_size,
    draw_stratum,
    evaluator,
    neyman_quota,
)
from dataprice.valuation.methods._montecarlo import MonteCarloMethod, MonteCarloSpec
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.methods.exact import ExactShapley

#: Pseudo-samples of the pooled variance added to each size's variance estimate.
SHRINKAGE = 8.0
#: The additive control variate is fitted once there are this many evaluated coalitions per
#: parameter (n + 1): below that its least-squares fit is unstable (measured on the
#: 40-seller coverage game: 256 evaluations, error 0.35 with it against 0.26 without).
REGRESSION_ROWS_PER_PARAMETER = 8
#: The fit is made again once the coalitions have grown by this fraction since the last fit
#: (refitting every batch made a run's cost quadratic in its budget: 15 s of overhead at 100
#: players and 20,000 evaluations); between fits new coalitions are folded as residuals of
#: the current one, which is a control variate like any other fixed additive game.
REFIT_GROWTH = 0.125
#: A proxy game's Shapley values are computed with at most this many times the run's budget
#: of proxy evaluations (exactly when its 2^n coalitions fit in that). Measured on the
#: 12-seller classifier with its soft-KNN proxy (1 ms per coalition against 17 ms for the
#: logistic fit; median relative error of 6 seeds at 91 / 181 / 362 evaluations): factor 2:
#: 0.091 / 0.053 / 0.037, 4: 0.091 / 0.049 / 0.033, 8: 0.093 / 0.048 / 0.032; without the
#: proxy 0.159 / 0.087 / 0.045. At 4 the proxy costs about a quarter of the evaluations.
PROXY_BUDGET_FACTOR = 4
#: The child stream of a run's seed that estimates the proxy's values.
PROXY_STREAM = 2**31 - 1


class StratifiedShapleySpec(MonteCarloSpec):
    method: Literal["stratified_shapley"]
    regression: bool = True  # the additive fit as control variate (see the module docstring)
    proxy: bool = False  # the buyer's cheap proxy game as control variate, where it offers one


class _Strata:
    """Running sums by player and size: ``P`` (coalitions with the player), ``M`` (without)."""

    def __init__(self, n: int, regression: bool = True, proxy_phi: NDArray[np.float64] | None = None) -> None:
        self.n = n
        self.regression = regression
        self.coalitions: list[NDArray[np.bool_]] = []  # every evaluated coalition, with its value
        self.values: list[NDArray[np.float64]] = []
        self.proxy_values: list[NDArray[np.float64]] = []  # the proxy game's, on the same coalitions
        self.proxy_phi = proxy_phi  # the proxy game's Shapley values (None: no proxy)
        self.proxy_slope = 0.0  # b in the fit v ~ a_0 + sum_j a_j + b w
        self.additive = np.zeros(n + 1)  # intercept and per-player slope of the additive fit
        self.fitted_rows = 0  # coalitions the fit was made on
        self._reset_sums()
        self.drawn = np.zeros(n + 1, dtype=np.int64)  # distinct coalitions evaluated per size
        self.total = np.array([comb(n, s, exact=False) for s in range(n + 1)])
        self.exact = np.zeros(n + 1, dtype=bool)  # sizes enumerated whole
        self.seen: list[set[int | bytes]] = [set() for _ in range(n + 1)]

    def _reset_sums(self) -> None:
        n = self.n
        shape = (n, n + 1)
        self.p_sum, self.p_sq, self.p_cnt = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.m_sum, self.m_sq, self.m_cnt = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.size_sum, self.size_sq = np.zeros(n + 1), np.zeros(n + 1)

    def add(self, coalitions: NDArray[np.bool_], values: NDArray[np.float64],
            proxy_values: NDArray[np.float64] | None = None) -> None:
        """Record evaluated coalitions (all new, any sizes), with the proxy game's values on
        them when there is a proxy, and fold them into the sums."""
        self.coalitions.append(coalitions)
        self.values.append(values)
        if self.proxy_phi is not None:
            assert proxy_values is not None
            self.proxy_values.append(proxy_values)
        sizes = coalitions.sum(axis=1)
        np.add.at(self.drawn, sizes, 1)
        self.exact |= self.drawn >= self.total
        rows = sum(c.shape[0] for c in self.coalitions)
        if any(self._parameters(rows)) and rows >= (1 + REFIT_GROWTH) * self.fitted_rows:
            self._refit()
            self.fitted_rows = rows
        else:  # between refits, new coalitions are folded as residuals of the current fit
            fitted = self.additive[0] + coalitions @ self.additive[1:]
            if proxy_values is not None:
                fitted = fitted + self.proxy_slope * proxy_values
            self._fold(coalitions, values - fitted)

    def _parameters(self, rows: int) -> tuple[bool, bool]:
        """Which slopes the fit has at ``rows`` coalitions: the ``n`` additive ones (with
        ``regression``) from ``8 (n + 1)`` rows on, the proxy's from ``8 * 2`` rows on."""
        additive = self.regression and rows >= REGRESSION_ROWS_PER_PARAMETER * (self.n + 1)
        proxy = self.proxy_phi is not None and rows >= REGRESSION_ROWS_PER_PARAMETER * 2
        return additive, proxy

    def _refit(self) -> None:
        """Fit ``v(S) ~ a_0 + sum_{j in S} a_j + b w(S)`` by least squares on every evaluated
        coalition (the slopes ``a_j`` with ``regression``, ``b`` with a proxy game ``w``; see
        :meth:`_parameters`) and fold the residuals ``r = v - fit`` into fresh sums."""
        x = np.concatenate(self.coalitions)
        v = np.concatenate(self.values)
        additive, _ = self._parameters(x.shape[0])
        columns = [np.ones(x.shape[0])]
        if additive:
            columns.append(x.astype(np.float64))
        if self.proxy_phi is not None:
            columns.append(np.concatenate(self.proxy_values)[:, None])
        design = np.column_stack(columns)
        coef = np.asarray(np.linalg.lstsq(design, v, rcond=None)[0], dtype=np.float64)
        self.additive = np.zeros(self.n + 1)
        self.additive[0] = coef[0]
        if additive:
            self.additive[1:] = coef[1 : self.n + 1]
        if self.proxy_phi is not None:
            self.proxy_slope = float(coef[-1])
        self._reset_sums()
        self._fold(x, v - design @ coef)

    def _fold(self, coalitions: NDArray[np.bool_], values: NDArray[np.float64]) -> None:
        sizes = coalitions.sum(axis=1)
        inside = coalitions.astype(np.float64)
        outside = 1.0 - inside
        for s in np.unique(sizes).tolist():
            rows = sizes == s
            v, a, b = values[rows], inside[rows], outside[rows]
            self.p_sum[:, s] += v @ a
            self.p_sq[:, s] += (v * v) @ a
            self.p_cnt[:, s] += a.sum(axis=0)
            self.m_sum[:, s] += v @ b
            self.m_sq[:, s] += (v * v) @ b
            self.m_cnt[:, s] += b.sum(axis=0)
            self.size_sum[s] += v.sum()
            self.size_sq[s] += float(v @ v)

    def size_means(self) -> NDArray[np.float64]:
        """Mean ``v`` per size, linearly interpolated over sizes with no sample."""
        have = self.drawn > 0
        means = np.divide(self.size_sum, self.drawn, out=np.zeros(self.n + 1), where=have)
        sizes = np.arange(self.n + 1)
        return np.interp(sizes, sizes[have], means[have]) if have.any() else means

    def size_variances(self) -> NDArray[np.float64]:
        """Variance of ``v`` within each size, shrunk towards the pooled within-size variance."""
        d = self.drawn.astype(np.float64)
        mean = np.divide(self.size_sum, d, out=np.zeros_like(d), where=d > 0)
        ss = np.maximum(self.size_sq - d * mean**2, 0.0)
        dof = np.maximum(d - 1, 0)
        pooled = ss.sum() / dof.sum() if dof.sum() > 0 else 1.0
        return (ss + SHRINKAGE * pooled) / (dof + SHRINKAGE)

    def estimate(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(phi, stderr)`` of every player (formulas in the module docstring)."""
        n = self.n
        fallback = np.broadcast_to(self.size_means(), (n, n + 1))
        p_mean = np.divide(self.p_sum, self.p_cnt, out=fallback.copy(), where=self.p_cnt > 0)
        m_mean = np.divide(self.m_sum, self.m_cnt, out=fallback.copy(), where=self.m_cnt > 0)
        # with the additive fit as control variate the sums hold residuals; the fit's own
        # Shapley values are its slopes, exactly
        phi = (p_mean[:, 1:] - m_mean[:, :n]).sum(axis=1) / n + self.additive[1:]
        if self.proxy_phi is not None:  # the proxy's part of the fit: b w, whose values are b phi_w
            phi = phi + self.proxy_slope * self.proxy_phi
        fpc = np.where(self.exact, 0.0, 1.0 - np.minimum(self.drawn / self.total, 1.0))
        pooled = self.size_variances()[None, :]
        var = np.zeros(n)
        for cnt, total_sum, sq in ((self.p_cnt, self.p_sum, self.p_sq), (self.m_cnt, self.m_sum, self.m_sq)):
            mean = np.divide(total_sum, cnt, out=np.zeros_like(cnt), where=cnt > 0)
            within = np.divide(np.maximum(sq - cnt * mean**2, 0.0), cnt - 1, out=np.zeros_like(cnt), where=cnt > 1)
            # one sample says nothing of its spread: borrow the size's variance
            within = np.where(cnt > 1, within, pooled)
            term = np.divide(within, cnt, out=np.full_like(cnt, np.inf), where=cnt > 0)
            var += np.where(fpc[None, :] == 0, 0.0, term * np.where(fpc == 0, 1.0, fpc)[None, :]).sum(axis=1)
        # the strata that enter phi: P at sizes 1..n, M at sizes 0..n-1 (the others are 0 or unused)
        return phi, np.sqrt(var) / n



@register_method
class StratifiedShapley(MonteCarloMethod):
    """Stratified Shapley values from coalition values alone, sizes allocated optimally.

    See the module docstring for the estimator. Each batch draws ``batch_size`` coalitions
    from the child stream ``(seed, batch)``; the sizes come from the allocation at the
    state before the batch, so a run is a function of its seed and budget. With ``engine``
    the batch's coalitions are evaluated there in chunks (same values as here).

    Args:
        stopping, max_evaluations, batch_size, seed, progress: as :class:`MonteCarloMethod`
            (the default budget is ``200 n^2`` evaluations or a relative standard error of 1%).
    """

    name = "stratified_shapley"
    Spec: ClassVar[type[MethodSpec]] = StratifiedShapleySpec
    default_batch_size = 64

    def __init__(self, *, regression: bool = True, proxy: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.regression = regression
        self.proxy = proxy

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> StratifiedShapley:
        return cls(**spec.sampling_options(seed, progress), regression=spec.regression, proxy=spec.proxy)

    def fit(self, game: Game, *, engine=None, chunk: int = 256) -> StratifiedShapley:
        n = game.n_players
        loop = self._start(game, None)
        state = Estimate(n)
        proxy = game.proxy_game() if self.proxy else None
        proxy_info: dict[str, Any] = {}
        proxy_phi = None
        if proxy is not None:
            budget = loop.remaining(state)
            proxy_phi, proxy_info = proxy_shapley(proxy, budget if np.isfinite(budget) else 200 * n * n, self.seed)
        strata = _Strata(n, self.regression, proxy_phi)
        ledger = Ledger(self.checkpoint, method=self.name, seed=self.seed, player_names=game.player_names,
                        every=self.checkpoint_every)
        evaluate_v = ledger.wrap(evaluator(game, engine, chunk))

        def evaluate(coalitions: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
            return evaluate_v(coalitions), None if proxy is None else proxy(coalitions)
        borders = sorted({0, 1, n - 1, n})
        border = np.concatenate([all_of_size(n, s) for s in borders])
        batch = 0
        if loop.remaining(state) >= border.shape[0]:
            strata.add(border, *evaluate(border))
            loop.spend(border.shape[0])
            self._refresh(strata, state)
            while not loop.done(state):
                budget = loop.remaining(state)
                coalitions = self._draw(strata, child_rng(self.seed, batch), int(min(budget, self.batch_size)))
                batch += 1
                if coalitions.shape[0] == 0:
                    break
                strata.add(coalitions, *evaluate(coalitions))
                loop.spend(coalitions.shape[0])
                self._refresh(strata, state)
                ledger.batch_done(batch)
        else:  # not even the border sizes fit the budget: the equal split, not converged
            ends = np.zeros((2, n), dtype=bool)
            ends[1] = True
            if loop.remaining(state) >= 2:
                strata.add(ends, *evaluate(ends))
                loop.spend(2)
            self._refresh(strata, state)
        ledger.save()
        converged = loop.close(state)
        exact = bool(strata.exact.all())
        self._result = state.result(
            game, method=self.name, n_evaluations=loop.n_evaluations, converged=converged or exact, seed=self.seed,
            n_batches=batch,
            extra={
                "coalitions_by_size": strata.drawn.tolist(),
                "exact_sizes": np.flatnonzero(strata.exact).tolist(),
                "replayed_from_checkpoint": ledger.replayed,
                **({"proxy": {**proxy_info, "slope": strata.proxy_slope}} if proxy is not None else {}),
                "stopping": repr(loop.criterion),
            },
        )
        return self

    @staticmethod
    def _refresh(strata: _Strata, state: Estimate) -> None:
        state.mean, state.stderr = strata.estimate()
        state.count = np.full(strata.n, int(strata.drawn.sum()), dtype=np.int64)

    def _draw(self, strata: _Strata, rng: np.random.Generator, k: int) -> NDArray[np.bool_]:
        """``k`` new coalitions (fewer when every size is exhausted), sizes by the allocation."""
        n = strata.n
        open_sizes = np.array([s for s in range(2, n - 1) if not strata.exact[s]], dtype=np.int64)
        if k <= 0 or open_sizes.size == 0:
            return np.zeros((0, n), dtype=bool)
        quota = _allocate(strata, open_sizes, k)
        parts, room = [], k
        for s, q in zip(open_sizes.tolist(), quota.tolist(), strict=True):
            if q <= 0 or room <= 0:
                continue
            parts.append(draw_stratum(n, s, q, room, strata.drawn[s], strata.total[s], strata.seen[s], rng))
            room -= parts[-1].shape[0]
        return np.concatenate(parts) if parts else np.zeros((0, n), dtype=bool)


def proxy_shapley(proxy: Game, budget: float, seed: int | None) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """The proxy game's Shapley values, with at most :data:`PROXY_BUDGET_FACTOR` times the
    run's budget of (cheap) proxy evaluations: exact when its ``2^n`` coalitions fit in
    that, else ``stratified_shapley`` with it (the estimate's error then enters the value,
    scaled by the fit's slope ``b``)."""
    n = proxy.n_players
    before = proxy.n_evaluations
    allowed = min(PROXY_BUDGET_FACTOR * budget, 1e9)
    if n <= MAX_TABULATION_PLAYERS and 2**n <= allowed:
        phi = ExactShapley().fit(proxy).result.values
        source = "exact"
    else:
        phi = StratifiedShapley(max_evaluations=int(allowed), seed=child_seed(seed, PROXY_STREAM)).fit(proxy).result.values
        source = "stratified_shapley"
    return phi, {"game": type(proxy).__name__, "values": source, "evaluations": int(proxy.n_evaluations - before)}


def _allocate(strata: _Strata, sizes: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """Neyman's allocation of ``k`` more draws over ``sizes`` (ascending): the target share
    of size ``s`` is ``∝ sqrt(sigma_s^2 / (s (n - s)))`` (see :func:`neyman_quota`)."""
    n = strata.n
    weight = np.sqrt(strata.size_variances()[sizes] / (sizes * (n - sizes)))
    return neyman_quota(weight, strata.drawn[sizes].astype(np.float64), strata.total[sizes], k)
