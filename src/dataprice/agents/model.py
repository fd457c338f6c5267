"""The repeated data market as a Mesa 3 agent-based model.

Each step is one round:

1. every active :class:`Seller` reports a cost through its bidding strategy;
2. the :class:`Buyer` allocates and pays under the payment rule (its budget, if any, scales
   payments down pro rata when they would exceed it);
3. every seller observes its payment, utility and full-information counterfactuals, and
   adapts; a seller whose utility stayed negative for ``exit_after`` rounds leaves;
4. the data collector records the round (model and seller variables, one table row per
   transaction).

The market itself is a :class:`MarketEnvironment`: a pure settle function from
:mod:`dataprice.market` plus the true costs, so the same model runs the subset market and
the continuous one. Each seller draws its random reports from its own stream
``(seed, round, seller)``, so results do not depend on the order agents act in, and
every payment rule sees the same random draws (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mesa
import numpy as np
from numpy.typing import NDArray

from dataprice.agents.strategies import BiddingStrategy, Feedback
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import TOLERANCE, efficiency
from dataprice.rng import child_rng

SettleFn = Callable[[NDArray[np.float64], str, NDArray[np.float64]], Outcome]


@dataclass(frozen=True)
class RoundMarket:
    """The market of one round: how it settles, and the best welfare at the true costs."""

    settle: SettleFn
    best_welfare: float


@dataclass
class MarketEnvironment:
    """A market to repeat.

    Attributes:
        round_market: ``round_market(t) -> RoundMarket`` for round ``t = 0, 1, ...``; a
            static market returns the same one every round, a noisy one a fresh draw of the
            buyer's values (from a stream that depends only on ``t``, so every payment rule
            faces the same sequence of markets). A report of ``inf`` means the seller is out.
        costs: true costs.
        scale: ``v(N) - v(empty)``, used to normalise learners' gains and tolerances.
        player_names: sellers' names.
        task: the buyer's task (``classifier``, ``single_winner``, ...), for the record.
        value_per_quality: the buyer's money value per unit of task quality.
    """

    round_market: Callable[[int], RoundMarket]
    costs: NDArray[np.float64]
    scale: float
    player_names: list[str]
    task: str = "custom"
    value_per_quality: float = 1.0

    @classmethod
    def static(
        cls, settle: SettleFn, best_welfare: float, costs, scale: float, player_names, *,
        task: str = "custom", value_per_quality: float = 1.0,
    ) -> MarketEnvironment:
        market = RoundMarket(settle, best_welfare)
        return cls(lambda t: market, np.asarray(costs, dtype=np.float64), scale, list(player_names), task,
                   value_per_quality)


def with_budget(settle: SettleFn, budget: float | None) -> SettleFn:
    """A settle function whose payments are scaled down pro rata to stay within ``budget``."""
    if budget is None:
        return settle

    def settle_with_budget(bids, rule, costs):
        outcome = settle(bids, rule, costs)
        total = outcome.total_paid
        if total <= budget:
            return outcome
        return Outcome(
            rule=outcome.rule,
            bids=outcome.bids,
            quantities=outcome.quantities,
            payments=outcome.payments * (budget / total),
            value=outcome.value,
            costs=outcome.costs,
            sold=outcome.sold,
        )

    return settle_with_budget


class Seller(mesa.Agent):
    """A data owner with a private cost and a bidding strategy, and its history."""

    def __init__(self, model: MarketModel, index: int, name: str, cost: float, strategy: BiddingStrategy) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.cost = float(cost)
        self.strategy = strategy
        self.active = True
        self.current_bid = float("nan")
        self.negative_streak = 0
        self.bids: list[float] = []
        self.payments: list[float] = []
        self.utilities: list[float] = []

    def bid(self) -> None:
        if not self.active:
            self.current_bid = float("inf")
            return
        rng = child_rng(self.model.stream, self.model.round_index, self.index)
        self.current_bid = float(self.strategy.bid(self.cost, rng))

    def observe(self) -> None:
        outcome = self.model.last_outcome
        payment = float(outcome.payments[self.index])
        utility = float(outcome.utilities[self.index])
        self.bids.append(self.current_bid)
        self.payments.append(payment)
        self.utilities.append(utility)
        if not self.active:
            return
        if self.strategy.adaptive:
            self.strategy.observe(
                Feedback(
                    cost=self.cost,
                    bid=self.current_bid,
                    payment=payment,
                    utility=utility,
                    utility_of=self._counterfactual,
                    scale=self.model.environment.scale / len(self.model.sellers),
                )
            )
        exit_after = self.model.exit_after
        self.negative_streak = self.negative_streak + 1 if utility < -self.model.tolerance else 0
        if exit_after is not None and self.negative_streak >= exit_after:
            self.active = False

    def _counterfactual(self, reports: NDArray[np.float64]) -> NDArray[np.float64]:
        """Utility this round had the seller reported each of ``reports`` instead."""
        env, model = self.model.environment, self.model
        bids = model.last_outcome.bids.copy()
        out = np.empty(len(reports))
        for k, r in enumerate(reports):
            bids[self.index] = r
            out[k] = model.settle(bids, model.rule, env.costs).utilities[self.index]
        return out


class Buyer(mesa.Agent):
    """The data buyer: its task, value per unit of quality and budget; settles each round."""

    def __init__(self, model: MarketModel, budget: float | None) -> None:
        super().__init__(model)
        self.task = model.environment.task
        self.value_per_quality = model.environment.value_per_quality
        self.budget = budget
        self.spent: list[float] = []

    def purchase(self, bids: NDArray[np.float64]) -> Outcome:
        outcome = self.model.settle(bids, self.model.rule, self.model.environment.costs)
        self.spent.append(outcome.total_paid)
        return outcome


class MarketModel(mesa.Model):
    """Repeated rounds of one market under one payment rule.

    Args:
        environment: the market.
        rule: the payment rule.
        strategies: one bidding strategy per seller (fresh objects: they hold state).
        seed: seeds the agents' shuffling and the sellers' report streams.
        budget: the buyer's spending limit per round (payments scaled down pro rata).
        exit_after: a seller leaves after this many consecutive rounds of negative utility.
    """

    def __init__(
        self,
        environment: MarketEnvironment,
        rule: str,
        strategies: list[BiddingStrategy],
        *,
        seed: int | np.random.SeedSequence = 0,
        budget: float | None = None,
        exit_after: int | None = None,
    ) -> None:
        stream = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        super().__init__(rng=int(stream.generate_state(1)[0]))
        self.stream = stream
        self.environment = environment
        self.rule = rule
        self.exit_after = exit_after
        self.tolerance = TOLERANCE * max(environment.scale, 1.0)
        self.budget = budget
        self.round_market: RoundMarket | None = None
        self.settle: SettleFn | None = None
        self.best_welfare: list[float] = []
        self.buyer = Buyer(self, budget)
        self.sellers = [
            Seller(self, j, name, cost, strategy)
            for j, (name, cost, strategy) in enumerate(
                zip(environment.player_names, environment.costs, strategies, strict=True)
            )
        ]
        self.outcomes: list[Outcome] = []
        self.last_outcome: Outcome | None = None
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "welfare": lambda m: m.last_outcome.welfare,
                "efficiency": lambda m: efficiency(m.last_outcome, m.round_market.best_welfare),
                "best_welfare": lambda m: m.round_market.best_welfare,
                "total_paid": lambda m: m.last_outcome.total_paid,
                "buyer_surplus": lambda m: m.last_outcome.buyer_surplus,
                "sellers_selected": lambda m: int(m.last_outcome.selected.sum()),
                "sellers_active": lambda m: sum(s.active for s in m.sellers),
                "mean_bid_ratio": lambda m: m.mean_bid_ratio(),
            },
            agenttype_reporters={
                Seller: {
                    "seller": "name",
                    "cost": "cost",
                    "bid": "current_bid",
                    "active": "active",
                    "payment": lambda s: s.payments[-1],
                    "utility": lambda s: s.utilities[-1],
                }
            },
            tables={"transactions": ["round", "seller", "bid", "payment", "quantity", "cost"]},
        )

    def mean_bid_ratio(self) -> float:
        """Mean of report / cost over active sellers with a positive cost."""
        ratios = [s.current_bid / s.cost for s in self.sellers if s.active and s.cost > 0]
        return float(np.mean(ratios)) if ratios else float("nan")

    @property
    def current_bids(self) -> NDArray[np.float64]:
        return np.array([s.current_bid for s in self.sellers])

    @property
    def round_index(self) -> int:
        """0-based index of the round being played (Mesa counts ``steps`` from 1)."""
        return self.steps - 1

    def step(self) -> None:
        self.round_market = self.environment.round_market(self.round_index)
        self.settle = with_budget(self.round_market.settle, self.budget)
        self.best_welfare.append(self.round_market.best_welfare)
        sellers = self.agents_by_type[Seller]
        sellers.shuffle_do("bid")
        outcome = self.buyer.purchase(self.current_bids)
        self.last_outcome = outcome
        self.outcomes.append(outcome)
        sellers.shuffle_do("observe")
        self.datacollector.collect(self)
        for j in np.flatnonzero(outcome.selected):
            self.datacollector.add_table_row(
                "transactions",
                {
                    "round": self.round_index,
                    "seller": self.sellers[j].name,
                    "bid": float(outcome.bids[j]),
                    "payment": float(outcome.payments[j]),
                    "quantity": float(outcome.quantities[j]),
                    "cost": float(self.environment.costs[j]),
                },
            )

    def run(self, rounds: int) -> MarketModel:
        for _ in range(rounds):
            self.step()
        return self

    def final_bids(self) -> NDArray[np.float64]:
        """The last round's reports (``inf`` for sellers who left)."""
        return self.outcomes[-1].bids.copy()
