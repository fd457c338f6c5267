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

import numpy as np

from dataprice.rng import child_rng
from dataprice.valuation.game import Game
from dataprice.valuation.methods._montecarlo import MonteCarloMethod, affordable
from dataprice.valuation.result import RunningMoments, ValuationResult
from dataprice.valuation.stopping import StoppingCriterion


class PermutationShapley(MonteCarloMethod):
    """Monte Carlo Shapley values from random permutations, with optional truncation.

    Args:
        stopping: when to stop (``StandardErrorBelow(...) | MaxEvaluations(...)``...).
        max_evaluations: shorthand for ``| MaxEvaluations(max_evaluations)``.
        batch_size: permutations per batch (each batch draws from its own seed stream).
        truncation_rtol: relative tolerance of the truncation rule (0 = exact marginals).
        block_size: prefix positions evaluated per game call when truncating.
        seed: seed of the permutations; the same seed gives the same values.
        progress: show a progress bar.
        checkpoint: file where the estimate is saved every ``checkpoint_every`` batches; a
            run started with an existing checkpoint file continues from it.
    """

    name = "tmc_shapley"

    def __init__(
        self,
        *,
        stopping: StoppingCriterion | None = None,
        max_evaluations: int | None = None,
        batch_size: int = 16,
        truncation_rtol: float = 0.0,
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
        self.block_size = block_size

    def fit(
        self, game: Game, *, resume_from: ValuationResult | None = None, engine=None, window: int | None = None,
    ) -> PermutationShapley:
        """Estimate values; with ``resume_from``, continue that run on the same seed stream.

        Batch ``b`` always draws from the child stream ``(seed, b)``, so a run resumed after
        whole batches gives exactly the values of one uninterrupted run with the larger
        budget (a budget that cut the last batch short ends that batch's stream early).
        """
        resume_from = self._load_checkpoint(resume_from)
        if engine is not None:
            return self._fit_on_engine(game, engine, window, resume_from)
        n = game.n_players
        loop = self._start(game, resume_from)
        moments, batch_index, truncated, v_empty, v_full = _resume_state(n, resume_from)
        per_permutation = max(n - 1, 1)  # prefixes of sizes 1..n-1 (v(empty), v(N) shared)

        while not loop.done(moments):
            reserve = 0 if v_full is not None else 2
            k = affordable(loop.remaining(moments) - reserve, per_permutation, self.batch_size)
            if k <= 0:
                break
            if v_full is None:
                ends = np.zeros((2, n), dtype=bool)
                ends[1] = True
                v_empty, v_full = game(ends).tolist()
                loop.spend(2)
            rng = child_rng(self.seed, batch_index)
            perms = self._draw_permutations(rng, k, n)
            marginals, used, saved = self._batch(game, perms, v_empty, v_full)
            loop.spend(used)
            truncated += saved
            moments.update_all(marginals)
            batch_index += 1
            if self._checkpoint_due(batch_index):
                self._write_checkpoint(
                    self._make_result(game, moments, loop, batch_index, truncated, v_empty, v_full, False)
                )

        converged = loop.close(moments)
        self._result = self._make_result(game, moments, loop, batch_index, truncated, v_empty, v_full, converged)
        self._write_checkpoint(self._result)
        return self

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
                "truncated_evaluations_saved": truncated,
                "v_empty": v_empty,
                "v_full": v_full,
                "stopping": repr(loop.criterion),
                **extra,
            },
        )

    def _fit_on_engine(self, game: Game, engine, window: int | None, resume_from) -> PermutationShapley:
        """Batches of permutations on ``engine``, folded in batch order
        (:meth:`MonteCarloMethod._run_on_engine`): the same values as in-process. With
        truncation a batch usually spends less than its reservation of ``k (n - 1)``
        evaluations, so an engine run can stop below ``max_evaluations``.
        """
        n = game.n_players
        window = window or 4
        loop = self._start(game, resume_from)
        moments, next_batch, truncated, v_empty, v_full = _resume_state(n, resume_from)
        if v_full is None:
            ends = np.zeros((2, n), dtype=bool)
            ends[1] = True
            v_empty, v_full = game(ends).tolist()
            loop.spend(2)
        shipped = engine.put(game)
        saved_total = [truncated]

        def fold(result) -> tuple[int, int]:
            marginals, used, saved = result
            saved_total[0] += saved
            moments.update_all(marginals)
            return marginals.shape[0], used

        folded = self._run_on_engine(
            engine, window, loop, moments, next_batch, max(n - 1, 1),
            submit=lambda b, k: engine.submit(_permutation_batch, self, shipped, b, k, v_empty, v_full),
            fold=fold,
            snapshot=lambda b: self._make_result(game, moments, loop, b, saved_total[0], v_empty, v_full, False),
        )
        truncated = saved_total[0]
        converged = loop.close(moments)
        self._result = self._make_result(
            game, moments, loop, folded, truncated, v_empty, v_full, converged,
            engine=getattr(engine, "name", type(engine).__name__), window=window,
        )
        self._write_checkpoint(self._result)
        return self

    def _draw_permutations(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        """``k`` uniformly random permutations of ``n`` players, shape ``(k, n)``."""
        return np.argsort(rng.random((k, n)), axis=1)

    def _batch(self, game: Game, perms: np.ndarray, v_empty: float, v_full: float):
        """Marginals ``(k, n)`` by player for the permutations ``perms``; evaluations used."""
        k, n = perms.shape
        prefix_values = np.empty((k, n + 1))
        prefix_values[:, 0] = v_empty
        prefix_values[:, n] = v_full
        # membership[p, pos, j]: player j is among the first pos players of permutation p
        positions = np.empty((k, n), dtype=np.int64)
        positions[np.arange(k)[:, None], perms] = np.arange(n)
        used = 0
        if self.truncation_rtol <= 0:
            sizes = np.arange(1, n)
            coalitions = positions[:, None, :] < sizes[None, :, None]
            if n > 1:
                prefix_values[:, 1:n] = game(coalitions.reshape(-1, n)).reshape(k, n - 1)
            used = k * (n - 1)
            saved = 0
        else:
            tol = self.truncation_rtol * max(abs(v_full), 1e-12)
            block = self.block_size or max(1, int(np.ceil(n / 4)))
            active = np.ones(k, dtype=bool)
            truncated_at = np.full(k, n, dtype=np.int64)
            for start in range(1, n, block):
                stop = min(start + block, n)
                rows = np.flatnonzero(active)
                if rows.size == 0:
                    break
                sizes = np.arange(start, stop)
                coalitions = positions[rows, None, :] < sizes[None, :, None]
                vals = game(coalitions.reshape(-1, n)).reshape(rows.size, sizes.size)
                used += vals.size
                prefix_values[rows, start:stop] = vals
                close = np.abs(v_full - vals) <= tol
                hit = np.flatnonzero(close.any(axis=1))
                truncated_at[rows[hit]] = start + np.argmax(close[hit], axis=1)
                active[rows[hit]] = False
            for row in range(k):
                t = truncated_at[row]
                if t < n:
                    prefix_values[row, t + 1 : n + 1] = prefix_values[row, t]
            saved = k * (n - 1) - used
        by_position = np.diff(prefix_values, axis=1)  # marginal of the player at each position
        marginals = np.take_along_axis(by_position, positions, axis=1)
        return marginals, used, saved



def _permutation_batch(method: PermutationShapley, game: Game, batch: int, k: int, v_empty: float, v_full: float):
    """One batch on a worker: ``k`` permutations from stream ``(seed, batch)``."""
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
