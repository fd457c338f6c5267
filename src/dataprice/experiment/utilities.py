"""Values and payments of one replicate under each utility the buyer offers.

A buyer whose game is :class:`~dataprice.valuation.protocols.MultiUtility` (the DPO buyer's
margins: preference accuracy or mean ``log sigma``; the RAG buyer's retrieval: hit@k or
MRR) gives the same data under every utility at no model call. For up to
:data:`MAX_ROBUSTNESS_SELLERS` sellers each variant is tabulated and valued by exact Shapley
and Banzhaf; in a subset market paying on the buyer's values, each rule also settles again at
its last round's reports under each variant, so the report can say whether payments would
have changed had the buyer measured quality differently
(:mod:`dataprice.valuation.robustness` compares them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataprice.market.kinds import SubsetMarket
from dataprice.market.mechanism import Outcome
from dataprice.valuation.game import Game, TabulatedGame, tabulate
from dataprice.valuation.methods.exact import ExactBanzhaf, ExactShapley
from dataprice.valuation.protocols import MultiUtility

#: Largest market whose values are computed under every utility (each variant is tabulated).
MAX_ROBUSTNESS_SELLERS = 16

COLUMNS = ["utility", "quantity", "seller", "amount"]


def no_utilities() -> pd.DataFrame:
    """The empty table (a buyer with one utility, or a market too large)."""
    return pd.DataFrame({"utility": pd.Series([], dtype=str), "quantity": pd.Series([], dtype=str),
                         "seller": pd.Series([], dtype=np.int64), "amount": pd.Series([], dtype=np.float64)})


def utility_values(game: Game, market, outcomes: dict[str, list[Outcome]],
                   table: TabulatedGame | None = None) -> pd.DataFrame:
    """Long table ``utility, quantity, seller, amount``: ``quantity`` is ``shapley``,
    ``banzhaf`` or ``payment[rule]`` (the last round's reports settled again under that
    utility, when ``market`` is a subset market over the buyer's values; without the round's
    value shocks or budget, if the scenario has them). ``table``: the run's own table of
    ``game``, if it made one (the declared utility is then not tabulated again)."""
    if not isinstance(game, MultiUtility) or game.n_players > MAX_ROBUSTNESS_SELLERS:
        return no_utilities()
    variants = game.utility_variants()
    if len(variants) < 2:
        return no_utilities()
    frames = []
    sellers = np.arange(game.n_players, dtype=np.int64)
    for utility, variant in variants.items():
        values = table if variant is game and table is not None else tabulate(variant)
        amounts = {"shapley": ExactShapley().fit(values).result.values,
                   "banzhaf": ExactBanzhaf().fit(values).result.values}
        if isinstance(market, SubsetMarket):
            settled = SubsetMarket(values, allocation=market.allocation, reserve=market.reserve,
                                   shapley_scope=market.shapley_scope, seed=market.seed)
            for rule, rounds in outcomes.items():
                amounts[f"payment[{rule}]"] = settled.settle(rounds[-1].bids, rule).payments
        for quantity, amount in amounts.items():
            frames.append(pd.DataFrame({"utility": utility, "quantity": quantity, "seller": sellers,
                                        "amount": np.asarray(amount, dtype=np.float64)}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]
