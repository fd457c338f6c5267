"""Base class of valuation methods: configure in ``__init__``, work in ``fit``, read ``result``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from dataprice.valuation.game import Game
from dataprice.valuation.result import ValuationResult


class ValuationMethod(ABC):
    """A way to turn a game into per-player values.

    Subclasses take their configuration as keyword arguments in ``__init__`` (no work
    there), compute in :meth:`fit`, and expose a :class:`ValuationResult` as ``result``.
    """

    #: Name used in scenario files and reports.
    name: ClassVar[str]
    #: True for methods that read the full table of 2^n values (small n only).
    needs_tabulation: ClassVar[bool] = False

    def __init__(self) -> None:
        self._result: ValuationResult | None = None

    @abstractmethod
    def fit(self, game: Game) -> ValuationMethod:
        """Compute values on ``game`` and return ``self``."""

    @property
    def result(self) -> ValuationResult:
        if self._result is None:
            raise RuntimeError(f"{type(self).__name__} has no result yet: call fit(game) first")
        return self._result

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
