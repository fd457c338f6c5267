"""Composable stopping criteria for Monte Carlo valuation (combine with ``|`` and ``&``).

A criterion looks at the state of a running estimation and says whether to stop. The
budget criteria also tell the sampler how much it may still spend, so a batch never
overshoots ``MaxEvaluations`` (the budget is respected exactly, not approximately).

    stop = StandardErrorBelow(0.01) | MaxEvaluations(20_000) | MaxTime(60)
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass
class EstimationState:
    """What a criterion may look at: per-player stderr and counts, budget spent, clock."""

    stderr: np.ndarray
    counts: np.ndarray
    n_evaluations: int
    started_at: float
    values: np.ndarray | None = None


class StoppingCriterion(ABC):
    """Base class: ``criterion(state) -> bool`` (True means stop)."""

    #: True when reaching this criterion means the estimate converged (not a budget cut).
    means_convergence: bool = False

    @abstractmethod
    def __call__(self, state: EstimationState) -> bool: ...

    def remaining_evaluations(self, state: EstimationState) -> float:
        """Evaluations still allowed (``inf`` when this criterion sets no budget)."""
        return math.inf

    def converged(self, state: EstimationState) -> bool:
        """True when this criterion stops because the estimate converged."""
        return self.means_convergence and self(state)

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _Any(self, other)

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _All(self, other)


class _Any(StoppingCriterion):
    def __init__(self, *parts: StoppingCriterion) -> None:
        self.parts = parts

    def __call__(self, state: EstimationState) -> bool:
        return any(p(state) for p in self.parts)

    def remaining_evaluations(self, state: EstimationState) -> float:
        return min(p.remaining_evaluations(state) for p in self.parts)

    def converged(self, state: EstimationState) -> bool:
        return any(p.converged(state) for p in self.parts)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.parts))


class _All(StoppingCriterion):
    def __init__(self, *parts: StoppingCriterion) -> None:
        self.parts = parts

    def __call__(self, state: EstimationState) -> bool:
        return all(p(state) for p in self.parts)

    def remaining_evaluations(self, state: EstimationState) -> float:
        # stopping needs every part; the budget that binds is the largest one
        return max(p.remaining_evaluations(state) for p in self.parts)

    def converged(self, state: EstimationState) -> bool:
        return all(p(state) for p in self.parts) and any(p.converged(state) for p in self.parts)

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.parts))


class MaxEvaluations(StoppingCriterion):
    """Stop once ``n`` game evaluations were requested; the sampler never exceeds ``n``."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("MaxEvaluations needs n >= 1")
        self.n = int(n)

    def __call__(self, state: EstimationState) -> bool:
        return state.n_evaluations >= self.n

    def remaining_evaluations(self, state: EstimationState) -> float:
        return max(self.n - state.n_evaluations, 0)

    def __repr__(self) -> str:
        return f"MaxEvaluations({self.n})"


class MaxTime(StoppingCriterion):
    """Stop after ``seconds`` of wall-clock time (checked between batches)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def __call__(self, state: EstimationState) -> bool:
        return time.monotonic() - state.started_at >= self.seconds

    def __repr__(self) -> str:
        return f"MaxTime({self.seconds})"


class MinSamples(StoppingCriterion):
    """True once every player has at least ``n`` samples (combine with ``&``)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __call__(self, state: EstimationState) -> bool:
        return bool(np.all(state.counts >= self.n))

    def __repr__(self) -> str:
        return f"MinSamples({self.n})"


class StandardErrorBelow(StoppingCriterion):
    """Converged when every player's standard error is at most ``threshold``.

    With ``relative=True`` the threshold applies to ``stderr / max(|value|, floor)``.
    At least ``min_samples`` samples per player are required, so two identical early
    samples do not declare convergence.
    """

    means_convergence = True

    def __init__(
        self, threshold: float, *, relative: bool = False, min_samples: int = 10, floor: float = 1e-12
    ) -> None:
        if threshold <= 0:
            raise ValueError("StandardErrorBelow needs a positive threshold")
        self.threshold = float(threshold)
        self.relative = relative
        self.min_samples = int(min_samples)
        self.floor = floor

    def __call__(self, state: EstimationState) -> bool:
        if np.any(state.counts < self.min_samples):
            return False
        se = state.stderr
        if self.relative and state.values is not None:
            se = se / np.maximum(np.abs(state.values), self.floor)
        return bool(np.all(se <= self.threshold))

    def __repr__(self) -> str:
        return f"StandardErrorBelow({self.threshold}, relative={self.relative})"
