"""Shared loop of the Monte Carlo methods: batches, stopping, budget, progress, resume."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import ValuationMethod
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import (
    EstimationState,
    MaxEvaluations,
    StandardErrorBelow,
    StoppingCriterion,
)


def default_stopping(
    stopping: StoppingCriterion | None, max_evaluations: int | None, n_players: int
) -> StoppingCriterion:
    """The criterion a method uses: the one given, else a budget of evaluations.

    With neither, the default is ``MaxEvaluations(200 n^2)`` OR a relative standard error
    of 1%, so an unconfigured method always terminates.
    """
    if stopping is not None and max_evaluations is not None:
        return stopping | MaxEvaluations(max_evaluations)
    if stopping is not None:
        return stopping
    budget = max_evaluations if max_evaluations is not None else 200 * n_players**2
    crit: StoppingCriterion = MaxEvaluations(budget)
    if max_evaluations is None:
        crit = crit | StandardErrorBelow(0.01, relative=True, min_samples=30)
    return crit


class SamplingLoop:
    """Tracks spent budget and time; asks the criterion whether to go on."""

    def __init__(self, criterion: StoppingCriterion, n_evaluations: int, progress: bool, desc: str):
        self.criterion = criterion
        self.n_evaluations = n_evaluations
        self.started_at = time.monotonic()
        self.bar = tqdm(desc=desc, unit="eval", disable=not progress, initial=n_evaluations, leave=False)

    def state(self, moments) -> EstimationState:
        return EstimationState(
            stderr=moments.stderr,
            counts=moments.count,
            n_evaluations=self.n_evaluations,
            started_at=self.started_at,
            values=moments.mean,
        )

    def remaining(self, moments) -> float:
        return self.criterion.remaining_evaluations(self.state(moments))

    def done(self, moments) -> bool:
        return bool(self.criterion(self.state(moments)))

    def spend(self, k: int) -> None:
        self.n_evaluations += k
        self.bar.update(k)

    def close(self, moments) -> bool:
        """Close the bar; return whether the estimate converged."""
        self.bar.close()
        return bool(self.criterion.converged(self.state(moments)))


def affordable(remaining: float, cost_each: int, wanted: int) -> int:
    """How many units of ``cost_each`` evaluations fit in ``remaining`` (at most ``wanted``)."""
    if math.isinf(remaining):
        return wanted
    return int(min(wanted, remaining // max(cost_each, 1)))


class MonteCarloMethod(ValuationMethod):
    """Shared configuration of sampling methods: stopping, budget, batch size, seed, progress.

    Batch ``b`` of a run draws from the child stream ``(seed, b)`` (see :mod:`dataprice.rng`),
    and a result records how many batches it drew, so ``fit(game, resume_from=result)``
    continues the same stream.
    """

    default_batch_size: int = 16

    def __init__(
        self,
        *,
        stopping: StoppingCriterion | None = None,
        max_evaluations: int | None = None,
        batch_size: int | None = None,
        seed: int | None = 0,
        progress: bool = False,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 10,
    ) -> None:
        super().__init__()
        self.stopping = stopping
        self.max_evaluations = max_evaluations
        self.batch_size = batch_size or self.default_batch_size
        self.seed = seed
        self.progress = progress
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = checkpoint_every

    def _load_checkpoint(self, resume_from: ValuationResult | None) -> ValuationResult | None:
        """A run with a checkpoint file resumes from it (an explicit ``resume_from`` wins)."""
        if resume_from is None and self.checkpoint is not None and self.checkpoint.is_file():
            return ValuationResult.load(self.checkpoint)
        return resume_from

    def _checkpoint_due(self, batch_index: int) -> bool:
        """True every ``checkpoint_every`` batches when a checkpoint file is set."""
        return self.checkpoint is not None and batch_index % self.checkpoint_every == 0

    def _write_checkpoint(self, result: ValuationResult) -> None:
        """Write ``result`` to the checkpoint file atomically (no-op without a file)."""
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        result.save(tmp)
        os.replace(tmp, self.checkpoint)

    def _run_on_engine(
        self,
        engine,
        window: int,
        loop: SamplingLoop,
        moments,
        first_batch: int,
        cost_each: int,
        submit: Callable[[int, int], Any],
        fold: Callable[[Any], tuple[int, int]],
        snapshot: Callable[[int], ValuationResult],
    ) -> int:
        """Run batches ``first_batch, first_batch + 1, ...`` on ``engine``; return the next
        batch index.

        Up to ``window`` batches are in flight. Batch ``b``'s size ``k`` is fixed when it is
        submitted (``submit(b, k)`` returns a future), from the budget with every earlier
        batch counted at its worst case of ``cost_each`` evaluations per unit; results are
        folded strictly in batch order (``fold(result) -> (k, evaluations used)``) and the
        stopping rule is checked after each, so values do not depend on the engine, the
        number of workers or ``window``. Batches still in flight when the rule stops the
        run are cancelled. ``snapshot(next_batch)`` is the result written at checkpoints.
        """
        pending: dict[int, Any] = {}
        next_batch = folded = first_batch
        reserved = loop.n_evaluations
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    remaining = loop.remaining(moments) - (reserved - loop.n_evaluations)
                    k = affordable(remaining, cost_each, self.batch_size)
                    if k <= 0:
                        exhausted = True
                        break
                    pending[next_batch] = submit(next_batch, k)
                    reserved += k * cost_each
                    next_batch += 1
                if folded not in pending:
                    break
                k, used = fold(pending.pop(folded).result())
                reserved -= k * cost_each - used
                loop.spend(used)
                folded += 1
                if self._checkpoint_due(folded):
                    self._write_checkpoint(snapshot(folded))
                if loop.done(moments):
                    break
        finally:
            for future in pending.values():
                future.cancel()
        return folded

    def _start(self, game: Game, resume_from: ValuationResult | None) -> SamplingLoop:
        """The sampling loop, with the budget already spent by ``resume_from`` counted."""
        criterion = default_stopping(self.stopping, self.max_evaluations, game.n_players)
        spent = 0
        if resume_from is not None:
            if resume_from.method != self.name:
                raise ValueError(f"cannot resume {self.name} from a {resume_from.method} result")
            if resume_from.player_names != game.player_names:
                raise ValueError("cannot resume: the result is over different players than the game")
            spent = resume_from.n_evaluations
        return SamplingLoop(criterion, spent, self.progress, self.name)
