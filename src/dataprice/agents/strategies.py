"""Bidding strategies: how a seller turns its private cost into a report, round after round.

A strategy is a small stateful object: ``bid(cost, rng)`` gives this round's report and
``observe(feedback)`` updates it after the round settled. The feedback is full-information:
the seller's utility under the actual payment rule for any report it could have made, the
others' reports held fixed (what a seller learns by asking "what if I had bid r?").

* :class:`Truthful`: ``b = c``.
* :class:`FixedMarkup`: ``b = c (1 + m)``.
* :class:`RandomMarkup`: ``b = c (1 + m_t)``, ``m_t ~ U(low, high)`` each round.
* :class:`BestResponse`: the report on a grid of cost multipliers that would have maximised
  utility against the others' reports of the last round (ties: closest to truthful).
* :class:`Hedge`: no-regret multiplicative weights over report multipliers (Freund &
  Schapire 1997): after each round every arm's weight is multiplied by
  ``exp(eta * u(arm) / scale)``; the next report is drawn from the normalised weights.
  Against any sequence of others' reports its average regret vanishes as ``O(sqrt(log K / T))``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DEFAULT_MULTIPLIERS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Feedback:
    """What a seller learns after a round.

    Attributes:
        cost: the seller's true cost.
        bid: the report it made.
        payment: what it was paid.
        utility: its realised utility.
        utility_of: ``utility_of(reports) -> utilities`` for an array of alternative
            reports, the others' reports held fixed (full-information counterfactual).
        scale: a seller's share of the market, ``(v(N) - v(empty)) / n``, for normalising utilities.
    """

    cost: float
    bid: float
    payment: float
    utility: float
    utility_of: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    scale: float


class BiddingStrategy(ABC):
    """Base class: report, then learn from feedback (default: learn nothing)."""

    #: True when the strategy's reports depend on feedback (needs counterfactuals).
    adaptive: bool = False

    @abstractmethod
    def bid(self, cost: float, rng: np.random.Generator) -> float: ...

    def observe(self, feedback: Feedback) -> None:  # noqa: B027 - static strategies ignore feedback
        pass


class Truthful(BiddingStrategy):
    def bid(self, cost: float, rng: np.random.Generator) -> float:
        return cost


class FixedMarkup(BiddingStrategy):
    def __init__(self, markup: float) -> None:
        self.markup = markup

    def bid(self, cost: float, rng: np.random.Generator) -> float:
        return cost * (1.0 + self.markup)


class RandomMarkup(BiddingStrategy):
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def bid(self, cost: float, rng: np.random.Generator) -> float:
        return cost * (1.0 + rng.uniform(self.low, self.high))


class _GridStrategy(BiddingStrategy):
    adaptive = True

    def __init__(self, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS) -> None:
        self.multipliers = np.asarray(sorted(set(multipliers)), dtype=np.float64)
        if not np.any(np.isclose(self.multipliers, 1.0)):
            self.multipliers = np.sort(np.append(self.multipliers, 1.0))

    def _reports(self, cost: float) -> NDArray[np.float64]:
        return cost * self.multipliers


class BestResponse(_GridStrategy):
    """Myopic best response to the last round; truthful in the first round."""

    def __init__(self, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS) -> None:
        super().__init__(multipliers)
        self.multiplier = 1.0

    def bid(self, cost: float, rng: np.random.Generator) -> float:
        return cost * self.multiplier

    def observe(self, feedback: Feedback) -> None:
        utilities = feedback.utility_of(self._reports(feedback.cost))
        tol = 1e-9 * max(feedback.scale, 1.0)
        best = utilities.max()
        candidates = np.flatnonzero(utilities >= best - tol)
        closest = candidates[np.argmin(np.abs(self.multipliers[candidates] - 1.0))]
        self.multiplier = float(self.multipliers[closest])


class Hedge(_GridStrategy):
    """Multiplicative weights over report multipliers (full information).

    Args:
        multipliers: the arms (1.0, truthful, is always included).
        learning_rate: ``eta``; gains are utilities divided by a seller's share of the market.
    """

    def __init__(self, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS, learning_rate: float = 2.0) -> None:
        super().__init__(multipliers)
        self.learning_rate = float(learning_rate)
        self.log_weights = np.zeros(self.multipliers.shape[0])

    @property
    def probabilities(self) -> NDArray[np.float64]:
        w = np.exp(self.log_weights - self.log_weights.max())
        return w / w.sum()

    def bid(self, cost: float, rng: np.random.Generator) -> float:
        arm = rng.choice(self.multipliers.shape[0], p=self.probabilities)
        return cost * float(self.multipliers[arm])

    def observe(self, feedback: Feedback) -> None:
        gains = feedback.utility_of(self._reports(feedback.cost)) / max(feedback.scale, 1e-12)
        self.log_weights += self.learning_rate * gains

    def expected_multiplier(self) -> float:
        return float(self.probabilities @ self.multipliers)


STRATEGIES = ("truthful", "markup", "random_markup", "best_response", "hedge")


def make_strategy(name: str, **params) -> BiddingStrategy:
    """A fresh strategy object by name (one per seller)."""
    if name == "truthful":
        return Truthful()
    if name == "markup":
        return FixedMarkup(params.get("markup", 0.0))
    if name == "random_markup":
        return RandomMarkup(params.get("markup_low", 0.0), params.get("markup_high", 0.5))
    if name == "best_response":
        return BestResponse(params.get("multipliers") or DEFAULT_MULTIPLIERS)
    if name == "hedge":
        return Hedge(params.get("multipliers") or DEFAULT_MULTIPLIERS, params.get("learning_rate", 2.0))
    raise ValueError(f"unknown bidding strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
