"""Banzhaf values by maximum sample reuse (MSR, Wang & Jia 2023).

``beta_i = E_{S ~ U(2^N)}[v(S) | i ∈ S] - E[v(S) | i ∉ S]`` for uniformly random subsets.
Every sampled coalition updates *every* player's two means, so one evaluation informs all
``n`` estimates. Standard error: ``sqrt(var_in / m_in + var_out / m_out)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from dataprice.rng import child_rng
from dataprice.valuation.game import Game
from dataprice.valuation.methods._montecarlo import MonteCarloMethod, MonteCarloSpec
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.result import RunningMoments, ValuationResult


class _MSRMoments:
    """Moments of v(S) over samples with i in S and with i not in S, for each player i."""

    def __init__(self, n: int) -> None:
        self.inside = RunningMoments(n)
        self.outside = RunningMoments(n)

    def update(self, coalitions: np.ndarray, values: np.ndarray) -> None:
        for i in range(coalitions.shape[1]):
            member = coalitions[:, i]
            self.inside.update(i, values[member])
            self.outside.update(i, values[~member])

    @property
    def mean(self) -> np.ndarray:
        return self.inside.mean - self.outside.mean

    @property
    def count(self) -> np.ndarray:
        return np.minimum(self.inside.count, self.outside.count)

    @property
    def stderr(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(
                self.inside.variance / self.inside.count + self.outside.variance / self.outside.count
            )
        return np.where(self.count > 1, se, np.inf)

    def to_extra(self) -> dict:
        return {
            side: {"count": m.count.tolist(), "mean": m.mean.tolist(), "m2": m.m2.tolist()}
            for side, m in (("inside", self.inside), ("outside", self.outside))
        }

    @classmethod
    def from_extra(cls, n: int, extra: dict) -> _MSRMoments:
        moments = cls(n)
        for side in ("inside", "outside"):
            m = getattr(moments, side)
            m.count = np.asarray(extra[side]["count"], dtype=np.int64)
            m.mean = np.asarray(extra[side]["mean"], dtype=np.float64)
            m.m2 = np.asarray(extra[side]["m2"], dtype=np.float64)
        return moments


class MSRBanzhafSpec(MonteCarloSpec):
    method: Literal["msr_banzhaf"]


@register_method
class MSRBanzhaf(MonteCarloMethod):
    """Monte Carlo Banzhaf values with maximum sample reuse.

    Args:
        stopping, max_evaluations: as for :class:`PermutationShapley`.
        batch_size: coalitions sampled per batch (one game call).
        seed: seed of the samples.
        progress: show a progress bar.
    """

    name = "msr_banzhaf"
    estimates = "banzhaf"
    Spec: ClassVar[type[MethodSpec]] = MSRBanzhafSpec

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> MSRBanzhaf:
        return cls(**spec.sampling_options(seed, progress))

    default_batch_size = 256

    def fit(
        self, game: Game, *, resume_from: ValuationResult | None = None, engine=None, window: int | None = None,
    ) -> MSRBanzhaf:
        """Estimate values; with ``engine``, batches are evaluated there (up to ``window``,
        default 4, in flight) and folded in batch order by the loop the in-process run uses
        (:meth:`MonteCarloMethod._run_batches`): values, variances, counts,
        ``n_evaluations`` and ``n_batches`` are identical to the in-process run's, for any
        engine, window and number of workers."""
        resume_from = self._load_checkpoint(resume_from)
        n = game.n_players
        loop = self._start(game, resume_from)
        if resume_from is not None:
            moments = _MSRMoments.from_extra(n, resume_from.extra["msr_moments"])
            batch_index = resume_from.n_batches
        else:
            moments, batch_index = _MSRMoments(n), 0
        shipped = game if engine is None else engine.put(game)

        def fold(result, k: int) -> int:
            coalitions, values = result
            moments.update(coalitions[:k], values[:k])
            return k

        batch_index = self._run_batches(
            loop, moments, batch_index, 1, 1, _msr_batch, (self.seed, shipped), fold,
            snapshot=lambda b: self._make_result(game, moments, loop, b, False),
            engine=engine, window=window,
        )
        extra = {}
        if engine is not None:
            name = getattr(engine, "name", type(engine).__name__)
            extra = {"engine": name, "window": window or 4}
        converged = loop.close(moments)
        self._result = self._make_result(game, moments, loop, batch_index, converged, **extra)
        self._write_checkpoint(self._result)
        return self

    def _make_result(self, game, moments, loop, batch_index, converged, **extra) -> ValuationResult:
        counts = moments.count
        stderr = moments.stderr
        with np.errstate(invalid="ignore", over="ignore"):
            variances = np.where(np.isfinite(stderr), stderr**2 * counts, 0.0)
        return ValuationResult(
            values=moments.mean,
            variances=variances,
            counts=counts,
            player_names=game.player_names,
            method=self.name,
            n_evaluations=loop.n_evaluations,
            converged=converged,
            seed=self.seed,
            n_batches=batch_index,
            extra={"msr_moments": moments.to_extra(), "stopping": repr(loop.criterion), **extra},
        )


def _msr_batch(seed, game: Game, batch: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``batch``: ``k`` uniform coalitions from stream ``(seed, batch)`` and their values.

    Coalition ``i`` is row ``i`` of ``random((k, n)) < 0.5``, so the first coalitions of a
    larger batch are the coalitions of a smaller one."""
    coalitions = child_rng(seed, batch).random((k, game.n_players)) < 0.5
    return coalitions, game(coalitions)
