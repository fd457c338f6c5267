"""Bidding strategies: how a seller turns its private cost into a report.

Static strategies are plain functions of the costs and a random stream, so they can be
used by the one-shot runner and by agents alike.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def truthful(costs: NDArray[np.float64], rng: np.random.Generator | None = None) -> NDArray[np.float64]:
    """``b_j = c_j``."""
    return np.asarray(costs, dtype=np.float64).copy()


def markup(costs: NDArray[np.float64], rate: float) -> NDArray[np.float64]:
    """``b_j = c_j (1 + rate)`` (a negative rate shades the report below cost)."""
    return np.asarray(costs, dtype=np.float64) * (1.0 + rate)


def random_markup(
    costs: NDArray[np.float64], rng: np.random.Generator, low: float, high: float
) -> NDArray[np.float64]:
    """``b_j = c_j (1 + m_j)`` with ``m_j ~ U(low, high)`` drawn independently each round."""
    costs = np.asarray(costs, dtype=np.float64)
    return costs * (1.0 + rng.uniform(low, high, size=costs.shape))


def make_bids(strategy: str, costs: NDArray[np.float64], rng: np.random.Generator, **params) -> NDArray[np.float64]:
    """Reports under a named strategy (``truthful``, ``markup``, ``random_markup``)."""
    if strategy == "truthful":
        return truthful(costs)
    if strategy == "markup":
        return markup(costs, params["markup"])
    if strategy == "random_markup":
        return random_markup(costs, rng, params["markup_low"], params["markup_high"])
    raise ValueError(f"unknown bidding strategy {strategy!r}; choose truthful, markup or random_markup")
