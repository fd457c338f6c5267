"""Permutation sampling Shapley with truncation (TMC-Shapley, Ghorbani & Zou 2019).

``phi_i = E_pi [ v(P_i^pi ∪ {i}) - v(P_i^pi) ]`` where ``P_i^pi`` are the players before
``i`` in a uniformly random permutation ``pi``. Each permutation yields one marginal
contribution per player, so ``phi`` is a mean of i.i.d. samples and its standard error is
``sqrt(var / m)`` after ``m`` permutations.

Truncation: once a prefix's value is within ``truncation_rtol * |v(N)|`` of ``v(N)``, the
remaining marginals of that permutation are taken as 0 and not evaluated (this biases
values slightly towards early players; ``truncation_rtol=0`` disables it).

Prefixes are evaluated in blocks across a batch of permutations, so each call to the game
holds many coalitions (the batched contract), and truncation is checked after each block.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from dataprice.rng import child_rng
from dataprice.valuation.game import Game
from dataprice.valuation.methods._montecarlo import MonteCarloMethod, MonteCarloSpec, affordable
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.result import RunningMoments, ValuationResult
from dataprice.valuation.stopping import StoppingCriterion

#: Relative tolerance of the truncation rule (0: exact marginals).
Truncation = Annotated[float, Field(ge=0.0, le=1.0)]


class TMCShapleySpec(MonteCarloSpec):
    method: Literal["tmc_shapley"]
    truncation_rtol: Truncation = 0.0
    paired: bool = False  # each permutation with its reverse (antithetic sampling)


@register_method
class PermutationShapley(MonteCarloMethod):
    """Monte Carlo Shapley values from random permutations, with optional truncation.

    Args:
        stopping: when to stop (``StandardErrorBelow(...) | MaxEvaluations(...)``...).
        max_evaluations: shorthand for ``| MaxEvaluations(max_evaluations)``.
        batch_size: permutations per batch (each batch draws from its own seed stream).
        truncation_rtol: relative tolerance of the truncation rule (0 = exact marginals).
        paired: antithetic sampling: a unit is a permutation and its reverse, whose
            marginals are averaged (``2 (n - 1)`` evaluations). A player early in one is late
            in the other, so for games whose marginals shrink with the coalition the two
            are negatively correlated and the pair's mean varies less than two independent
            permutations' (Mitchell et al. 2022, "Sampling permutations for Shapley value
            estimation"). Still unbiased: each of the two is a uniform permutation.
        block_size: prefix positions evaluated per game call when truncating.
        seed: seed of the permutations; the same seed gives the same values.
        progress: show a progress bar.
        checkpoint: file where the estimate is saved every ``checkpoint_every`` batches; a
            run started with an existing checkpoint file continues from it.
    """

    name = "tmc_shapley"
    Spec: ClassVar[type[MethodSpec]] = TMCShapleySpec

    def __init__(
        self,
        *,
        stopping: StoppingCriterion | None = None,
        max_evaluations: int | None = None,
        batch_size: int = 16,
        truncation_rtol: float = 0.0,
        paired: bool = False,
        block_size: int | None = None,
        seed: int | None = 0,
        progress: bool = False,
        checkpoint: str | None = None,
        checkpoint_every: int = 10,
    ) -> None:
        super().__init__(
            stopping=stopping, max_evaluations=max_evaluations, batch_size=batch_size, seed=seed, progress=progress,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
        )
        self.truncation_rtol = truncation_rtol
        self.paired = paired
        self.block_size = block_size

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> PermutationShapley:
        return cls(**spec.sampling_options(seed, progress), truncation_rtol=spec.truncation_rtol, paired=spec.paired)

    def fit(
        self, game: Game, *, resume_from: ValuationResult | None = None, engine=None, window: int | None = None,
    ) -> PermutationShapley:
        """Estimate values; with ``resume_from``, continue that run on the same seed stream.

        Batch ``b`` always draws from the child stream ``(seed, b)``, so a run resumed after
        whole batches gives exactly the values of one uninterrupted run with the larger
        budget (a budget that cut the last batch short ends that batch's stream early).

        With ``engine``, batches of permutations are evaluated there, up to ``window``
        (default 4) in flight, and folded in batch order by the loop the in-process run
        uses (:meth:`MonteCarloMethod._run_batches`): values, variances, counts,
        ``n_evaluations`` and ``n_batches`` are identical to the in-process run's, with or
        without truncation, for any engine, window and number of workers.
        """
        resume_from = self._load_checkpoint(resume_from)
        n = game.n_players
        if n == 1:  # one player: phi = v(N) - v(empty) exactly (a permutation has no prefix to sample)
            v_empty, v_full = game(np.array([[False], [True]])).tolist()
            self._result = ValuationResult.exact([v_full - v_empty], game.player_names, self.name, 2)
            self._result.seed = self.seed
            return self
        loop = self._start(game, resume_from)
        moments, next_batch, truncated, v_empty, v_full = _resume_state(n, resume_from)
        per_permutation = max(n - 1, 1) * (2 if self.paired else 1)  # prefixes of sizes 1..n-1 (v(empty), v(N) shared)
        # v(empty) and v(N) are evaluated once, before the first batch, if it fits the budget
        if v_full is None and not loop.done(moments) and (
            affordable(loop.remaining(moments) - 2, per_permutation, self.batch_size) > 0
        ):
            ends = np.zeros((2, n), dtype=bool)
            ends[1] = True
            v_empty, v_full = game(ends).tolist()
            loop.spend(2)
        saved_total = [truncated]
        if v_full is not None:
            shipped = game if engine is None else engine.put(game)

            def fold(result, k: int) -> int:
                marginals, row_evaluations = result
                used = int(row_evaluations[:k].sum())
                saved_total[0] += k * per_permutation - used
                moments.update_all(marginals[:k])
                return used

            next_batch = self._run_batches(
                loop, moments, next_batch, per_permutation, self._least_evaluations(n),
                _permutation_batch, (self, shipped, v_empty, v_full), fold,
                snapshot=lambda b: self._make_result(
                    game, moments, loop, b, saved_total[0], v_empty, v_full, False
                ),
                engine=engine, window=window,
            )
        extra = {}
        if engine is not None:
            name = getattr(engine, "name", type(engine).__name__)
            extra = {"engine": name, "window": window or 4}
        converged = loop.close(moments)
        self._result = self._make_result(
            game, moments, loop, next_batch, saved_total[0], v_empty, v_full, converged, **extra
        )
        self._write_checkpoint(self._result)
        return self

    def _least_evaluations(self, n: int) -> int:
        """The fewest evaluations one permutation can use: its first block of prefixes when
        truncating (a permutation is never truncated before it), else all ``n - 1``."""
        pair = 2 if self.paired else 1
        if self.truncation_rtol <= 0:
            return max(n - 1, 0) * pair
        block = self.block_size or max(1, int(np.ceil(n / 4)))
        return min(block, max(n - 1, 0)) * pair

    def _make_result(
        self, game, moments, loop, batch_index, truncated, v_empty, v_full, converged, **extra
    ) -> ValuationResult:
        return ValuationResult(
            values=moments.mean.copy(),
            variances=moments.variance.copy(),
            counts=moments.count.copy(),
            player_names=game.player_names,
            method=self.name,
            n_evaluations=loop.n_evaluations,
            converged=converged,
            seed=self.seed,
            n_batches=batch_index,
            extra={
                "truncation_rtol": self.truncation_rtol,
                "paired": self.paired,
                "truncated_evaluations_saved": truncated,
                "v_empty": v_empty,
                "v_full": v_full,
                "stopping": repr(loop.criterion),
                **extra,
            },
        )

    def _draw_permutations(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        """``k`` uniformly random permutations of ``n`` players, shape ``(k, n)``.

        Permutation ``i`` is the argsort of row ``i`` of ``rng.random((k, n))``, so the
        first ``k`` permutations drawn for a larger ``k`` are these (what lets an engine run
        cut a batch submitted ahead to the size the in-process run gives it).
        """
        return np.argsort(rng.random((k, n)), axis=1)

    def _batch(self, game: Game, perms: np.ndarray, v_empty: float, v_full: float):
        """Marginals of the units in ``perms``: with ``paired``, the mean of each permutation's
        marginals and its reverse's, and the evaluations of both (see :meth:`_marginals`)."""
        if not self.paired:
            return self._marginals(game, perms, v_empty, v_full)
        k = perms.shape[0]
        marginals, row_evaluations = self._marginals(game, np.concatenate([perms, perms[:, ::-1]]), v_empty, v_full)
        return 0.5 * (marginals[:k] + marginals[k:]), row_evaluations[:k] + row_evaluations[k:]

    def _marginals(self, game: Game, perms: np.ndarray, v_empty: float, v_full: float):
        """Marginals ``(k, n)`` by player for the permutations ``perms``, and the evaluations
        each permutation used (``n - 1``, or with truncation the sizes of the blocks of
        prefixes it was still active in). Row ``i`` depends on ``perms[i]`` only."""
        k, n = perms.shape
        prefix_values = np.empty((k, n + 1))
        prefix_values[:, 0] = v_empty
        prefix_values[:, n] = v_full
        # membership[p, pos, j]: player j is among the first pos players of permutation p
        positions = np.empty((k, n), dtype=np.int64)
        positions[np.arange(k)[:, None], perms] = np.arange(n)
        if self.truncation_rtol <= 0:
            sizes = np.arange(1, n)
            coalitions = positions[:, None, :] < sizes[None, :, None]
            if n > 1:
                prefix_values[:, 1:n] = game(coalitions.reshape(-1, n)).reshape(k, n - 1)
            row_evaluations = np.full(k, n - 1, dtype=np.int64)
        else:
            tol = self.truncation_rtol * max(abs(v_full), 1e-12)
            block = self.block_size or max(1, int(np.ceil(n / 4)))
            active = np.ones(k, dtype=bool)
            row_evaluations = np.zeros(k, dtype=np.int64)
            truncated_at = np.full(k, n, dtype=np.int64)
            for start in range(1, n, block):
                stop = min(start + block, n)
                rows = np.flatnonzero(active)
                if rows.size == 0:
                    break
                sizes = np.arange(start, stop)
                coalitions = positions[rows, None, :] < sizes[None, :, None]
                vals = game(coalitions.reshape(-1, n)).reshape(rows.size, sizes.size)
                row_evaluations[rows] += sizes.size
                prefix_values[rows, start:stop] = vals
                close = np.abs(v_full - vals) <= tol
                hit = np.flatnonzero(close.any(axis=1))
                truncated_at[rows[hit]] = start + np.argmax(close[hit], axis=1)
                active[rows[hit]] = False
            for row in range(k):
                t = truncated_at[row]
                if t < n:
                    prefix_values[row, t + 1 : n + 1] = prefix_values[row, t]
        by_position = np.diff(prefix_values, axis=1)  # marginal of the player at each position
        marginals = np.take_along_axis(by_position, positions, axis=1)
        return marginals, row_evaluations


def _permutation_batch(
    method: PermutationShapley, game: Game, v_empty: float, v_full: float, batch: int, k: int
):
    """Batch ``batch``: ``k`` permutations from stream ``(seed, batch)``, their marginals
    and the evaluations each used (here or on a worker)."""
    perms = method._draw_permutations(child_rng(method.seed, batch), k, game.n_players)
    return method._batch(game, perms, v_empty, v_full)


def _resume_state(n: int, previous: ValuationResult | None):
    """``(moments, next batch, truncated evaluations, v(empty), v(N))`` to start or continue from."""
    if previous is None:
        return RunningMoments(n), 0, 0, None, None
    return (
        RunningMoments.from_result(previous),
        previous.n_batches,
        int(previous.extra.get("truncated_evaluations_saved", 0)),
        previous.extra.get("v_empty"),
        previous.extra.get("v_full"),
    )
