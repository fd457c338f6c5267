"""Games and valuation methods (no economics, no agents)."""

from __future__ import annotations

from dataprice.valuation.game import CachedGame, Game, TabulatedGame, tabulate
from dataprice.valuation.result import ValuationResult

__all__ = ["CachedGame", "Game", "TabulatedGame", "ValuationResult", "tabulate"]
