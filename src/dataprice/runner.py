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

import hashlib
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from dataprice import __version__
from dataprice.agents.model import MarketEnvironment, MarketModel, RoundMarket, with_budget
from dataprice.agents.strategies import make_strategy
from dataprice.buyers import build_task, seller_names
from dataprice.engine import SerialEngine, make_engine
from dataprice.market.allocation import ALLOCATION_RULES, subset_sums
from dataprice.market.continuous import ContinuousMarket
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import (
    AuditResult,
    optimal_welfare,
    subset_settler,
    truthfulness_audit,
)
from dataprice.market.payments import SubsetMarket
from dataprice.results import ReplicateResult, RunResult
from dataprice.rng import child_rng, child_sequence
from dataprice.scenario import MethodSpec, Scenario
from dataprice.valuation.game import CachedGame, Game, TabulatedGame, tabulate
from dataprice.valuation.methods import METHODS
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.stopping import MaxTime, StandardErrorBelow
from dataprice.valuation.store import CoalitionStore

__all__ = ["ReplicateCheckpoints", "ReplicateResult", "RunResult", "run_replicate", "run_scenario"]


# --- building a replicate ----------------------------------------------------------------------


def _replicate_seed(scenario: Scenario, replicate: int) -> int:
    return int(child_sequence(scenario.seed, replicate).generate_state(1)[0])


def make_method(spec: MethodSpec, seed: int, progress: bool):
    """A configured valuation method from its scenario spec."""
    cls = METHODS[spec.method]
    if spec.method in {"tmc_shapley", "msr_banzhaf", "asymmetric_shapley", "unlearning_shapley"}:
        stopping = None
        if spec.stderr is not None:
            stopping = StandardErrorBelow(spec.stderr)
        if spec.max_seconds is not None:
            stopping = MaxTime(spec.max_seconds) if stopping is None else stopping | MaxTime(spec.max_seconds)
        kwargs = {"stopping": stopping, "max_evaluations": spec.max_evaluations, "seed": seed, "progress": progress}
        if spec.batch_size is not None:
            kwargs["batch_size"] = spec.batch_size
        if spec.method in {"tmc_shapley", "asymmetric_shapley", "unlearning_shapley"}:
            kwargs["truncation_rtol"] = spec.truncation_rtol
        if spec.method == "unlearning_shapley":
            kwargs.update(unlearning=spec.unlearning, targets=spec.targets)
        if spec.method == "asymmetric_shapley":
            kwargs["groups"] = spec.groups
        return cls(**kwargs)
    if spec.method == "exact_asymmetric_shapley":
        return cls(groups=spec.groups, progress=progress)
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


def shifted_game(game: Game, shocks: np.ndarray) -> Game:
    """``v(S) + sum_{j in S} shocks_j`` (a table stays a table)."""
    if isinstance(game, TabulatedGame):
        return TabulatedGame(game.values + subset_sums(shocks), game.player_names)
    return _ShiftedGame(game, shocks)


class _ShiftedGame(Game):
    def __init__(self, game: Game, shocks: np.ndarray) -> None:
        super().__init__(game.n_players, game.player_names)
        self.game, self.shocks = game, shocks

    def value_function(self, coalitions):
        return self.game(coalitions) + coalitions @ self.shocks


def build_environment(
    scenario: Scenario, seed: int, valued: Game, task, costs: np.ndarray, values: dict[str, ValuationResult]
) -> MarketEnvironment:
    """The repeated market of one replicate (static, or with per-round value shocks)."""
    info = {"task": scenario.buyer.task, "value_per_quality": scenario.buyer.value_per_quality}
    names = seller_names(scenario)
    if scenario.market_kind == "per_query":
        market = task
        return MarketEnvironment.static(
            market.settle, market.optimal_welfare(costs), costs, market.value_span(), names, **info
        )
    if scenario.market_kind == "continuous":
        cmarket = ContinuousMarket(task, reserve=scenario.market.reserve)
        scale = task.value(task.allocation(np.zeros_like(costs)))
        return MarketEnvironment.static(cmarket.settle, cmarket.optimal_welfare(costs), costs, scale, names, **info)
    base = SubsetMarket(
        valued,
        allocation=ALLOCATION_RULES[scenario.market.allocation](),
        reserve=scenario.market.reserve,
        shapley_scope=scenario.market.shapley_scope,
        shapley_values=next((values[m.key].values for m in scenario.valuation if m.method == "exact_shapley"), None),
        seed=seed,
    )
    scale = abs(valued.grand_value() - valued.empty_value())
    if scenario.market.value_noise == 0:
        return MarketEnvironment.static(subset_settler(base), optimal_welfare(base, costs), costs, scale, names, **info)
    n = valued.n_players
    sigma = scenario.market.value_noise * scale / n

    def round_market(t: int) -> RoundMarket:
        shocks = child_rng(seed, 4000, t).normal(0.0, sigma, n)
        market = SubsetMarket(
            shifted_game(valued, shocks),
            allocation=base.allocation,
            reserve=base.reserve,
            shapley_scope=base.shapley_scope,
            seed=seed,
        )
        return RoundMarket(subset_settler(market), optimal_welfare(market, costs))

    return MarketEnvironment(round_market, costs, scale, names, **info)


def check_finite(game: Game, scenario: Scenario) -> None:
    """The buyer's values must be finite numbers: a table is checked whole, any other game
    at the grand and empty coalitions. A NaN or an infinity (training that diverged, a
    value scale that overflowed) would otherwise turn into NaN payments much later."""
    from dataprice.errors import DataError

    if isinstance(game, TabulatedGame):
        bad = np.flatnonzero(~np.isfinite(game.values))
        if bad.size == 0:
            return
        members = [game.player_names[j] for j in range(game.n_players) if (int(bad[0]) >> j) & 1]
        where = f"for the coalition {{{', '.join(members[:5])}{', ...' if len(members) > 5 else ''}}}"
        value = game.values[bad[0]]
    else:
        grand, empty = game.grand_value(), game.empty_value()
        if np.isfinite(grand) and np.isfinite(empty):
            return
        where, value = ("for all sellers", grand) if not np.isfinite(grand) else ("for no seller", empty)
    raise DataError(
        f"buyer ({scenario.buyer.task}): the buyer's value is {value} {where}; a number must come out "
        "(check the buyer's data, value_per_quality and training settings such as the learning rate)"
    )


def audit_sample(selected: np.ndarray, k: int | None, rng: np.random.Generator) -> list[int] | None:
    """Which sellers the audit checks: all (``k=None`` or ``k >= n``), else ``ceil(k/2)``
    drawn among the selected and the rest among the others (fewer if a side runs out)."""
    n = selected.shape[0]
    if k is None or k >= n:
        return None
    chosen, others = np.flatnonzero(selected), np.flatnonzero(~selected)
    take_in = min(chosen.size, -(-k // 2))
    take_out = min(others.size, k - take_in)
    take_in = min(chosen.size, k - take_out)
    picked = np.concatenate([rng.choice(chosen, take_in, replace=False), rng.choice(others, take_out, replace=False)])
    return sorted(int(j) for j in picked)


def run_replicate(scenario: Scenario, costs: np.ndarray, replicate: int, *, progress: bool = False) -> ReplicateResult:
    """Build the game, value the sellers, run the repeated market under every rule, audit."""
    started = time.monotonic()
    seed = _replicate_seed(scenario, replicate)
    built = build_task(scenario, seed, costs, progress=progress)
    game, contrib, task = built.game, built.contributions, built.task
    needs_table = scenario.market_kind == "subset" and scenario.market.allocation == "exact"
    needs_table |= any(METHODS[m.method].needs_tabulation for m in scenario.valuation)
    store = CoalitionStore(scenario.engine.coalition_cache_path) if scenario.engine.coalition_cache else None
    counted = CachedGame(game, store=store, key=game_key(scenario, seed) if store is not None else None)
    valued: Game = tabulate(counted, progress=progress) if needs_table else counted
    check_finite(valued, scenario)

    values: dict[str, ValuationResult] = {}
    for k, spec in enumerate(scenario.valuation):
        method = make_method(spec, int(child_sequence(seed, 10 + k).generate_state(1)[0]), progress)
        # methods that read the buyer's data themselves get the raw game, not the table
        target = game if spec.method in {"knn_shapley", "unlearning_shapley"} else valued
        result = method.fit(target).result
        result.method = spec.key
        values[spec.key] = result

    env = build_environment(scenario, seed, valued, task, costs, values)
    bidding = scenario.bidding
    # the same stream for every rule: sellers' random draws are common across rules
    stream = child_sequence(scenario.seed, replicate, 5000)
    outcomes: dict[str, list[Outcome]] = {}
    audits: dict[str, AuditResult] = {}
    dynamics, transactions = [], []
    best_by_round: list[float] = []
    rules = scenario.market.payment_rules
    for rule in tqdm(rules, desc="payment rules", leave=False, disable=not progress or scenario.rounds < 20):
        strategies = [make_strategy(bidding.strategy, **bidding.strategy_params()) for _ in costs]
        model = MarketModel(
            env, rule, strategies, seed=stream, budget=scenario.market.budget, exit_after=bidding.exit_after
        ).run(scenario.rounds)
        outcomes[rule] = model.outcomes
        best_by_round = model.best_welfare
        frame = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        dynamics.append(frame.assign(rule=rule, round=np.arange(len(frame))))
        transactions.append(model.datacollector.get_table_dataframe("transactions").assign(rule=rule))
        if scenario.audit.enabled:
            last = env.round_market(scenario.rounds - 1)
            settle_fn = with_budget(last.settle, scenario.market.budget)
            sample = None
            if scenario.audit.sample is not None:  # half winners: who wins at the audited reports
                winners = settle_fn(model.final_bids(), rule, costs).selected
                sample = audit_sample(winners, scenario.audit.sample, child_rng(seed, 6000))
            audits[rule] = truthfulness_audit(
                settle_fn,
                rule,
                costs,
                model.final_bids(),
                span=env.scale,
                multipliers=scenario.audit.multipliers,
                n_linear=scenario.audit.grid_points,
                sellers=sample,
            )
    return ReplicateResult(
        replicate=replicate,
        seed=seed,
        sellers=contrib,
        values=values,
        outcomes=outcomes,
        audits=audits,
        round_best_welfare=list(best_by_round),
        dynamics=pd.concat(dynamics, ignore_index=True),
        transactions=pd.concat(transactions, ignore_index=True),
        game_evaluations=counted.computed,
        seconds=time.monotonic() - started,
    )


def game_key(scenario: Scenario, seed: int) -> str:
    """What determines a replicate's game: the resolved ``sellers`` and ``buyer`` sections,
    the content of any data file they name, the replicate seed and the package version (the
    persistent coalition cache's key).
    Market, bidding and valuation settings are left out, so a sweep over them reuses values."""
    import yaml

    payload = scenario.model_dump(mode="json", include={"sellers", "buyer"})
    text = yaml.safe_dump(payload, sort_keys=True)
    digest = hashlib.sha256(f"{__version__}\n{seed}\n{text}".encode())
    for path in sorted(_file_paths(payload)):  # user data files: their content, not their names
        digest.update(path.encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def _file_paths(node) -> set[str]:
    """Every string in a scenario section that names an existing file."""
    if isinstance(node, dict):
        return set().union(*(_file_paths(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_file_paths(v) for v in node)) if node else set()
    if isinstance(node, str) and ("/" in node or "." in node) and Path(node).is_file():
        return {node}
    return set()


def scenario_key(scenario: Scenario) -> str:
    """sha256 of the resolved scenario and the package version: what a checkpoint is valid for."""
    from dataprice.scenario import scenario_to_yaml

    return hashlib.sha256(f"{__version__}\n{scenario_to_yaml(scenario)}".encode()).hexdigest()


class ReplicateCheckpoints:
    """Finished replicates on disk, ``<folder>/<scenario key>/replicate_<r>/``.

    A run that is interrupted and started again loads the replicates it already finished
    (same scenario, same version) and computes only the rest, so it ends with the same
    result as an uninterrupted run. Each replicate is a sealed folder of data files
    (:mod:`dataprice.persist`: JSON and Parquet, sizes and hashes in its manifest, written
    atomically); nothing is unpickled. A checkpoint that does not verify is ignored with a
    warning and its replicate computed again.
    """

    def __init__(self, folder: str | Path, scenario: Scenario) -> None:
        self.root = Path(folder)
        self.key = scenario_key(scenario)
        self.folder = self.root / self.key

    def path(self, replicate: int) -> Path:
        return self.folder / f"replicate_{replicate}"

    def load(self, replicate: int) -> ReplicateResult | None:
        from dataprice.errors import DatapriceError
        from dataprice.persist import read_replicate_dir

        path = self.path(replicate)
        if not path.is_dir() or path.is_symlink() or self.root.is_symlink():
            return None
        try:
            result = read_replicate_dir(path)
        except DatapriceError as exc:
            warnings.warn(f"ignoring checkpoint {path}: {exc}", stacklevel=2)
            return None
        return result if result.replicate == replicate else None

    def save(self, result: ReplicateResult) -> None:
        from dataprice.persist import REPLICATE_FORMAT, SCHEMA, write_replicate
        from dataprice.safedir import write_directory

        if self.root.is_symlink():
            return  # not a folder dataprice made: keep no checkpoints there
        self.folder.mkdir(parents=True, exist_ok=True)
        write_directory(
            self.path(result.replicate), lambda folder: write_replicate(result, folder),
            fmt=REPLICATE_FORMAT, schema=SCHEMA, what="checkpoint", scenario_key=self.key,
        )

    def clear(self) -> None:
        """Remove the checkpoints this run wrote (only sealed replicate folders), then the
        scenario's folder and the checkpoint folder when nothing else is left in them."""
        from dataprice.persist import REPLICATE_FORMAT
        from dataprice.safedir import clean_stale, remove_directory

        if not self.folder.is_dir() or self.folder.is_symlink() or self.root.is_symlink():
            return
        for entry in list(self.folder.iterdir()):
            match = re.match(r"^\.?(replicate_\d+)", entry.name)
            if match:  # a replicate folder, or what an interrupted write of one left
                target = self.folder / match.group(1)
                remove_directory(target, REPLICATE_FORMAT)
                clean_stale(target)
        for folder in (self.folder, self.root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break


def run_scenario(
    scenario: Scenario, *, progress: bool = True, engine=None, checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Run every replicate of ``scenario`` (on ``engine``, default: the scenario's).

    With ``checkpoint_dir``, each finished replicate is saved there and a later call with the
    same scenario reuses it (see :class:`ReplicateCheckpoints`).
    """
    started = time.monotonic()
    costs = scenario.sellers.draw_costs(scenario.seed)
    checkpoints = ReplicateCheckpoints(checkpoint_dir, scenario) if checkpoint_dir is not None else None
    done = {}
    if checkpoints is not None:
        for r in range(scenario.replicates):
            loaded = checkpoints.load(r)
            if loaded is not None:
                done[r] = loaded
    todo = [r for r in range(scenario.replicates) if r not in done]
    if todo and scenario.engine.coalition_cache:  # an unusable cache file fails now, not after training
        store = CoalitionStore(scenario.engine.coalition_cache_path).check()
        store.close()
    own_engine = engine is None
    spec = scenario.engine
    engine = engine or make_engine(spec.kind, spec.workers, spec.address, connect_timeout=spec.connect_timeout)
    parallel = engine.name != "serial" and len(todo) > 1
    if parallel:
        engine.start()  # connect or start workers now: an unreachable cluster fails before any work
    jobs = [_ReplicateJob(scenario, costs, r, progress and not parallel) for r in todo]
    try:
        if parallel:
            with tqdm(total=len(jobs), desc="replicates", disable=not progress) as bar:
                futures = [engine.submit(_run_job, job) for job in jobs]
                for future in futures:  # in replicate order; each saved as soon as it is folded
                    result = future.result()
                    done[result.replicate] = result
                    if checkpoints is not None:
                        checkpoints.save(result)
                    bar.update(1)
        else:
            for job in tqdm(jobs, desc="replicates", disable=not progress or len(jobs) <= 1):
                result = job()
                done[result.replicate] = result
                if checkpoints is not None:
                    checkpoints.save(result)
        used = engine.describe() if parallel else {**SerialEngine().describe(), "requested": engine.name}
    finally:
        if own_engine:
            engine.shutdown()
    return RunResult(
        scenario=scenario,
        costs=costs,
        seller_names=seller_names(scenario),
        replicates=[done[r] for r in range(scenario.replicates)],
        seconds=time.monotonic() - started,
        provenance={
            "dataprice": __version__, "engine": used, "seed": scenario.seed,
            "replicates_from_checkpoint": scenario.replicates - len(todo),
        },
    )


def _run_job(job: _ReplicateJob) -> ReplicateResult:
    return job()
