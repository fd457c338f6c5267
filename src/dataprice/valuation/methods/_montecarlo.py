"""Shared loop of the Monte Carlo methods: batches, stopping, budget, progress, resume."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from dataprice.progress import progress as progress_display
from dataprice.specs import PositiveFloat, within
from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import (
    EstimationState,
    MaxEvaluations,
    MaxTime,
    StandardErrorBelow,
    StoppingCriterion,
)


class MonteCarloSpec(MethodSpec):
    """The budget of a sampling method: evaluations, a standard error to reach, a time limit
    (any that is set stops the run; none set: ``200 n^2`` evaluations or 1% relative
    error), and the batch size."""

    max_evaluations: Annotated[int, within(1, 1_000_000_000)] | None = None
    stderr: PositiveFloat | None = None  # stop when every value's stderr is below this
    max_seconds: Annotated[float, Field(gt=0.0, le=1e7)] | None = None
    batch_size: Annotated[int, within(1, 100_000)] | None = None

    def stopping(self) -> StoppingCriterion | None:
        """The stopping rule of ``stderr`` and ``max_seconds`` (the budget is separate)."""
        stopping: StoppingCriterion | None = None
        if self.stderr is not None:
            stopping = StandardErrorBelow(self.stderr)
        if self.max_seconds is not None:
            stopping = MaxTime(self.max_seconds) if stopping is None else stopping | MaxTime(self.max_seconds)
        return stopping

    def sampling_options(self, seed: int, progress: bool) -> dict[str, Any]:
        """The keyword arguments of :class:`MonteCarloMethod` this entry asks for."""
        options: dict[str, Any] = {
            "stopping": self.stopping(), "max_evaluations": self.max_evaluations, "seed": seed, "progress": progress,
        }
        if self.batch_size is not None:
            options["batch_size"] = self.batch_size
        return options


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
        self.bar = progress_display(desc=desc, unit="eval", enabled=progress, initial=n_evaluations, leave=False)

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


class _Done:
    """A completed future for work run in this process."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def result(self) -> Any:
        return self._result

    def cancel(self) -> bool:
        return False


def affordable(remaining: float, cost_each: int, wanted: int) -> int:
    """How many units of ``cost_each`` evaluations fit in ``remaining`` (at most ``wanted``)."""
    if math.isinf(remaining):
        return wanted
    return int(min(wanted, remaining // max(cost_each, 1)))


class MonteCarloMethod(ValuationMethod):
    """Shared configuration of sampling methods: stopping, budget, batch size, seed, progress.

    Batch ``b`` of a run draws from the child stream ``(seed, b)`` (see :mod:`dataprice.rng`),
    and a result records how many batches it drew, so ``fit(game, resume_from=result)``
    continues the same stream. In-process and engine runs share one loop
    (:meth:`_run_batches`) and give identical results for the same seed.
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

    def _run_batches(
        self,
        loop: SamplingLoop,
        moments,
        first_batch: int,
        cost_each: int,
        min_cost_each: int,
        batch: Callable[..., Any],
        args: tuple,
        fold: Callable[[Any, int], int],
        snapshot: Callable[[int], ValuationResult],
        engine=None,
        window: int | None = None,
    ) -> int:
        """Run batches ``first_batch, first_batch + 1, ...`` here or on ``engine``; return
        the next batch index. Both ways run this one loop, so they give the same result.

        Batch ``b`` has the size the budget gives it once the batches before it are folded:
        ``k_b = min(batch_size, floor(remaining_b / cost_each))``, where ``remaining_b`` is
        the budget left after batches ``< b`` and ``cost_each`` the most evaluations one unit
        (permutation, coalition) can use. The run stops before batch ``b`` when the stopping
        rule is met or ``k_b <= 0``. ``batch(*args, b, K)`` computes ``K`` units from the child
        stream ``(seed, b)`` and returns them unit by unit; ``fold(result, k)`` folds the first
        ``k`` units into ``moments`` and returns the evaluations those ``k`` units used.

        Without an engine each batch is computed here at its size ``k_b``. On an engine up
        to ``window`` batches (default 4) are in flight: batch ``b`` is submitted before the
        batches ahead of it are folded, at a size ``K_b >= k_b`` bounded by the budget left
        after the least the batches in flight can spend (``min_cost_each`` evaluations per
        unit, at least one unit each); without truncation ``min_cost_each = cost_each``
        and ``K_b = k_b``. Batches are folded strictly in order, each cut to its first ``k_b``
        units. A sampler draws unit ``i`` of batch ``b`` from row ``i`` of the stream's
        ``random((K, n))`` and a unit's marginals depend on its own draws only, so the first
        ``k_b`` units of a batch of ``K`` are the batch of ``k_b``: values, variances, counts,
        ``n_evaluations`` and ``n_batches`` do not depend on the engine, the number of
        workers or ``window`` (for a game that honours its contract: the same coalition has
        the same value in whatever batch it comes). Should a bound fail (a criterion whose
        remaining budget is not a count of evaluations), batch ``b`` is computed again at
        ``k_b``. Batches in flight when the run stops are cancelled (their evaluations,
        done on the workers, are not counted: ``n_evaluations`` counts folded units only).
        ``snapshot(next_batch)`` is the result written at checkpoints.
        """
        window = 1 if engine is None else window or 4

        def run(b: int, size: int):
            if engine is None:
                return _Done(batch(*args, b, size))
            return engine.submit(batch, *args, b, size)

        pending: dict[int, tuple[int, Any]] = {}  # batch -> (size submitted, future)
        next_batch = folded = first_batch
        try:
            while not loop.done(moments):
                remaining = loop.remaining(moments)
                k = affordable(remaining, cost_each, self.batch_size)
                if k <= 0:
                    break
                while len(pending) < window:
                    in_flight = [size for size, _ in pending.values()]
                    size = self._speculative_size(remaining, in_flight, cost_each, min_cost_each)
                    if size <= 0:
                        break
                    pending[next_batch] = (size, run(next_batch, size))
                    next_batch += 1
                size, future = pending.pop(folded)  # with nothing ahead of it, submitted at k
                result = future.result()
                if size < k:
                    result = run(folded, k).result()
                loop.spend(fold(result, k))
                folded += 1
                if self._checkpoint_due(folded):
                    self._write_checkpoint(snapshot(folded))
        finally:
            for _, future in pending.values():
                future.cancel()
        return folded

    def _speculative_size(
        self, remaining: float, in_flight: list[int], cost_each: int, min_cost_each: int
    ) -> int:
        """An upper bound on the size of the batch after ``in_flight`` (sizes submitted).

        ``remaining`` is the budget before the first batch in flight. Interval arithmetic on
        the budget left before each batch: batch ``j`` folds ``k_j`` units with
        ``max(1, k(lo_j)) <= k_j <= min(K_j, k(hi_j))`` (it is folded only if ``k_j > 0``),
        spending between ``k_j * min_cost_each`` and ``k_j * cost_each`` evaluations.
        """
        hi = lo = remaining
        for submitted in in_flight:
            fewest = max(affordable(lo, cost_each, self.batch_size), 1)
            most = min(submitted, max(affordable(hi, cost_each, self.batch_size), 0))
            hi -= fewest * min_cost_each
            lo -= most * cost_each
        return affordable(hi, cost_each, self.batch_size)

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
