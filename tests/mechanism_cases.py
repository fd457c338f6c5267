"""Random small markets and a brute-force check of individual rationality (IR) and
incentive compatibility (IC), shared by ``tests/market/test_mechanism_properties.py`` and
``benchmarks/mechanism_properties.py``.

Instance ``i`` of seed ``s`` is drawn from ``np.random.default_rng([s, i])``, so the first
``k`` instances of any run are the same ``k`` markets (the fast slice is a prefix of the
full suite). Each instance has ``n = 1..6`` sellers, a tabulated value ``v(S)`` from one
of five families (additive; arbitrary monotone; submodular probabilistic coverage;
supermodular pairwise complements; arbitrary, not monotone), ``v(empty) = 0`` or not,
continuous random costs, and a reserve price. One instance in ten is rounded to integers
(values, costs, reserve), which makes exact ties in welfare, costs and at the reserve.

Every market is settled with the project's own code: :func:`dataprice.market.settle` on a
:class:`~dataprice.market.SubsetMarket` over a :class:`TabulatedGame`, with
:class:`ExactAllocation` or :class:`GreedyAllocation`, with and without the reserve.

IC search. For each seller ``j`` (others truthful), the allocation as a function of ``j``'s
report ``u`` changes only at *thresholds* computed here from the table, independently of
the package: for exact allocation the single value ``max_{S∋j} v(S) − b_{−j}(S) −
max_{S∌j} (v(S) − b(S))``; for greedy allocation every ``θ_t = v(S_t + j) − v(S_t) −
max(g_t, 0)`` along the greedy run without ``j`` (``j`` is taken at the first step with
``u < θ_t``); plus the reserve. Between thresholds the chosen set is constant, so every
rule except pay-as-bid pays a constant and pay-as-bid pays ``u``. The reports tried are:
each threshold and points ``δ`` below and above it, the midpoint of each interval between
thresholds and a point above the last, multiples of the cost, and an even grid over
``[0, span + c_j]``. The search also checks the model it relies on: the seller must be
selected at every report below its critical threshold and at none above it, and the
Myerson payment must equal that threshold (``mismatches``, expected 0).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.allocation import ExactAllocation
from dataprice.market.kinds import PerQueryMarket
from dataprice.market.metrics import TOLERANCE
from dataprice.market.rules import rules_for
from dataprice.valuation.game import TabulatedGame

FAMILIES = ("additive", "monotone", "submodular", "supermodular", "arbitrary")
ALLOCATIONS = ("exact", "greedy", "exact+reserve", "greedy+reserve")
#: ``shapley_all`` is the Shapley rule with ``shapley_scope="all"`` (value in the full game).
RULES = ("pay_as_bid", "loo", "shapley", "shapley_all", "myerson", "vcg")
MULTIPLIERS = (0.5, 2.0)
N_GRID = 4
MAX_SELLERS = 6
TIE_EVERY = 10  # instance i has integer data (exact ties) when i % TIE_EVERY == TIE_EVERY - 1

# What theory says, per (allocation, rule): "none" (no violation can occur; the tests
# assert 0) or "some" (violations can occur; the tests assert the detector finds some on
# the fixed seed).
_EXACT_THEORY = {
    # rule: (IR, IC)
    "pay_as_bid": ("none", "some"),
    "loo": ("none", "some"),  # S* optimal => v(S*) - v(S* - j) >= b_j
    "shapley": ("some", "some"),
    "shapley_all": ("some", "some"),
    "myerson": ("none", "none"),
    "vcg": ("none", "none"),
}
_GREEDY_THEORY = {
    "pay_as_bid": ("none", "some"),
    "loo": ("some", "some"),  # a later pick can lower j's marginal value below its bid
    "shapley": ("some", "some"),
    "shapley_all": ("some", "some"),
    "myerson": ("none", "none"),  # greedy is monotone: critical bids are truthful
    "vcg": ("some", "some"),  # the greedy welfare without j can beat the one with j
}
THEORY: dict[tuple[str, str], tuple[str, str]] = {}
for _alloc in ALLOCATIONS:
    for _rule in RULES:
        ir, ic = (_GREEDY_THEORY if _alloc.startswith("greedy") else _EXACT_THEORY)[_rule]
        if _alloc.endswith("+reserve") and _rule == "vcg":
            ic = "some"  # a binding reserve: VCG can pay more than the reserve
        THEORY[(_alloc, _rule)] = (ir, ic)


# ---------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Instance:
    index: int
    family: str
    ties: bool
    values: NDArray[np.float64]  # v(mask), 2^n entries
    costs: NDArray[np.float64]
    reserve: float

    @property
    def n(self) -> int:
        return self.costs.shape[0]

    @property
    def span(self) -> float:
        """Largest ``|v(S) - v(empty)|``: the scale of useful reports."""
        return float(np.abs(self.values - self.values[0]).max())

    def describe(self) -> str:
        """The instance in full (floats as ``repr``, so it can be pasted into a test)."""
        kind = f"{self.family}{', ties' if self.ties else ''}"
        return (
            f"instance {self.index} ({kind}): values={self.values.tolist()}, "
            f"costs={self.costs.tolist()}, reserve={self.reserve!r}"
        )


def _bits(n: int) -> NDArray[np.bool_]:
    masks = np.arange(2**n)
    return ((masks[:, None] >> np.arange(n)) & 1).astype(bool)


def _additive(n, bits, rng):
    return bits @ rng.uniform(0, 4, n)


def _monotone(n, bits, rng):
    """``v(S) = max_{T ⊆ S} r(T)``, ``r(T)`` random and growing with ``|T|`` on average."""
    raw = rng.uniform(0, 1, 2**n) * bits.sum(axis=1) * (10.0 / n)
    values = raw.copy()
    masks = np.arange(2**n)
    for j in range(n):
        has = (masks >> j) & 1 == 1
        values[has] = np.maximum(values[has], values[masks[has] ^ (1 << j)])
    return values


def _submodular(n, bits, rng):
    """Coverage ``sum_t w_t (1 - prod_{j in S} (1 - p_jt))``: probabilistic (``p`` in
    [0, 1]) or, half the time, plain set coverage (``p`` in {0, 1})."""
    needs = int(rng.integers(1, 2 * n + 2))
    weights = rng.uniform(0, 10.0 / np.sqrt(needs), needs)
    p = rng.uniform(0, 1, (n, needs)) * (rng.random((n, needs)) < 0.6)
    if rng.random() < 0.5:
        p = (p > 0).astype(np.float64)
    miss = np.prod(np.where(bits[:, :, None], 1.0 - p[None, :, :], 1.0), axis=1)
    return (1.0 - miss) @ weights


def _supermodular(n, bits, rng):
    """Additive part plus nonnegative pairwise complements (and sometimes a bonus for a
    random group): every marginal value grows with the coalition."""
    base = bits @ rng.uniform(0, 2, n)
    pair = np.triu(rng.uniform(0, 4, (n, n)) * (rng.random((n, n)) < 0.5), 1)
    values = base + np.einsum("mi,ij,mj->m", bits, pair, bits)
    if n >= 2 and rng.random() < 0.5:
        group = rng.choice(n, size=int(rng.integers(2, n + 1)), replace=False)
        values = values + rng.uniform(2, 8) * bits[:, group].all(axis=1)
    return values


def _arbitrary(n, bits, rng):
    values = rng.uniform(0, 10, 2**n)
    values[0] = 0.0
    return values


_BUILDERS = {
    "additive": _additive,
    "monotone": _monotone,
    "submodular": _submodular,
    "supermodular": _supermodular,
    "arbitrary": _arbitrary,
}


def make_instance(seed: int, index: int) -> Instance:
    rng = np.random.default_rng([seed, index])
    family = FAMILIES[index % len(FAMILIES)]
    ties = index % TIE_EVERY == TIE_EVERY - 1
    n = int(rng.integers(1, MAX_SELLERS + 1))
    values = _BUILDERS[family](n, _bits(n), rng)
    if rng.random() < 0.3:
        values = values + rng.uniform(-3, 3)  # v(empty) != 0
    # costs around the average marginal value, so some sellers are taken and some not
    scale = max(float(values.max() - values[0]), 1.0) / n
    costs = rng.uniform(0, 2.0 * scale, n)
    reserve = float(rng.uniform(0.2, 1.2) * 2.0 * scale)
    if ties:
        values = np.round(values)
        costs = np.round(costs)
        if n >= 2:
            costs[1] = costs[0]  # equal costs
        reserve = float(np.round(reserve))
    return Instance(index, family, ties, values.astype(np.float64), costs, reserve)


def instances(seed: int, count: int, start: int = 0):
    for index in range(start, start + count):
        yield make_instance(seed, index)


def _coverage_table(covers: list[set[str]], weights: dict[str, float]) -> NDArray[np.float64]:
    n = len(covers)
    return np.array(
        [
            sum(weights[t] for t in set().union(*(covers[j] for j in range(n) if m >> j & 1)))
            for m in range(2**n)
        ]
    )


def constructed_instances() -> list[tuple[Instance, list[tuple[str, str, str]]]]:
    """Hand-made markets, each with the violations it must show ``(allocation, rule,
    "IR" | "IC")``: they make the detector's failures visible on the fast slice even for
    violations that random instances show rarely.

    * ``substitutes``: seller 0 covers needs a, b (worth 5 each) at cost 1; seller 1 covers a
      and c (4) at cost 0.5; seller 2 covers b and d (4) at cost 0.5. Greedy takes seller 0
      first (net 9 against 8.5), then 1 and 2, which make seller 0 worthless: LOO pays it
      0 and VCG on the greedy welfare pays it ``1 + 16 - 17 = 0`` (greedy without it finds
      welfare 17), both below its cost 1. Exact allocation takes {1, 2}.
    * ``complements``: worth 10 together, nothing alone, costs 1 and 8: exact allocation
      takes both and Shapley pays 5 < 8 (greedy takes neither).
    * ``reserve``: additive values 10 and 1, costs 5 and 0.5, reserve 4: seller 0 is barred
      at its cost but reporting 4 wins and VCG pays it 10.
    * ``interchangeable``: v = 10 with either or both, costs 1 and 2: seller 1 underbids and
      is paid 10 by LOO and Shapley; pay-as-bid's winner overbids up to 2.
    """
    substitutes = _coverage_table(
        [{"a", "b"}, {"a", "c"}, {"b", "d"}], {"a": 5.0, "b": 5.0, "c": 4.0, "d": 4.0}
    )
    return [
        (
            Instance(
                -1, "constructed: substitutes", False, substitutes, np.array([1.0, 0.5, 0.5]), 2.0
            ),
            [
                ("greedy", "loo", "IR"),
                ("greedy", "vcg", "IR"),
                ("greedy+reserve", "loo", "IR"),
                ("greedy+reserve", "vcg", "IR"),
            ],
        ),
        (
            Instance(
                -2,
                "constructed: complements",
                False,
                np.array([0.0, 0.0, 0.0, 10.0]),
                np.array([1.0, 8.0]),
                9.0,
            ),
            [(a, r, "IR") for a in ("exact", "exact+reserve") for r in ("shapley", "shapley_all")],
        ),
        (
            Instance(
                -3,
                "constructed: reserve",
                False,
                np.array([0.0, 10.0, 1.0, 11.0]),
                np.array([5.0, 0.5]),
                4.0,
            ),
            [("exact+reserve", "vcg", "IC"), ("greedy+reserve", "vcg", "IC")],
        ),
        (
            Instance(
                -4,
                "constructed: interchangeable",
                False,
                np.array([0.0, 10.0, 10.0, 10.0]),
                np.array([1.0, 2.0]),
                5.0,
            ),
            [(a, r, "IC") for a in ("exact", "greedy") for r in ("loo", "shapley", "pay_as_bid")],
        ),
    ]


# --------------------------------------------------------------------------- thresholds


def exact_thresholds(values, bids, j: int, reserve: float | None) -> list[float]:
    """The report at which seller ``j`` enters or leaves the exact allocation (others'
    reports fixed): ``max_{S∋j} v(S) - b_{-j}(S) - max_{S∌j} v(S) - b(S)`` over feasible S."""
    n = bids.shape[0]
    bits = _bits(n)
    others = bids.copy()
    others[j] = 0.0
    welfare = values - bits @ others
    if reserve is not None:
        barred = (bids > reserve) & (np.arange(n) != j)
        welfare = np.where(bits[:, barred].any(axis=1), -np.inf, welfare)
    with_j = bits[:, j]
    return [float(welfare[with_j].max() - welfare[~with_j].max())]


def greedy_thresholds(values, bids, j: int, reserve: float | None) -> list[float]:
    """``θ_t = v(S_t + j) - v(S_t) - max(g_t, 0)`` along the greedy run without ``j``
    (largest positive net marginal first, ties to the lowest index)."""
    n = bids.shape[0]
    allowed = [k for k in range(n) if k != j and (reserve is None or bids[k] <= reserve)]
    mask, thetas = 0, []
    while True:
        current = values[mask]
        candidates = [k for k in allowed if not mask >> k & 1]
        gains = [values[mask | 1 << k] - current - bids[k] for k in candidates]
        best = max(gains, default=-np.inf)
        thetas.append(float(values[mask | 1 << j] - current - max(best, 0.0)))
        if best <= 1e-12:
            return thetas
        mask |= 1 << candidates[gains.index(best)]


def candidate_reports(cost: float, thresholds: list[float], scale: float) -> NDArray[np.float64]:
    """Misreports to try: thresholds and ``δ`` around them, one point inside every interval
    between thresholds and above the last, multiples of the cost, an even grid."""
    delta = 1e-6 * scale
    kinks = sorted({t for t in thresholds if np.isfinite(t) and t > -delta})
    points = [0.0, *(cost * m for m in MULTIPLIERS), *np.linspace(0.0, scale + cost, N_GRID)]
    for t in kinks:
        points += [t - delta, t, t + delta]
    edges = [0.0, *[t for t in kinks if t > 0]]
    points += [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    points.append(edges[-1] + max(1.0, 0.5 * scale))
    reports = np.unique(np.asarray(points))
    return reports[reports >= 0.0]


# ------------------------------------------------------------------------------- checks


@dataclass
class Witness:
    """An instance where a property fails, with the seller and the misreport."""

    instance: Instance
    seller: int
    truthful_utility: float
    report: float | None = None
    utility: float | None = None

    def describe(self) -> str:
        line = f"{self.instance.describe()}; seller {self.seller}"
        line += f", truthful utility {self.truthful_utility!r}"
        if self.report is not None:
            line += f"; reporting {self.report!r} gives utility {self.utility!r}"
        return line


def _better(new: Witness, old: Witness | None) -> bool:
    """Keep the smallest witness: fewest sellers, then the earliest instance."""
    return old is None or (new.instance.n, new.instance.index) < (
        old.instance.n,
        old.instance.index,
    )


@dataclass
class Tally:
    """Counts for one (allocation, rule) cell over many instances."""

    instances: int = 0
    ir_instances: int = 0  # instances with a seller whose truthful utility is negative
    ir_sellers: int = 0
    worst_loss: float = 0.0
    ic_instances: int = 0  # instances where some seller gains by misreporting
    ic_sellers: int = 0
    max_gain: float = 0.0
    ir_witness: Witness | None = None
    ic_witness: Witness | None = None

    def merge(self, other: Tally) -> None:
        self.instances += other.instances
        self.ir_instances += other.ir_instances
        self.ir_sellers += other.ir_sellers
        self.worst_loss = max(self.worst_loss, other.worst_loss)
        self.ic_instances += other.ic_instances
        self.ic_sellers += other.ic_sellers
        self.max_gain = max(self.max_gain, other.max_gain)
        if other.ir_witness is not None and _better(other.ir_witness, self.ir_witness):
            self.ir_witness = other.ir_witness
        if other.ic_witness is not None and _better(other.ic_witness, self.ic_witness):
            self.ic_witness = other.ic_witness


@dataclass
class Results:
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)  # model checks that failed
    reports_tried: int = 0

    def tally(self, allocation: str, rule: str) -> Tally:
        return self.tallies.setdefault((allocation, rule), Tally())

    def merge(self, other: Results) -> None:
        for key, tally in other.tallies.items():
            self.tally(*key).merge(tally)
        self.mismatches += other.mismatches
        self.reports_tried += other.reports_tried


def _markets(inst: Instance, allocation: str) -> dict[str, SubsetMarket]:
    game = TabulatedGame(inst.values)
    rule_allocation = GreedyAllocation() if allocation.startswith("greedy") else ExactAllocation()
    reserve = inst.reserve if allocation.endswith("+reserve") else None
    selected = SubsetMarket(game, allocation=rule_allocation, reserve=reserve)
    everyone = SubsetMarket(game, allocation=rule_allocation, reserve=reserve, shapley_scope="all")
    return {rule: everyone if rule == "shapley_all" else selected for rule in RULES}


def _settle_all(markets, bids, costs, rules):
    return {
        rule: settle(markets[rule], bids, "shapley" if rule == "shapley_all" else rule, costs)
        for rule in rules
    }


def check_instance(
    inst: Instance,
    results: Results,
    allocations=ALLOCATIONS,
    rules=RULES,
) -> None:
    """Settle ``inst`` at truthful reports and at every candidate misreport of each seller,
    under every (allocation, rule); add the outcome to ``results``."""
    scale = max(inst.span, 1.0)
    tol = TOLERANCE * scale
    costs = inst.costs
    for allocation in allocations:
        markets = _markets(inst, allocation)
        reserve = inst.reserve if allocation.endswith("+reserve") else None
        thresholds_of = greedy_thresholds if allocation.startswith("greedy") else exact_thresholds
        truthful = _settle_all(markets, costs, costs, rules)
        cells = {rule: Tally(instances=1) for rule in rules}
        best = {rule: truthful[rule].utilities.copy() for rule in rules}
        best_report = {rule: costs.copy() for rule in rules}
        for j in range(inst.n):
            thresholds = thresholds_of(inst.values, costs, j, reserve)
            critical = max(thresholds)
            if reserve is not None:
                critical = min(critical, reserve)
                thresholds = [*thresholds, reserve]
            _check_truthful_model(inst, allocation, truthful, j, critical, scale, results)
            for report in candidate_reports(costs[j], thresholds, scale):
                bids = costs.copy()
                bids[j] = report
                outcomes = _settle_all(markets, bids, costs, rules)
                results.reports_tried += 1
                selected = bool(outcomes[rules[0]].selected[j])
                margin = 0.5e-6 * scale
                if (report < critical - margin and not selected) or (
                    report > critical + margin and selected
                ):
                    results.mismatches.append(
                        f"{allocation}: seller {j} {'' if selected else 'not '}selected at report "
                        f"{report!r}, critical threshold {critical!r}; {inst.describe()}"
                    )
                for rule in rules:
                    u = outcomes[rule].utilities[j]
                    if u > best[rule][j]:
                        best[rule][j], best_report[rule][j] = u, report
        for rule in rules:
            cell = cells[rule]
            utilities = truthful[rule].utilities
            losers = np.flatnonzero(utilities < -tol)
            if losers.size:
                cell.ir_instances, cell.ir_sellers = 1, int(losers.size)
                cell.worst_loss = float(-utilities.min())
                j = int(losers[np.argmin(utilities[losers])])
                cell.ir_witness = Witness(inst, j, float(utilities[j]))
            gains = best[rule] - utilities
            gainers = np.flatnonzero(gains > tol)
            if gainers.size:
                cell.ic_instances, cell.ic_sellers = 1, int(gainers.size)
                cell.max_gain = float(gains.max())
                j = int(gainers[np.argmax(gains[gainers])])
                cell.ic_witness = Witness(
                    inst, j, float(utilities[j]), float(best_report[rule][j]), float(best[rule][j])
                )
            results.tally(allocation, rule).merge(cell)


def _check_truthful_model(inst, allocation, truthful, j, critical, scale, results) -> None:
    """At truthful reports, the Myerson payment of a selected seller is its critical
    threshold, and the seller is selected iff its cost is below it."""
    if "myerson" not in truthful:
        return
    outcome = truthful["myerson"]
    cost, margin = inst.costs[j], 0.5e-6 * scale
    if outcome.selected[j] and abs(outcome.payments[j] - critical) > 1e-9 * scale:
        results.mismatches.append(
            f"{allocation}: Myerson pays seller {j} {outcome.payments[j]!r}, critical threshold "
            f"{critical!r}; {inst.describe()}"
        )
    if (cost < critical - margin and not outcome.selected[j]) or (
        cost > critical + margin and outcome.selected[j]
    ):
        results.mismatches.append(
            f"{allocation}: seller {j} selection at its cost {cost!r} disagrees with critical "
            f"threshold {critical!r}; {inst.describe()}"
        )


def run_suite(
    seed: int,
    count: int,
    start: int = 0,
    allocations=ALLOCATIONS,
    rules=RULES,
    workers: int = 1,
    max_sellers: int = MAX_SELLERS,
) -> Results:
    """Check instances ``start .. start + count - 1`` of ``seed`` (in ``workers`` processes),
    skipping those with more than ``max_sellers`` sellers."""
    if workers <= 1 or count < 2 * workers:
        results = Results()
        for inst in instances(seed, count, start):
            if inst.n <= max_sellers:
                check_instance(inst, results, allocations, rules)
        return results
    from concurrent.futures import ProcessPoolExecutor

    chunks = [c for c in np.array_split(np.arange(start, start + count), 8 * workers) if c.size]
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(
            run_suite,
            [seed] * len(chunks),
            [len(c) for c in chunks],
            [int(c[0]) for c in chunks],
            [allocations] * len(chunks),
            [rules] * len(chunks),
            [1] * len(chunks),
            [max_sellers] * len(chunks),
        )
        results = Results()
        for part in parts:
            results.merge(part)
    return results


# --------------------------------------------------------------------- per-query market


PER_QUERY_THEORY = {
    "pay_as_bid": ("none", "some"),
    "loo": ("some", "some"),  # published v(N) - v(N without w): can be below the winner's cost
    "value_bought": ("none", "some"),  # pays v_w >= b_w at truthful reports
    "shapley": ("none", "some"),  # selected scope: same as value_bought
    "shapley_all": ("some", "some"),  # airport value can be below the cost
    "myerson": ("none", "none"),
    "vcg": ("none", "none"),
}


@dataclass(frozen=True)
class PerQueryInstance:
    index: int
    values: NDArray[np.float64]
    owners: NDArray[np.int64]
    costs: NDArray[np.float64]

    def describe(self) -> str:
        return (
            f"per-query instance {self.index}: values={self.values.tolist()}, "
            f"owners={self.owners.tolist()}, costs={self.costs.tolist()}"
        )


def make_per_query_instance(seed: int, index: int) -> PerQueryInstance:
    """1..4 queries, 2..5 owners, per query a random subset of owners as candidates (one
    document each, ``-1`` pads); one instance in ten with integer data (ties)."""
    rng = np.random.default_rng([seed, 1_000_003, index])
    n_owners = int(rng.integers(2, 6))
    queries = int(rng.integers(1, 5))
    width = int(rng.integers(1, n_owners + 1))
    owners = np.full((queries, width), -1, dtype=np.int64)
    for q in range(queries):
        k = int(rng.integers(1, width + 1))
        owners[q, :k] = rng.choice(n_owners, size=k, replace=False)
    values = np.where(owners >= 0, rng.uniform(0, 10, owners.shape), 0.0)
    costs = rng.uniform(0, 8, n_owners)
    if index % TIE_EVERY == TIE_EVERY - 1:
        values, costs = np.round(values), np.round(costs)
    return PerQueryInstance(index, values, owners, costs)


def per_query_thresholds(inst: PerQueryInstance, j: int) -> list[float]:
    """Per query with a candidate of owner ``j``: ``v_qj - max(0, best other net value)``,
    the report at which ``j`` starts or stops winning that query."""
    out = []
    for q in range(inst.values.shape[0]):
        row = inst.owners[q]
        if j not in row:
            continue
        others = [inst.values[q, d] - inst.costs[o] for d, o in enumerate(row) if o >= 0 and o != j]
        out.append(float(inst.values[q, list(row).index(j)] - max([0.0, *others])))
    return out


def check_per_query_instance(inst: PerQueryInstance, results: Results) -> None:
    span = float(inst.values.max(axis=1).sum())
    scale = max(span, 1.0)
    tol = TOLERANCE * scale
    markets = {
        "selected": PerQueryMarket(inst.values, inst.owners, inst.costs.shape[0]),
        "all": PerQueryMarket(inst.values, inst.owners, inst.costs.shape[0], shapley_scope="all"),
    }
    rules = [*rules_for("per_query"), "shapley_all"]

    def settle_rule(bids, rule):
        market = markets["all" if rule == "shapley_all" else "selected"]
        return market.settle(bids, "shapley" if rule == "shapley_all" else rule, inst.costs)

    costs = inst.costs
    truthful = {rule: settle_rule(costs, rule).utilities for rule in rules}
    best = {rule: truthful[rule].copy() for rule in rules}
    best_report = {rule: costs.copy() for rule in rules}
    for j in range(costs.shape[0]):
        for report in candidate_reports(costs[j], per_query_thresholds(inst, j), scale):
            bids = costs.copy()
            bids[j] = report
            results.reports_tried += 1
            for rule in rules:
                u = settle_rule(bids, rule).utilities[j]
                if u > best[rule][j]:
                    best[rule][j], best_report[rule][j] = u, report
    for rule in rules:
        cell = Tally(instances=1)
        utilities = truthful[rule]
        losers = np.flatnonzero(utilities < -tol)
        if losers.size:
            cell.ir_instances, cell.ir_sellers = 1, int(losers.size)
            cell.worst_loss = float(-utilities.min())
        gains = best[rule] - utilities
        gainers = np.flatnonzero(gains > tol)
        if gainers.size:
            cell.ic_instances, cell.ic_sellers = 1, int(gainers.size)
            cell.max_gain = float(gains.max())
        results.tally("per-query", rule).merge(cell)


def run_per_query_suite(seed: int, count: int) -> Results:
    results = Results()
    for index in range(count):
        check_per_query_instance(make_per_query_instance(seed, index), results)
    return results


# ------------------------------------------------------------------------------ output


def markdown_table(results: Results, theory=None) -> str:
    """One row per (allocation, rule): instances, IR violations, profitable misreports."""
    lines = [
        (
            "| allocation | rule | instances | IR violations (instances / sellers) | worst loss "
            "| instances with a profitable misreport | largest gain | theory (IR, IC) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for (allocation, rule), t in results.tallies.items():
        expected = (theory or {}).get((allocation, rule))
        if expected is None and allocation == "per-query":
            expected = PER_QUERY_THEORY.get(rule)
        lines.append(
            f"| {allocation} | {rule} | {t.instances} | {t.ir_instances} / {t.ir_sellers} | "
            f"{t.worst_loss:.3g} | {t.ic_instances} | {t.max_gain:.3g} | "
            f"{', '.join(expected) if expected else ''} |"
        )
    return "\n".join(lines)
