"""``ValuationResult``: values with their uncertainty and provenance, mergeable and serialisable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray


def plain(value):
    """``value`` with numpy scalars and arrays, and tuples, turned into JSON's own types
    (so a result saved and read back is equal to the original, and prints the same)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class ValuationResult:
    """Per-player values from one valuation method.

    Attributes:
        values: estimated value of each player.
        variances: sample variance of each player's per-sample estimates (0 for exact methods).
        counts: number of samples behind each value (1 for exact methods).
        player_names: names of the players, in order.
        method: name of the method that produced the values.
        n_evaluations: game evaluations requested by the method (its budget unit).
        converged: whether the stopping criterion declared convergence (exact methods: True).
        seed: the seed the method used (``None`` for deterministic methods).
        n_batches: sampling batches drawn so far; a continued run starts at this batch, so
            its random stream never repeats earlier ones.
        extra: free-form provenance (truncation counts, notes, timings).
    """

    values: NDArray[np.float64]
    variances: NDArray[np.float64]
    counts: NDArray[np.int64]
    player_names: tuple[str, ...]
    method: str
    n_evaluations: int = 0
    converged: bool = True
    seed: int | None = None
    n_batches: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        self.variances = np.asarray(self.variances, dtype=np.float64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.player_names = tuple(self.player_names)
        n = len(self.player_names)
        for name in ("values", "variances", "counts"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")

    @classmethod
    def exact(
        cls,
        values: Sequence[float] | NDArray[np.float64],
        player_names: Sequence[str],
        method: str,
        n_evaluations: int,
        **extra,
    ) -> ValuationResult:
        """A result with no sampling error."""
        n = len(player_names)
        return cls(
            values=np.asarray(values, dtype=np.float64),
            variances=np.zeros(n),
            counts=np.ones(n, dtype=np.int64),
            player_names=tuple(player_names),
            method=method,
            n_evaluations=n_evaluations,
            converged=True,
            extra=extra,
        )

    @property
    def n_players(self) -> int:
        return len(self.player_names)

    @property
    def stderr(self) -> NDArray[np.float64]:
        """Standard error of each value: ``sqrt(variance / count)`` (0 with no samples)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(self.variances / self.counts)
        return np.where(self.counts > 0, se, np.inf)

    def ranking(self) -> NDArray[np.int64]:
        """Player indices from the highest value to the lowest (stable for ties)."""
        return np.argsort(-self.values, kind="stable")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per player: value, stderr, count."""
        return pd.DataFrame(
            {
                "player": list(self.player_names),
                "value": self.values,
                "stderr": self.stderr,
                "count": self.counts,
            }
        ).assign(method=self.method)

    def to_dict(self) -> dict:
        return {
            "values": self.values.tolist(),
            "variances": self.variances.tolist(),
            "counts": self.counts.tolist(),
            "player_names": list(self.player_names),
            "method": self.method,
            "n_evaluations": int(self.n_evaluations),
            "converged": bool(self.converged),
            "seed": plain(self.seed),
            "n_batches": int(self.n_batches),
            "extra": plain(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ValuationResult:
        return cls(**{**data, "player_names": tuple(data["player_names"])})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ValuationResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def merge(self, other: ValuationResult) -> ValuationResult:
        """Pool two independent sample sets of the same players (Chan et al. parallel variance).

        ``mean = (n_a m_a + n_b m_b) / n``, ``M2 = M2_a + M2_b + d^2 n_a n_b / n`` with
        ``d = m_b - m_a``; variances here are sample variances ``M2 / (count - 1)``.
        """
        if self.player_names != other.player_names:
            raise ValueError("cannot merge results over different players")
        na, nb = self.counts.astype(float), other.counts.astype(float)
        n = na + nb
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = other.values - self.values
            mean = np.where(n > 0, (na * self.values + nb * other.values) / n, 0.0)
            m2 = (
                self.variances * np.maximum(na - 1, 0)
                + other.variances * np.maximum(nb - 1, 0)
                + np.where(n > 0, delta**2 * na * nb / n, 0.0)
            )
            var = np.where(n > 1, m2 / (n - 1), 0.0)
        return ValuationResult(
            values=mean,
            variances=var,
            counts=(na + nb).astype(np.int64),
            player_names=self.player_names,
            method=self.method,
            n_evaluations=self.n_evaluations + other.n_evaluations,
            converged=self.converged and other.converged,
            seed=self.seed,
            n_batches=max(self.n_batches, other.n_batches),
            extra={**self.extra, **other.extra},
        )


class RunningMoments:
    """Per-player running mean and variance (Welford), updated with batches of samples."""

    def __init__(self, n_players: int) -> None:
        self.count = np.zeros(n_players, dtype=np.int64)
        self.mean = np.zeros(n_players)
        self.m2 = np.zeros(n_players)

    @classmethod
    def from_result(cls, result: ValuationResult) -> RunningMoments:
        moments = cls(result.n_players)
        moments.count = result.counts.copy()
        moments.mean = result.values.copy()
        moments.m2 = result.variances * np.maximum(result.counts - 1, 0)
        return moments

    def update(self, player: int | NDArray[np.int64], samples: NDArray[np.float64]) -> None:
        """Add ``samples`` (shape ``(k,)``) to one player's moments (batch Welford/Chan)."""
        samples = np.asarray(samples, dtype=np.float64)
        k = samples.shape[0]
        if k == 0:
            return
        batch_mean = samples.mean()
        batch_m2 = float(((samples - batch_mean) ** 2).sum())
        n_old = self.count[player]
        n_new = n_old + k
        delta = batch_mean - self.mean[player]
        self.mean[player] += delta * k / n_new
        self.m2[player] += batch_m2 + delta**2 * n_old * k / n_new
        self.count[player] = n_new

    def update_all(self, samples: NDArray[np.float64]) -> None:
        """Add one sample per player: ``samples`` has shape ``(k, n_players)``."""
        samples = np.asarray(samples, dtype=np.float64)
        k = samples.shape[0]
        if k == 0:
            return
        batch_mean = samples.mean(axis=0)
        batch_m2 = ((samples - batch_mean) ** 2).sum(axis=0)
        n_new = self.count + k
        delta = batch_mean - self.mean
        self.mean += delta * k / n_new
        self.m2 += batch_m2 + delta**2 * self.count * k / n_new
        self.count = n_new

    @property
    def variance(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), 0.0)

    @property
    def stderr(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.count > 1, np.sqrt(self.variance / self.count), np.inf)
