"""The market a replicate settles in, round after round.

The buyer's game and the scenario's market settings make one :class:`~dataprice.market.
protocol.Market` (the buyer's own for continuous and per-query kinds, a subset market over
the valued game otherwise); :func:`build_environment` wraps it for the Mesa model: static,
or with per-round value shocks ``v_t(S) = v(S) + sum_{j in S} eta_jt`` in a subset market
(each round brings new queries, on which each seller's data is worth a little more or less).
"""

from __future__ import annotations

import numpy as np

from dataprice.agents.model import MarketEnvironment, RoundMarket
from dataprice.buyers.base import BuiltTask
from dataprice.market.allocation import ALLOCATION_RULES, subset_sums
from dataprice.market.basis import basis_game
from dataprice.market.kinds import MARKET_KINDS, SubsetMarket
from dataprice.market.protocol import Market
from dataprice.rng import Stream, child_rng
from dataprice.scenario import Scenario
from dataprice.valuation.game import Game, TabulatedGame
from dataprice.valuation.result import ValuationResult


def make_market(scenario: Scenario, seed: int, built: BuiltTask, valued: Game,
                values: dict[str, ValuationResult]) -> Market:
    """The buyer's own market, or a subset market over ``valued`` with the scenario's
    allocation, reserve and Shapley scope (reusing exact Shapley values already computed)."""
    if built.market is not None:
        return built.market
    exact = next((values[m.key].values for m in scenario.valuation if m.method == "exact_shapley"), None)
    if scenario.market.value_basis is not None:  # pay on a method's values: their additive game
        kind = MARKET_KINDS[scenario.market_kind]
        valued = basis_game(values[scenario.market.value_basis], built.game.empty_value(),
                            table=kind.needs_table(scenario.market.allocation))
        exact = values[scenario.market.value_basis].values  # Shapley values of an additive game
    return SubsetMarket(
        valued,
        allocation=ALLOCATION_RULES[scenario.market.allocation](),
        reserve=scenario.market.reserve,
        shapley_scope=scenario.market.shapley_scope,
        shapley_values=exact,
        seed=seed,
    )


def shifted_game(game: Game, shocks: np.ndarray) -> Game:
    """``v(S) + sum_{j in S} shocks_j`` (a table stays a table)."""
    if isinstance(game, TabulatedGame):
        return TabulatedGame(game.values + subset_sums(shocks), game.player_names)
    return _ShiftedGame(game, shocks)


class _ShiftedGame(Game):
    def __init__(self, game: Game, shocks: np.ndarray) -> None:
        super().__init__(game.n_players, game.player_names)
        self.game, self.shocks = game, shocks

    def value_function(self, coalitions):
        return self.game(coalitions) + coalitions @ self.shocks


def build_environment(scenario: Scenario, seed: int, market: Market, costs: np.ndarray,
                      names: list[str]) -> MarketEnvironment:
    """The repeated market of one replicate (static, or with per-round value shocks)."""
    task, value_per_quality = scenario.buyer.task, scenario.buyer.value_per_quality
    scale = market.value_span()
    if scenario.market.value_noise == 0:
        return MarketEnvironment.static(market.settle, market.optimal_welfare(costs), costs, scale, names,
                                        task=task, value_per_quality=value_per_quality)
    assert isinstance(market, SubsetMarket), "value shocks are defined for subset markets (the schema checks this)"
    valued = market.game
    n = valued.n_players
    sigma = scenario.market.value_noise * scale / n

    def round_market(t: int) -> RoundMarket:
        shocks = child_rng(seed, Stream.VALUE_SHOCKS, t).normal(0.0, sigma, n)
        shifted = SubsetMarket(
            shifted_game(valued, shocks),
            allocation=market.allocation,
            reserve=market.reserve,
            shapley_scope=market.shapley_scope,
            seed=seed,
        )
        return RoundMarket(shifted.settle, shifted.optimal_welfare(costs))

    return MarketEnvironment(round_market, costs, scale, names, task, value_per_quality)


def audit_sample(selected: np.ndarray, k: int | None, rng: np.random.Generator) -> list[int] | None:
    """Which sellers the audit checks: all (``k=None`` or ``k >= n``), else ``ceil(k/2)``
    drawn among the selected and the rest among the others (fewer if a side runs out)."""
    n = selected.shape[0]
    if k is None or k >= n:
        return None
    chosen, others = np.flatnonzero(selected), np.flatnonzero(~selected)
    take_in = min(chosen.size, -(-k // 2))
    take_out = min(others.size, k - take_in)
    take_in = min(chosen.size, k - take_out)
    picked = np.concatenate([rng.choice(chosen, take_in, replace=False), rng.choice(others, take_out, replace=False)])
    return sorted(int(j) for j in picked)
