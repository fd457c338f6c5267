"""How much a replicate's values and payments move when the buyer's evaluation set is resampled.

For a buyer whose value averages over an evaluation set (:mod:`dataprice.valuation.resampling`),
each bootstrap draw ``w_b`` of that set gives a game ``v_b``; the replicate's valuation
methods run again on ``v_b`` with their own seeds (same permutations, same samples), and the
market settles the last round again at the same reports under every rule. No model is
retrained: each coalition's per-point scores were kept when the replicate first computed it.

The draws are returned as one long table (``quantity`` value|payment, ``name`` the method
or rule, ``draw``, ``seller``, ``amount``); :func:`intervals` pools them over replicates into
percentile intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataprice.agents.model import with_budget
from dataprice.buyers.base import BuiltTask
from dataprice.experiment.environment import build_environment, make_market
from dataprice.market.mechanism import Outcome
from dataprice.progress import progress as progress_display
from dataprice.rng import Stream, child_rng, child_seed
from dataprice.scenario import Scenario
from dataprice.valuation.game import Game, TabulatedGame
from dataprice.valuation.methods import METHODS
from dataprice.valuation.resampling import PointCache, bootstrap_weights, percentile_interval
from dataprice.valuation.result import ValuationResult

COLUMNS = ["quantity", "name", "draw", "seller", "amount"]

#: Most numbers held at once for the value tables of all draws (8 bytes each: 160 MB).
TABLE_VALUES = 20_000_000


def empty_draws() -> pd.DataFrame:
    """The draws table of a replicate that did not resample."""
    return pd.DataFrame({"quantity": pd.Series([], dtype=str), "name": pd.Series([], dtype=str),
                         "draw": pd.Series([], dtype=np.int64), "seller": pd.Series([], dtype=np.int64),
                         "amount": pd.Series([], dtype=np.float64)})


def resample_replicate(
    scenario: Scenario, seed: int, built: BuiltTask, points: PointCache, tabulated: bool,
    outcomes: dict[str, list[Outcome]], costs: np.ndarray, names: list[str], *, progress: bool = False,
) -> pd.DataFrame:
    """Values and last-round payments on ``scenario.uncertainty.resamples`` bootstrap draws.

    Methods that read the buyer's data directly (``uses_buyer_game``: KNN-Shapley,
    unlearning) are not resampled. Payments are resampled where the market is a subset
    market over the valued game (the buyer's own per-query or continuous market is not).
    """
    draws = scenario.uncertainty.resamples
    weights = bootstrap_weights(points.n_points, draws, child_rng(seed, Stream.RESAMPLING))
    # tabulable games: every draw's table from the per-point table (all draws in one product
    # when that fits in TABLE_VALUES numbers); others: one memo shared by the draws
    table = points.table_points() if tabulated else None
    tables = None
    if table is not None and table.shape[0] * draws <= TABLE_VALUES:
        tables = points.tabulated(table, weights.T).T
    games = None if tabulated else points.resampled(weights)

    def game_of(b: int) -> Game:
        if tables is not None:
            return TabulatedGame(tables[b], names)
        if table is not None:
            return TabulatedGame(points.tabulated(table, weights[b]), names)
        assert games is not None
        return games[b]
    n = points.n_players
    keys: list[tuple[str, str, int]] = []
    amounts: list[np.ndarray] = []

    def record(quantity: str, name: str, b: int, found: np.ndarray) -> None:
        keys.append((quantity, name, b))
        amounts.append(np.asarray(found, dtype=np.float64))

    for b in progress_display(range(draws), desc="resampling the evaluation set", leave=False, enabled=progress):
        game = game_of(b)
        values: dict[str, ValuationResult] = {}
        for k, spec in enumerate(scenario.valuation):
            cls = METHODS[spec.method]
            if cls.uses_buyer_game:
                continue
            method = cls.from_spec(spec, seed=child_seed(seed, Stream.METHODS + k), progress=False)
            values[spec.key] = method.fit(game).result
            record("value", spec.key, b, values[spec.key].values)
        if built.market is not None:
            continue
        market = make_market(scenario, seed, built, game, values)
        last = build_environment(scenario, seed, market, costs, names).round_market(scenario.rounds - 1)
        settle = with_budget(last.settle, scenario.market.budget)
        for rule, settled in outcomes.items():
            record("payment", rule, b, settle(settled[-1].bids, rule, costs).payments)
    if not keys:
        return empty_draws()
    quantity, name, draw = (np.repeat(np.array(column), n) for column in zip(*keys, strict=True))
    return pd.DataFrame({"quantity": quantity.astype(str), "name": name.astype(str), "draw": draw.astype(np.int64),
                         "seller": np.tile(np.arange(n, dtype=np.int64), len(keys)),
                         "amount": np.concatenate(amounts)})


def intervals(draws: list[pd.DataFrame], n_sellers: int, level: float) -> pd.DataFrame:
    """Percentile intervals of the draws pooled over replicates (one frame each): one row per
    quantity, name and seller with ``lo``, ``hi`` and the number of ``draws`` behind them."""
    frames = [d.assign(replicate=r) for r, d in enumerate(draws) if len(d)]
    rows = []
    if frames:
        pooled = pd.concat(frames, ignore_index=True)
        for (quantity, name), frame in pooled.groupby(["quantity", "name"], sort=False):
            matrix = (frame.pivot(index=["replicate", "draw"], columns="seller", values="amount")
                      .reindex(columns=range(n_sellers)).to_numpy(dtype=np.float64))
            lo, hi = np.full(n_sellers, np.nan), np.full(n_sellers, np.nan)
            seen = np.isfinite(matrix).any(axis=0)
            if seen.any():
                lo[seen], hi[seen] = percentile_interval(matrix[:, seen], level)
            rows.append(pd.DataFrame({"quantity": quantity, "name": name, "seller": np.arange(n_sellers),
                                      "lo": lo, "hi": hi, "draws": matrix.shape[0]}))
    if not rows:
        return pd.DataFrame({"quantity": pd.Series([], dtype=str), "name": pd.Series([], dtype=str),
                             "seller": pd.Series([], dtype=np.int64), "lo": pd.Series([], dtype=np.float64),
                             "hi": pd.Series([], dtype=np.float64), "draws": pd.Series([], dtype=np.int64)})
    return pd.concat(rows, ignore_index=True)
