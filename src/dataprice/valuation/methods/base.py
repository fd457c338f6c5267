"""Base class of valuation methods: configure in ``__init__``, work in ``fit``, read ``result``.

A method describes itself: its scenario settings (``Spec``, a pydantic model whose
``method`` field is the method's name), how it is built from them (:meth:`from_spec`),
whether it needs the table of all ``2^n`` values (``needs_tabulation``) or the buyer's own
game (``uses_buyer_game``: it reads the buyer's data, e.g. KNN-Shapley's training points),
and which capabilities it requires of the buyer (:meth:`MethodSpec.requires`, checked
against ``Buyer.capabilities()`` by the scenario). :func:`register_method` adds it to
:data:`METHODS`, from which the scenario's ``valuation`` entries are validated: a new method
is one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from dataprice.specs import Name, StrictModel
from dataprice.valuation.game import Game
from dataprice.valuation.result import ValuationResult


class MethodSpec(StrictModel):
    """One ``valuation:`` entry of a scenario. Subclasses fix ``method`` to their name
    (``method: Literal["loo"]``) and add their settings."""

    method: str
    label: Name | None = None  # the name of this entry's results in tables and reports

    @property
    def key(self) -> str:
        """The name of this method's results in tables and reports (its label, or method)."""
        return self.label or self.method

    def requires(self) -> frozenset[str]:
        """Capabilities the buyer must offer (``Buyer.capabilities()``), e.g. ``knn``."""
        return frozenset()

    def problems(self, n_sellers: int, where: str) -> Iterable[str]:
        """Settings that do not fit a market of ``n_sellers`` (``where``: ``valuation[k]``)."""
        return ()


class ValuationMethod(ABC):
    """A way to turn a game into per-player values.

    Subclasses take their configuration as keyword arguments in ``__init__`` (no work
    there), compute in :meth:`fit`, and expose a :class:`ValuationResult` as ``result``.
    """

    #: Name used in scenario files and reports.
    name: ClassVar[str]
    #: The method's scenario settings.
    Spec: ClassVar[type[MethodSpec]] = MethodSpec
    #: True for methods that read the full table of 2^n values (small n only).
    needs_tabulation: ClassVar[bool] = False
    #: True for methods fitted on the buyer's own game (they read its data), not on values.
    uses_buyer_game: ClassVar[bool] = False
    #: What the values estimate: ``shapley``, ``banzhaf`` or ``leave_one_out`` (tests check
    #: every registered method against these on games with known values).
    estimates: ClassVar[str] = "shapley"
    #: False for screening scores (no efficiency: gradient similarity); reports never quote
    #: them as a seller's value.
    is_semivalue: ClassVar[bool] = True
    #: False for methods that never ask the buyer's game for a coalition's value (the in-run
    #: methods read one training run): a run with only those, paying on their values
    #: (``market.value_basis``), lets the buyer skip what only coalition values need.
    reads_coalitions: ClassVar[bool] = True

    def __init__(self) -> None:
        self._result: ValuationResult | None = None

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> ValuationMethod:
        """The method configured by its scenario entry (``seed``: this entry's stream)."""
        return cls()

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


#: Every registered valuation method, by the name scenario files use.
METHODS: dict[str, type[ValuationMethod]] = {}


def register_method(cls: type[ValuationMethod]) -> type[ValuationMethod]:
    """Class decorator: add a valuation method to :data:`METHODS` under ``cls.name``."""
    known = METHODS.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"a valuation method named {cls.name!r} is already registered")
    METHODS[cls.name] = cls
    return cls
