"""Kernel (regression) Shapley values from paired coalitions stratified by size.

The Shapley values are the solution of a weighted least-squares problem over all coalitions
(Charnes et al. 1988; Lundberg & Lee 2017, KernelSHAP):

    ``phi = argmin sum_{0 < |S| < n} w(S) (y(S) - sum_{i in S} phi_i)^2``
    ``subject to sum_i phi_i = y(N)``,

with ``y(S) = v(S) - v(empty)`` and the Shapley kernel ``w(S) = (n - 1) / (C(n, |S|) |S| (n -
|S|))``. Summed over the ``C(n, s)`` coalitions of a size, the kernel weighs that size by
``K_s = (n - 1) / (s (n - s))``, so the loss is ``sum_s K_s E_s[r(S)^2]`` with ``E_s`` the
mean over coalitions of size ``s``. This estimator samples it by strata:

* a *unit* is a pair ``{S, N \\ S}`` (paired sampling, Covert & Lee 2021): stratum ``s`` (``1
  <= s <= n/2``) holds the pairs of a size-``s`` coalition and its complement, ``C(n, s)`` of
  them (half that at ``s = n/2``, where a pair is represented by the half holding player 0);
  a unit's weight is ``c_s = K_s`` (``K_s / 2`` at ``s = n/2``), the same for both halves
  because ``K_s = K_{n-s}``;
* ``empty``, ``N`` and stratum 1 (every singleton and every complement of one, ``2n + 2``
  evaluations) are evaluated first (the border trick of shapiq's KernelSHAP: the sizes with
  the largest kernel weight per coalition are enumerated, not sampled); each other stratum
  gets ``m_s`` units drawn uniformly without replacement, allocated by Neyman's rule batch by
  batch (``m_s ∝ c_s sd_s``, ``sd_s`` the spread of a unit's influence below; the first batch,
  before any spread is known, by ``c_s`` alone, as KernelSHAP does), and a stratum whose share
  reaches half its units is enumerated whole;
* the normal equations are estimated stratum by stratum, ``A = sum_s (c_s / m_s) sum_k (z z^T +
  z' z'^T)`` and ``b = sum_s (c_s / m_s) sum_k (z y + z' y')`` (``z``, ``z'``: the indicator
  vectors of a unit's halves), and solved with the efficiency constraint exactly: ``phi = A^-1
  b - lambda A^-1 1``, ``lambda = (1^T A^-1 b - y(N)) / (1^T A^-1 1)``. The values sum to ``v(N)
  - v(empty)`` on every run, and equal the exact Shapley values once every stratum is whole.

**Standard errors** by the sandwich (delta) rule for stratified samples: with ``Q = A^-1 -
A^-1 1 1^T A^-1 / (1^T A^-1 1)`` and a unit's influence ``u = z r + z' r'`` (``r``: residuals
of the fit), ``Var(phi) ≈ Q [sum_s c_s^2 (1 - m_s / M_s) Cov_s(u) / m_s] Q`` (``M_s``: the
stratum's units; the finite-population correction makes enumerated strata exact). A stratum
with no unit yet leaves the error infinite (the value is then not converged).

The regression estimator is biased by ``O(1/m)`` (a ratio of estimated sums); ``unbiased:
true`` solves with the exact ``A`` instead (every stratum's ``E_s[z z^T + z' z'^T]`` is known
in closed form: ``1`` on the diagonal, ``[s (s-1) + (n-s) (n-s-1)] / (n (n-1))`` off it), which
is the unbiased KernelSHAP of Covert & Lee (2021): linear in the stratum means, so unbiased
once every stratum has a unit, with ``u = z y + z' y'`` in the variance (larger: it does not
subtract the fit).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import comb

from dataprice.rng import child_rng
from dataprice.valuation.game import Game
from dataprice.valuation.methods._coalitions import (
    Estimate,
    Ledger,
    draw_stratum,
    evaluator,
    neyman_quota,
    unseen_of_size,
)
from dataprice.valuation.methods._montecarlo import MonteCarloMethod, MonteCarloSpec
from dataprice.valuation.methods.base import MethodSpec, register_method

#: Pseudo-samples of the pooled spread added to each stratum's spread in the allocation.
SHRINKAGE = 4.0
#: The estimate (and the spreads the allocation reads) is made again once the units have
#: grown by this fraction: each estimate reads every unit (``O(units n^2)``), so estimating
#: every batch made a run quadratic in its budget. A standard-error target is therefore
#: checked on an estimate at most an eighth of the units old (the run may overshoot by that).
REFRESH_GROWTH = 0.125


class KernelShapleySpec(MonteCarloSpec):
    method: Literal["kernel_shapley"]
    unbiased: bool = False  # exact normal matrix (Covert & Lee's unbiased KernelSHAP)


def _representative_with_player_0(rows: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The half of each pair ``{S, N \\ S}`` that holds player 0."""
    return np.where(rows[:, :1], rows, ~rows)


class _Pairs:
    """The evaluated units by stratum and the estimate they give (module docstring)."""

    def __init__(self, n: int, unbiased: bool) -> None:
        self.n, self.unbiased = n, unbiased
        self.strata = np.arange(1, n // 2 + 1)  # s = 1..floor(n/2)
        s = self.strata
        kernel = (n - 1) / (s * (n - s)) if n > 1 else np.zeros(0)
        halves = 2 * s == n
        self.weight = np.where(halves, kernel / 2, kernel)  # c_s
        self.units = np.array([comb(n, k, exact=False) for k in s]) / np.where(halves, 2, 1)  # M_s
        self.drawn = np.zeros(s.size, dtype=np.int64)
        self.seen: list[set[int | bytes]] = [set() for _ in s]
        self.z: list[list[NDArray[np.bool_]]] = [[] for _ in s]  # the unit's first half
        self.y: list[list[NDArray[np.float64]]] = [[] for _ in s]  # y(S), y(N \ S)
        self.y_empty = 0.0
        self.y_grand = 0.0
        self.exact_matrix = self._exact_matrix() if unbiased else None
        self.last_spread = np.zeros(s.size)  # each stratum's influence sd at the last estimate
        self.estimated_units = 0  # units the last estimate was made from

    def _exact_matrix(self) -> NDArray[np.float64]:
        n = self.n
        a = np.zeros((n, n))
        for c, s in zip(self.weight, self.strata, strict=True):
            off = (s * (s - 1) + (n - s) * (n - s - 1)) / (n * (n - 1))
            a += c * ((1.0 - off) * np.eye(n) + off)
        return a

    def add(self, stratum: int, halves: NDArray[np.bool_], values: NDArray[np.float64]) -> None:
        """Units of ``stratum`` (index into :attr:`strata`): ``halves`` their first halves and
        ``values`` the ``v`` of the first halves then of their complements."""
        k = halves.shape[0]
        self.z[stratum].append(halves)
        self.y[stratum].append(np.column_stack([values[:k], values[k:]]) - self.y_empty)
        self.drawn[stratum] += k

    def estimate(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(phi, stderr, spread)``; ``spread[s]``: a unit's influence sd, summed over players."""
        n = self.n
        if n == 1:
            return np.array([self.y_grand]), np.zeros(1), np.zeros(0)
        ones = np.ones(n)
        sampled = self.drawn > 0
        zs = [np.concatenate(z).astype(np.float64) if z else np.zeros((0, n)) for z in self.z]
        ys = [np.concatenate(y) if y else np.zeros((0, 2)) for y in self.y]
        if self.exact_matrix is not None:
            a = self.exact_matrix
        else:
            a = np.zeros((n, n))
            for z, c, m in zip(zs, self.weight, self.drawn, strict=True):
                if m:
                    a += (c / m) * (z.T @ z + (1 - z).T @ (1 - z))
        b = np.zeros(n)
        for z, y, c, m in zip(zs, ys, self.weight, self.drawn, strict=True):
            if m:
                b += (c / m) * (z.T @ y[:, 0] + (1 - z).T @ y[:, 1])
        solved = np.linalg.solve(a, np.column_stack([b, ones]))
        a_inv_b, a_inv_1 = solved[:, 0], solved[:, 1]
        denominator = ones @ a_inv_1
        phi = a_inv_b - a_inv_1 * (ones @ a_inv_b - self.y_grand) / denominator
        q = np.linalg.inv(a) - np.outer(a_inv_1, a_inv_1) / denominator
        var = np.zeros(n)
        spread = np.zeros(self.strata.size)
        per_player = np.full((self.strata.size, n), np.nan)
        for i, (z, y, m) in enumerate(zip(zs, ys, self.drawn, strict=True)):
            if m < 2:
                continue
            if self.exact_matrix is None:  # residual influence of the fitted values
                u = z * (y[:, :1] - z @ phi[:, None]) + (1 - z) * (y[:, 1:] - (1 - z) @ phi[:, None])
            else:
                u = z * y[:, :1] + (1 - z) * y[:, 1:]
            w = (u - u.mean(axis=0)) @ q
            per_player[i] = (w * w).sum(axis=0) / (m - 1)
            spread[i] = np.sqrt(per_player[i].sum())
        have = ~np.isnan(per_player[:, 0])
        pooled = per_player[have].mean(axis=0) if have.any() else np.full(n, np.inf)
        fpc = np.maximum(1.0 - self.drawn / self.units, 0.0)
        for i in range(self.strata.size):
            if fpc[i] == 0:
                continue
            if not sampled[i]:
                var[:] = np.inf
                break
            spread_i = per_player[i] if have[i] else pooled  # one unit says nothing of its spread
            var += self.weight[i] ** 2 * fpc[i] * spread_i / self.drawn[i]
        return phi, np.sqrt(var), spread

    def spreads(self, spread: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each stratum's influence sd, shrunk towards the pooled sd by :data:`SHRINKAGE`
        pseudo-units (1 everywhere before any stratum has two units)."""
        dof = np.maximum(self.drawn - 1, 0).astype(np.float64)
        known = (dof > 0) & (spread > 0)
        if not known.any():
            return np.ones(self.strata.size)
        pooled = float(np.average(spread[known], weights=dof[known]))
        return (dof * spread + SHRINKAGE * pooled) / (dof + SHRINKAGE)



@register_method
class KernelShapley(MonteCarloMethod):
    """Shapley values by kernel regression on paired coalitions, strata allocated optimally.

    See the module docstring for the estimator. Each batch draws about ``batch_size / 2``
    units (two evaluations each) from the child stream ``(seed, batch)``, sized by the
    allocation at the state before the batch, so a run is a function of its seed and
    budget; with ``engine`` a batch's coalitions are evaluated there in chunks. The values
    always sum to ``v(N) - v(empty)``. An odd budget leaves its last evaluation unspent.

    Args:
        unbiased: solve with the exact normal matrix (unbiased, larger variance).
        stopping, max_evaluations, batch_size, seed, progress: as :class:`MonteCarloMethod`
            (the default budget is ``200 n^2`` evaluations or a relative standard error of 1%).
    """

    name = "kernel_shapley"
    Spec: ClassVar[type[MethodSpec]] = KernelShapleySpec
    default_batch_size = 64

    def __init__(self, *, unbiased: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.unbiased = unbiased

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> KernelShapley:
        return cls(**spec.sampling_options(seed, progress), unbiased=spec.unbiased)

    def fit(self, game: Game, *, engine=None, chunk: int = 256) -> KernelShapley:
        n = game.n_players
        loop = self._start(game, None)
        pairs, state = _Pairs(n, self.unbiased), Estimate(n)
        ledger = Ledger(self.checkpoint, method=self.name, seed=self.seed, player_names=game.player_names,
                        every=self.checkpoint_every)
        evaluate = ledger.wrap(evaluator(game, engine, chunk))
        batch = 0
        border = 2 + 2 * (int(pairs.units[0]) if n > 1 else 0)
        if loop.remaining(state) >= border:
            ends = np.zeros((2, n), dtype=bool)
            ends[1] = True
            first = unseen_of_size(n, 1, pairs.seen[0], _canonical(n, 1)) if n > 1 else np.zeros((0, n), dtype=bool)
            values = evaluate(np.concatenate([ends, first, ~first]))
            loop.spend(border)
            pairs.y_empty, pairs.y_grand = float(values[0]), float(values[1] - values[0])
            if n > 1:
                pairs.add(0, first, values[2:])
            self._refresh(pairs, state)
            while not loop.done(state) and n > 1:
                units = self._draw(pairs, child_rng(self.seed, batch), int(min(loop.remaining(state), self.batch_size)) // 2)
                batch += 1
                if not units:
                    break
                halves = np.concatenate([h for _, h in units])
                values = evaluate(np.concatenate([halves, ~halves]))
                loop.spend(2 * halves.shape[0])
                start = 0
                for stratum, h in units:
                    k = h.shape[0]
                    pairs.add(stratum, h, np.concatenate([values[start : start + k], values[halves.shape[0] + start :][:k]]))
                    start += k
                if pairs.drawn.sum() >= (1 + REFRESH_GROWTH) * pairs.estimated_units:
                    self._refresh(pairs, state)
                ledger.batch_done(batch)
            if pairs.drawn.sum() > pairs.estimated_units:
                self._refresh(pairs, state)
        else:  # not even the border fits the budget: the equal split of v(N) - v(empty)
            if loop.remaining(state) >= 2:
                ends = np.zeros((2, n), dtype=bool)
                ends[1] = True
                values = evaluate(ends)
                loop.spend(2)
                state.mean = np.full(n, (values[1] - values[0]) / n)
        ledger.save()
        converged = loop.close(state)
        exact = bool(n == 1 and loop.n_evaluations >= 2) or bool(n > 1 and (pairs.drawn >= pairs.units).all())
        self._result = state.result(
            game, method=self.name, n_evaluations=loop.n_evaluations, converged=converged or exact, seed=self.seed,
            n_batches=batch,
            extra={
                "units_by_stratum": dict(zip(pairs.strata.tolist(), pairs.drawn.tolist(), strict=True)),
                "efficiency_gap": float(state.mean.sum() - pairs.y_grand),
                "replayed_from_checkpoint": ledger.replayed,
                "stopping": repr(loop.criterion),
            },
        )
        return self

    @staticmethod
    def _refresh(pairs: _Pairs, state: Estimate) -> None:
        state.mean, state.stderr, pairs.last_spread = pairs.estimate()
        pairs.estimated_units = int(pairs.drawn.sum())
        state.count = np.full(pairs.n, 2 * int(pairs.drawn.sum()) + 2, dtype=np.int64)

    def _draw(self, pairs: _Pairs, rng: np.random.Generator, k: int) -> list[tuple[int, NDArray[np.bool_]]]:
        """Up to ``k`` new units, as ``(stratum index, first halves)``, strata by the allocation."""
        open_ = np.flatnonzero(pairs.drawn < pairs.units)
        if k <= 0 or open_.size == 0:
            return []
        weight = pairs.weight[open_] * pairs.spreads(pairs.last_spread)[open_]
        quota = neyman_quota(weight, pairs.drawn[open_].astype(np.float64), pairs.units[open_], k)
        out, room = [], k
        for i, q in zip(open_.tolist(), quota.tolist(), strict=True):
            if q <= 0 or room <= 0:
                continue
            s = int(pairs.strata[i])
            halves = draw_stratum(pairs.n, s, q, room, pairs.drawn[i], pairs.units[i], pairs.seen[i], rng,
                                  _canonical(pairs.n, s))
            out.append((i, halves))
            room -= halves.shape[0]
        return out


def _canonical(n: int, s: int):
    """Pairs at ``s = n/2`` are represented by the half with player 0; others by size ``s``."""
    return _representative_with_player_0 if 2 * s == n else None
