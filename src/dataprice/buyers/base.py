"""The buyer plugin contract, and the registry a scenario's ``buyer`` section is validated from.

A buyer is one class: its pydantic fields are the scenario's ``buyer:`` section (``task``
fixed to the buyer's name with ``Literal``), and its methods say everything else about it::

    @register_buyer
    class MyBuyer(Buyer):
        task: Literal["my_buyer"]
        value_per_quality: PositiveFloat = 1.0
        label: ClassVar[str] = "a buyer who ..."           # the report's sentence

        def build(self, context: BuildContext) -> BuiltTask:
            game = ...                                      # v(S) over the sellers
            return BuiltTask(game, pd.DataFrame({"seller": context.names}))

Optional: ``market_kind`` (``subset`` by default), ``offers`` and :meth:`Buyer.capabilities`
(what its game provides to methods such as KNN-Shapley), :meth:`Buyer.problems` (checks
that need the whole scenario), :meth:`Buyer.small` (the CI-size version), ``path_fields``
(data files, taken relative to the scenario's folder), ``model_path_fields`` (model folders
the user brings, likewise), :meth:`Buyer.data_problems` (what reading them finds),
:meth:`Buyer.seller_names`, :meth:`Buyer.run_tables` (tables computed over all replicates,
shown by the report) and :meth:`Buyer.seller_costs` (costs the buyer's data gives, such as
per-document prices).

Built-in buyers live in one folder each under :mod:`dataprice.buyers`; an installed package
adds one through the entry-point group ``dataprice.buyers`` (see :mod:`dataprice.plugins`).
Keep the module that registers a buyer light: import heavy libraries inside ``build``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dataprice.specs import StrictModel

if TYPE_CHECKING:
    from dataprice.market.protocol import Market
    from dataprice.valuation.game import Game


@dataclass
class BuildContext:
    """What a buyer's :meth:`Buyer.build` gets for one replicate.

    Attributes:
        scenario: the whole validated scenario (sellers, market settings, ...).
        seed: the replicate's seed; streams below it are named in :class:`dataprice.rng.Stream`.
        costs: the sellers' true costs (a continuous market values data at truthful reports).
        names: the sellers' names.
        progress: show progress bars.
    """

    scenario: Any
    seed: int
    costs: NDArray[np.float64]
    names: list[str]
    progress: bool = False


def costs_given(sellers: Any) -> bool:
    """Whether ``sellers.costs`` says something (anything but the default distribution; a
    re-parsed scenario carries every default, so what was set cannot be told apart)."""
    return bool(sellers.costs != type(sellers).model_fields["costs"].get_default(call_default_factory=True))


@dataclass
class BuiltTask:
    """A buyer's game over the sellers for one replicate.

    Attributes:
        game: ``v(S)``, what valuation methods and the subset market work on.
        contributions: one row per seller (a ``seller`` column): what it brings.
        market: the market, for kinds other than ``subset`` (a subset market is built by the
            runner from the game and the scenario's market settings).
        notes: sentences for the report on how the buyer read its data (texts split into
            chunks or cut, ...), or a function giving them once the replicate's valuations
            have run (a reader counts what it cut as it reads).
        findings: sentences for the report's "read with care" lines: what in the buyer's
            market would make a comparison of rules meaningless (no competition, ...).
    """

    game: Game
    contributions: pd.DataFrame
    market: Market | None = None
    notes: Sequence[str] | Callable[[], Sequence[str]] = ()
    findings: Sequence[str] = ()

    def data_notes(self) -> list[str]:
        return list(self.notes() if callable(self.notes) else self.notes)


class Buyer(StrictModel):
    """Base of every buyer: a scenario's ``buyer:`` section and what the buyer does with it."""

    task: str
    value_per_quality: float = 1.0

    #: What the buyer is, as the report says it ("a classifier trained on ...").
    label: ClassVar[str] = "a buyer"
    #: The market kind it buys in (:data:`dataprice.market.kinds.MARKET_KINDS`).
    market_kind: ClassVar[str] = "subset"
    #: Every capability this buyer can give valuation methods (with some settings).
    offers: ClassVar[frozenset[str]] = frozenset()
    #: Dotted paths (inside the ``buyer`` section) of data-file fields.
    path_fields: ClassVar[tuple[str, ...]] = ()
    #: Dotted paths of fields naming a model folder or file the user brings
    #: (:class:`~dataprice.models.folder.ModelFolder` ``.path``); like ``path_fields`` they
    #: are taken relative to the scenario's folder, but :meth:`problems` checks them.
    model_path_fields: ClassVar[tuple[str, ...]] = ()

    def capabilities(self) -> frozenset[str]:
        """What this buyer's game provides with these settings (default: all it offers)."""
        return self.offers

    def extras(self) -> frozenset[str]:
        """The optional parts of dataprice (:data:`dataprice.extras.EXTRAS`) this buyer needs
        with these settings (default: none, the core is enough)."""
        return frozenset()

    def problems(self, scenario: Any) -> Iterable[str]:
        """Problems of this section that need the rest of the scenario, one line each,
        ``field.path: what is wrong; what is allowed``."""
        return ()

    @classmethod
    def small(cls, section: dict) -> dict:
        """The section at CI size (``dataprice run --small``): same data, smaller models."""
        return section

    def data_files(self) -> dict[str, str]:
        """The user data files this section names, by field (``buyer.corpus.documents``)."""
        files = {}
        for dotted in self.path_fields:
            node: Any = self
            for part in dotted.split("."):
                node = getattr(node, part, None)
            if isinstance(node, str) and node:
                files[f"buyer.{dotted}"] = node
        return files

    def seller_names(self, sellers: Any) -> list[str]:
        """The sellers' names (from the scenario, or from the buyer's data)."""
        return sellers.player_names()

    def data_problems(self, scenario: Any) -> Iterable[str]:
        """Problems found by reading the data files (their columns, cells and owners; no
        model is loaded), one line each; called by ``dataprice validate`` and before a run,
        once every file in :meth:`data_files` exists."""
        return ()

    def seller_costs(self, scenario: Any, names: list[str]) -> NDArray[np.float64] | None:  # noqa: ARG002
        """The sellers' true costs when the buyer's data gives them (per-item prices), in the
        order of ``names``; ``None``: the scenario's ``sellers.costs``."""
        return None

    def build(self, context: BuildContext) -> BuiltTask:
        """The game of one replicate (see :class:`BuildContext`)."""
        raise NotImplementedError(f"buyer {self.task!r} does not implement build()")

    def run_tables(self, run: Any) -> dict[str, pd.DataFrame]:
        """Tables computed once the run is complete (saved with it, shown by the report)."""
        return {}


#: Every registered buyer class, by ``task``, in the order of registration.
BUYERS: dict[str, type[Buyer]] = {}


def task_of(cls: type[Buyer]) -> str:
    """The ``task`` a buyer class is registered under (its ``Literal`` value)."""
    annotation = cls.model_fields["task"].annotation
    values = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or len(values) != 1:
        raise TypeError(f"{cls.__name__}.task must be Literal['<name>'] (got {annotation!r})")
    return str(values[0])


def register_buyer(cls: type[Buyer]) -> type[Buyer]:
    """Class decorator: add a buyer to :data:`BUYERS` under its ``task``."""
    task = task_of(cls)
    known = BUYERS.get(task)
    if known is not None and known is not cls:
        raise ValueError(f"a buyer with task {task!r} is already registered ({known.__module__})")
    BUYERS[task] = cls
    return cls


def buyer_offering(capability: str) -> list[str]:
    """Tasks of the buyers that can offer ``capability``."""
    return [task for task, cls in BUYERS.items() if capability in cls.offers]


__all__ = ["BUYERS", "BuildContext", "BuiltTask", "Buyer", "buyer_offering", "register_buyer", "task_of"]
