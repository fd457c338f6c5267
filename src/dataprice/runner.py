"""Run a scenario: build the buyer's game, value the sellers, settle under every rule.

One *replicate* is one draw of the task's randomness (data split, label noise, training,
Monte Carlo samples) from the child stream ``(seed, replicate)``; the sellers and their
costs stay the same across replicates, so the spread of values and payments across
replicates is the stability the report shows. Within a replicate, sellers report for
``rounds`` rounds under the scenario's bidding strategy; every rule settles every round.

Replicates are independent jobs mapped over the engine, so results do not depend on the
engine or the number of workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dataprice import __version__
from dataprice.agents.strategies import make_bids
from dataprice.engine import make_engine
from dataprice.market.allocation import ALLOCATION_RULES
from dataprice.market.continuous import ContinuousMarket
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import (
    TOLERANCE,
    AuditResult,
    efficiency,
    mean_rank_correlation,
    optimal_welfare,
    subset_settler,
    truthfulness_audit,
)
from dataprice.market.payments import SubsetMarket
from dataprice.rng import child_rng, child_sequence
from dataprice.scenario import MethodSpec, Scenario
from dataprice.valuation.game import CachedGame, Game, tabulate
from dataprice.valuation.methods import METHODS
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import MaxTime, StandardErrorBelow
from dataprice.valuation.utilities.classifier import ClassifierGame, make_shards
from dataprice.valuation.utilities.mean_estimation import MeanEstimationGame, make_mean_estimation_task
from dataprice.valuation.utilities.selection import SingleWinnerGame


@dataclass
class ReplicateResult:
    """Everything one replicate produced."""

    replicate: int
    seed: int
    sellers: pd.DataFrame  # what each seller contributed in this replicate
    values: dict[str, ValuationResult]
    outcomes: dict[str, list[Outcome]]  # rule -> one outcome per round
    audits: dict[str, AuditResult]
    best_welfare: float
    game_evaluations: int
    seconds: float


@dataclass
class RunResult:
    """A whole run: the scenario, the sellers' costs and every replicate."""

    scenario: Scenario
    costs: np.ndarray
    replicates: list[ReplicateResult]
    seconds: float = 0.0
    provenance: dict = field(default_factory=dict)

    @property
    def player_names(self) -> list[str]:
        return self.scenario.sellers.player_names()

    @property
    def rules(self) -> list[str]:
        return list(self.scenario.market.payment_rules)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m.method for m in self.scenario.valuation))

    # -- tables -----------------------------------------------------------------------------
    def outcomes_table(self) -> pd.DataFrame:
        """Long table: one row per replicate, round, rule and seller."""
        rows = []
        for rep in self.replicates:
            for rule, outcomes in rep.outcomes.items():
                for t, o in enumerate(outcomes):
                    for j, name in enumerate(self.player_names):
                        rows.append(
                            {
                                "replicate": rep.replicate,
                                "round": t,
                                "rule": rule,
                                "seller": name,
                                "cost": self.costs[j],
                                "bid": o.bids[j],
                                "quantity": o.quantities[j],
                                "selected": bool(o.selected[j]),
                                "payment": o.payments[j],
                                "utility": o.utilities[j],
                            }
                        )
        return pd.DataFrame(rows)

    def values_table(self) -> pd.DataFrame:
        """Long table: one row per replicate, method and seller."""
        frames = []
        for rep in self.replicates:
            for result in rep.values.values():
                frame = result.to_dataframe().rename(columns={"player": "seller"})
                frame.insert(0, "replicate", rep.replicate)
                frame["n_evaluations"] = result.n_evaluations
                frame["converged"] = result.converged
                frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def sellers_table(self) -> pd.DataFrame:
        """One row per seller: contribution, cost, bid, values by method, payments and
        utilities by rule (means over replicates and rounds; ``*_sd`` across replicates)."""
        names = self.player_names
        table = pd.DataFrame({"seller": names, "cost": self.costs})
        contrib = pd.concat([r.sellers for r in self.replicates]).groupby("seller", sort=False).mean()
        table = table.join(contrib, on="seller")
        outcomes = self.outcomes_table()
        first = outcomes[outcomes["rule"] == self.rules[0]]
        table["bid"] = first.groupby("seller", sort=False)["bid"].mean().reindex(names).to_numpy()
        values = self.values_table()
        for method in self.methods:
            per = values[values["method"] == method].pivot(index="replicate", columns="seller", values="value")
            table[f"value[{method}]"] = per[names].mean(axis=0).to_numpy()
            if len(self.replicates) > 1:
                table[f"value_sd[{method}]"] = per[names].std(axis=0, ddof=1).to_numpy()
            se = values[values["method"] == method].groupby("seller", sort=False)["stderr"].mean()
            table[f"value_se[{method}]"] = se.reindex(names).to_numpy()
        for rule in self.rules:
            sub = outcomes[outcomes["rule"] == rule]
            grouped = sub.groupby("seller", sort=False)
            table[f"selected[{rule}]"] = grouped["selected"].mean().reindex(names).to_numpy()
            table[f"payment[{rule}]"] = grouped["payment"].mean().reindex(names).to_numpy()
            table[f"utility[{rule}]"] = grouped["utility"].mean().reindex(names).to_numpy()
            if self.scenario.audit.enabled:
                gains = np.mean([rep.audits[rule].gain for rep in self.replicates], axis=0)
                table[f"misreport_gain[{rule}]"] = gains
        return table

    def mechanisms_table(self) -> pd.DataFrame:
        """One row per payment rule: totals, efficiency, IR, truthfulness and stability."""
        rows = []
        for rule in self.rules:
            paid, surplus, welfare, eff, ir, selected = [], [], [], [], [], []
            for rep in self.replicates:
                for o in rep.outcomes[rule]:
                    paid.append(o.total_paid)
                    surplus.append(o.buyer_surplus)
                    welfare.append(o.welfare)
                    eff.append(efficiency(o, rep.best_welfare))
                    ir.append(int(np.sum(o.utilities < -TOLERANCE * max(abs(rep.best_welfare), 1.0))))
                    selected.append(int(o.selected.sum()))
            payments = np.array([np.mean([o.payments for o in rep.outcomes[rule]], axis=0) for rep in self.replicates])
            mean = payments.mean(axis=0)
            row = {
                "rule": rule,
                "sellers_selected": float(np.mean(selected)),
                "total_paid": float(np.mean(paid)),
                "buyer_surplus": float(np.mean(surplus)),
                "welfare": float(np.mean(welfare)),
                "efficiency": float(np.mean(eff)),
                "ir_violations": float(np.mean(ir)),
            }
            if self.scenario.audit.enabled:
                gains = np.array([rep.audits[rule].gain for rep in self.replicates])
                row["max_misreport_gain"] = float(gains.max(axis=1).mean())
                row["sellers_gaining"] = float((gains > TOLERANCE * max(abs(row["welfare"]), 1.0)).sum(axis=1).mean())
                row["truthful"] = bool(row["sellers_gaining"] == 0)
            if len(self.replicates) > 1:
                std = payments.std(axis=0, ddof=1)
                paid_any = np.abs(mean) > TOLERANCE
                row["payment_cv"] = float(np.mean(std[paid_any] / np.abs(mean[paid_any]))) if paid_any.any() else float("nan")
                row["rank_correlation"] = mean_rank_correlation(payments)
            rows.append(row)
        return pd.DataFrame(rows)


# --- building a replicate ----------------------------------------------------------------------


def _replicate_seed(scenario: Scenario, replicate: int) -> int:
    return int(child_sequence(scenario.seed, replicate).generate_state(1)[0])


def build_game(scenario: Scenario, seed: int, bids: np.ndarray) -> tuple[Game, pd.DataFrame, object]:
    """The buyer's game for one replicate, a table of what each seller contributes, and the
    task object (shards, document values or the mean-estimation task)."""
    names = scenario.sellers.player_names()
    buyer = scenario.buyer
    n = scenario.sellers.count
    if buyer.task == "classifier":
        part = scenario.sellers.partition
        shards = make_shards(
            buyer.dataset,
            n,
            seed=seed,
            validation_fraction=buyer.validation_fraction,
            partition=part.kind,
            sizes=part.sizes,
            alpha=part.alpha,
            noisy_sellers=scenario.sellers.label_noise.sellers,
            noise_fraction=scenario.sellers.label_noise.fraction,
            max_points=buyer.max_points,
        )
        game = ClassifierGame(
            shards,
            model=buyer.model,
            value_per_quality=buyer.value_per_quality,
            k_neighbors=buyer.k_neighbors,
            regularization=buyer.regularization,
            player_names=names,
        )
        contrib = pd.DataFrame(
            {"seller": names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
        )
        return game, contrib, shards
    if buyer.task == "single_winner":
        if buyer.values is not None:
            doc_values = np.asarray(buyer.values, dtype=np.float64)
        else:
            doc_values = buyer.value_distribution.draw(n, child_rng(scenario.seed, 2000))
        doc_values = doc_values * buyer.value_per_quality
        contrib = pd.DataFrame({"seller": names, "document_value": doc_values})
        return SingleWinnerGame(doc_values, names), contrib, doc_values
    task = make_mean_estimation_task(
        n,
        buyer.n_buyers,
        dim=buyer.dim,
        noise=buyer.noise,
        correlation=buyer.correlation,
        value_per_quality=buyer.value_per_quality,
        seed=seed,
    )
    contrib = pd.DataFrame({"seller": names, "noise_variance": task.noise})
    return MeanEstimationGame(task, bids, names), contrib, task


def make_method(spec: MethodSpec, seed: int, progress: bool):
    """A configured valuation method from its scenario spec."""
    cls = METHODS[spec.method]
    if spec.method in {"tmc_shapley", "msr_banzhaf"}:
        stopping = None
        if spec.stderr is not None:
            stopping = StandardErrorBelow(spec.stderr)
        if spec.max_seconds is not None:
            stopping = MaxTime(spec.max_seconds) if stopping is None else stopping | MaxTime(spec.max_seconds)
        kwargs = {"stopping": stopping, "max_evaluations": spec.max_evaluations, "seed": seed, "progress": progress}
        if spec.batch_size is not None:
            kwargs["batch_size"] = spec.batch_size
        if spec.method == "tmc_shapley":
            kwargs["truncation_rtol"] = spec.truncation_rtol
        return cls(**kwargs)
    if spec.method in {"exact_shapley", "exact_banzhaf"}:
        return cls(progress=progress)
    return cls()


@dataclass(frozen=True)
class _ReplicateJob:
    """Picklable description of one replicate (shipped to workers)."""

    scenario: Scenario
    costs: np.ndarray
    replicate: int
    progress: bool

    def __call__(self, _=None) -> ReplicateResult:
        return run_replicate(self.scenario, self.costs, self.replicate, progress=self.progress)


def run_replicate(scenario: Scenario, costs: np.ndarray, replicate: int, *, progress: bool = False) -> ReplicateResult:
    """Build the game, value the sellers, settle every round under every rule, audit."""
    started = time.monotonic()
    seed = _replicate_seed(scenario, replicate)
    bid_rounds = [
        make_bids(
            scenario.bidding.strategy,
            costs,
            child_rng(scenario.seed, replicate, 3000 + t),
            markup=scenario.bidding.markup,
            markup_low=scenario.bidding.markup_low,
            markup_high=scenario.bidding.markup_high,
        )
        for t in range(scenario.rounds)
    ]
    game, contrib, task = build_game(scenario, seed, bid_rounds[0])
    needs_table = scenario.market_kind == "subset" and scenario.market.allocation == "exact"
    needs_table |= any(METHODS[m.method].needs_tabulation for m in scenario.valuation)
    counted = CachedGame(game)
    valued: Game = tabulate(counted, progress=progress) if needs_table else counted

    values: dict[str, ValuationResult] = {}
    for k, spec in enumerate(scenario.valuation):
        method = make_method(spec, int(child_sequence(seed, 10 + k).generate_state(1)[0]), progress)
        target = game if spec.method == "knn_shapley" else valued
        values[spec.method] = method.fit(target).result

    rules = scenario.market.payment_rules
    outcomes: dict[str, list[Outcome]] = {}
    audits: dict[str, AuditResult] = {}
    audit = scenario.audit
    if scenario.market_kind == "subset":
        market = SubsetMarket(
            valued,
            allocation=ALLOCATION_RULES[scenario.market.allocation](),
            reserve=scenario.market.reserve,
            shapley_scope=scenario.market.shapley_scope,
            shapley_values=values["exact_shapley"].values if "exact_shapley" in values else None,
            seed=seed,
        )
        settle_fn = subset_settler(market)
        best = optimal_welfare(market, costs)
        span = abs(valued.grand_value() - valued.empty_value())
    else:
        cmarket = ContinuousMarket(task, reserve=scenario.market.reserve)
        settle_fn = cmarket.settle
        best = cmarket.optimal_welfare(costs)
        span = task.value(task.allocation(np.zeros_like(costs)))
    for rule in rules:
        outcomes[rule] = [settle_fn(b, rule, costs) for b in bid_rounds]
        if audit.enabled:
            audits[rule] = truthfulness_audit(
                settle_fn, rule, costs, span=span, multipliers=audit.multipliers, n_linear=audit.grid_points
            )
    return ReplicateResult(
        replicate=replicate,
        seed=seed,
        sellers=contrib,
        values=values,
        outcomes=outcomes,
        audits=audits,
        best_welfare=float(best),
        game_evaluations=counted.misses,
        seconds=time.monotonic() - started,
    )


def run_scenario(scenario: Scenario, *, progress: bool = True, engine=None) -> RunResult:
    """Run every replicate of ``scenario`` (on ``engine``, default: the scenario's)."""
    started = time.monotonic()
    costs = scenario.sellers.draw_costs(scenario.seed)
    own_engine = engine is None
    engine = engine or make_engine(scenario.engine.kind, scenario.engine.workers)
    parallel = engine.name != "serial" and scenario.replicates > 1
    jobs = [_ReplicateJob(scenario, costs, r, progress and not parallel) for r in range(scenario.replicates)]
    try:
        if parallel:
            with tqdm(total=len(jobs), desc="replicates", disable=not progress) as bar:
                replicates = engine.map(_run_job, jobs)
                bar.update(len(jobs))
        else:
            replicates = [job() for job in tqdm(jobs, desc="replicates", disable=not progress or len(jobs) == 1)]
    finally:
        if own_engine:
            engine.shutdown()
    return RunResult(
        scenario=scenario,
        costs=costs,
        replicates=replicates,
        seconds=time.monotonic() - started,
        provenance={"dataprice": __version__, "engine": engine.name, "seed": scenario.seed},
    )


def _run_job(job: _ReplicateJob) -> ReplicateResult:
    return job()
