"""dataprice games and shapiq games, each usable as the other.

shapiq (Muschalik et al., "shapiq: Shapley Interactions for Machine Learning", NeurIPS 2024)
calls ``Game.value_function(coalitions)`` with a boolean matrix, one row per coalition, and
subtracts ``normalization_value`` in ``__call__`` (so that ``v(empty) = 0`` when the game
is normalised). dataprice's :class:`~dataprice.valuation.game.Game` has the same
``value_function`` contract. :func:`to_shapiq` wraps a dataprice game unnormalised by
default, so every value is the same float on both sides; ``normalize=True`` centres it on
``v(empty)`` as shapiq's own games are. :func:`from_shapiq` reads a shapiq game through its
``__call__`` (the values as shapiq reports them, precomputed tables included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.errors import DataError
from dataprice.valuation.game import Game


def _shapiq() -> Any:
    try:
        import shapiq
    except ImportError:
        raise DataError("the shapiq adapters need shapiq: pip install 'dataprice[interop]'") from None
    return shapiq


def to_shapiq(game: Game, *, normalize: bool = False) -> Any:
    """``game`` as a ``shapiq.Game`` (same players and names). ``normalize=True`` makes
    shapiq subtract ``v(empty)``, as its own games do; the default keeps every value."""
    shapiq = _shapiq()

    class DatapriceGame(shapiq.Game):  # type: ignore[name-defined]
        """A dataprice game seen by shapiq."""

        def __init__(self, inner: Game) -> None:
            self.inner = inner
            super().__init__(inner.n_players, normalize=normalize,
                             normalization_value=inner.empty_value() if normalize else None,
                             player_names=list(inner.player_names))

        def value_function(self, coalitions: NDArray[np.bool_]) -> NDArray[np.float64]:
            return np.asarray(self.inner(np.asarray(coalitions, dtype=bool)), dtype=np.float64)

    return DatapriceGame(game)


class ShapiqGame(Game):
    """A shapiq game as a dataprice game: ``v(S)`` is shapiq's ``game(S)``."""

    def __init__(self, game: Any, player_names: Sequence[str] | None = None) -> None:
        if player_names is None:  # shapiq keeps them as {name: index}
            lookup = getattr(game, "player_name_lookup", None) or {}
            player_names = sorted(lookup, key=lookup.__getitem__) if len(lookup) == game.n_players else None
        super().__init__(int(game.n_players), list(player_names) if player_names is not None else None)
        self.game = game

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        values = np.asarray(self.game(np.asarray(coalitions, dtype=bool)), dtype=np.float64).reshape(-1)
        if values.shape[0] != coalitions.shape[0]:
            raise DataError(f"the shapiq game returned {values.shape[0]} values for {coalitions.shape[0]} coalitions")
        return values


def from_shapiq(game: Any, player_names: Sequence[str] | None = None) -> ShapiqGame:
    """A shapiq game (anything with ``n_players`` and ``__call__(bool[m, n]) -> float[m]``)
    as a dataprice game."""
    if not hasattr(game, "n_players") or not callable(game):
        raise DataError(f"from_shapiq: {type(game).__name__} is not a shapiq game (no n_players or not callable)")
    return ShapiqGame(game, player_names)
