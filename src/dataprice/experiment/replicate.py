"""One replicate: build the buyer's game, value the sellers, settle under every rule, audit.

A replicate is one draw of the task's randomness (data split, label noise, training, Monte
Carlo samples) from the child stream ``(seed, replicate)``. Within it, sellers report for
``rounds`` rounds under the scenario's bidding strategy (the Mesa model), every payment rule
settles every round on the same draws, and the last round's reports are audited.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice import __version__
from dataprice.agents.model import MarketEnvironment, MarketModel, with_budget
from dataprice.agents.strategies import make_strategy
from dataprice.buyers.base import BuildContext, BuiltTask
from dataprice.errors import DataError
from dataprice.experiment.environment import audit_sample, build_environment, make_market
from dataprice.experiment.resampling import empty_draws, resample_replicate
from dataprice.experiment.results import ReplicateResult
from dataprice.experiment.utilities import no_utilities, utility_values
from dataprice.market.kinds import MARKET_KINDS
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import AuditResult, truthfulness_audit
from dataprice.market.protocol import Market
from dataprice.market.rules.myerson import critical_reports
from dataprice.progress import progress as progress_display
from dataprice.rng import Stream, child_rng, child_seed, child_sequence
from dataprice.scenario import Scenario
from dataprice.valuation.game import CachedGame, Game, TabulatedGame, coalitions_to_masks, tabulate
from dataprice.valuation.methods import METHODS
from dataprice.valuation.resampling import PointCache, is_pointwise
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.store import CoalitionStore


def replicate_seed(scenario: Scenario, replicate: int) -> int:
    """The seed of replicate ``replicate``: a child of the scenario's seed."""
    return child_seed(scenario.seed, replicate)


@dataclass
class PreparedReplicate:
    """A replicate up to its market: the buyer's game, the sellers' values, the market and
    the repeated market's environment (what :func:`run_replicate` settles, and what
    ``dataprice live`` steps round by round)."""

    seed: int
    built: BuiltTask
    game: Game
    points: PointCache | None
    counted: CachedGame
    valued: Game
    values: dict[str, ValuationResult]
    market: Market
    environment: MarketEnvironment


def prepare_replicate(scenario: Scenario, costs: np.ndarray, replicate: int, *, progress: bool = False,
                      names: list[str] | None = None) -> PreparedReplicate:
    """Build the buyer's game, value the sellers with every method, make the market."""
    seed = replicate_seed(scenario, replicate)
    names = names if names is not None else scenario.buyer.seller_names(scenario.sellers)
    built = scenario.buyer.build(BuildContext(scenario, seed, costs, names, progress))
    game = built.game
    # a buyer that averages over an evaluation set keeps each coalition's per-point scores,
    # so the intervals resample that set without training anything again
    # (payments on a method's values (market.value_basis) come from one run, not from the
    # evaluation set: there is nothing of theirs to resample)
    basis = scenario.market.value_basis
    resampled = scenario.uncertainty.resamples and basis is None
    points = PointCache(game) if resampled and is_pointwise(game) else None
    kind = MARKET_KINDS.get(scenario.market_kind)
    # the market's table is the basis game's own when it pays on a method's values
    needs_table = kind is not None and kind.needs_table(scenario.market.allocation) and basis is None
    needs_table |= any(METHODS[m.method].needs_tabulation for m in scenario.valuation)
    store = CoalitionStore(scenario.engine.coalition_cache_path) if scenario.engine.coalition_cache else None
    counted = CachedGame(points if points is not None else game, store=store, key=game_key(scenario, seed) if store is not None else None)
    valued: Game = tabulate(counted, progress=progress) if needs_table else counted
    if basis is None:
        check_finite(valued, scenario)

    values: dict[str, ValuationResult] = {}
    for k, spec in enumerate(scenario.valuation):
        cls = METHODS[spec.method]
        method = cls.from_spec(spec, seed=child_seed(seed, Stream.METHODS + k), progress=progress)
        # methods that read the buyer's data get the buyer's own game, not the table of values
        result = method.fit(game if cls.uses_buyer_game else valued).result
        result.method = spec.key
        values[spec.key] = result

    market = make_market(scenario, seed, built, valued, values)
    env = build_environment(scenario, seed, market, costs, names)
    return PreparedReplicate(seed, built, game, points, counted, valued, values, market, env)


def run_replicate(scenario: Scenario, costs: np.ndarray, replicate: int, *, progress: bool = False,
                  names: list[str] | None = None) -> ReplicateResult:
    """Build the game, value the sellers, run the repeated market under every rule, audit."""
    started = time.monotonic()
    names = names if names is not None else scenario.buyer.seller_names(scenario.sellers)
    prepared = prepare_replicate(scenario, costs, replicate, progress=progress, names=names)
    seed, built, game, points, counted = prepared.seed, prepared.built, prepared.game, prepared.points, prepared.counted
    valued, values, market, env = prepared.valued, prepared.values, prepared.market, prepared.environment
    basis = scenario.market.value_basis
    bidding = scenario.bidding
    # the same stream for every rule: sellers' random draws are common across rules
    stream = child_sequence(scenario.seed, replicate, Stream.BIDDING)
    outcomes: dict[str, list[Outcome]] = {}
    audits: dict[str, AuditResult] = {}
    dynamics, transactions = [], []
    best_by_round: list[float] = []
    rules = scenario.market.payment_rules
    for rule in progress_display(rules, desc="payment rules", leave=False, enabled=progress and scenario.rounds >= 20):
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
                sample = audit_sample(winners, scenario.audit.sample, child_rng(seed, Stream.AUDIT_SAMPLE))
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
    critical = critical_by_rule(scenario, market, outcomes)
    utilities = no_utilities()
    if scenario.uncertainty.utilities and scenario.needs_coalition_values:
        utilities = utility_values(game, market if basis is None else None, outcomes,
                                   valued if isinstance(valued, TabulatedGame) else None)
    draws = empty_draws()
    if points is not None:
        draws = resample_replicate(scenario, seed, built, points, isinstance(valued, TabulatedGame), outcomes,
                                   costs, names, progress=progress)
    return ReplicateResult(
        replicate=replicate,
        seed=seed,
        sellers=built.contributions,
        values=values,
        outcomes=outcomes,
        audits=audits,
        round_best_welfare=list(best_by_round),
        dynamics=pd.concat(dynamics, ignore_index=True),
        transactions=pd.concat(transactions, ignore_index=True),
        game_evaluations=counted.computed,
        seconds=time.monotonic() - started,
        notes=built.data_notes(),
        findings=list(built.findings) + buyer_condition_findings(market, outcomes)
        + basis_findings(scenario, valued, values, outcomes),
        critical=critical,
        resamples=draws,
        evaluation_points=points.n_points if points is not None else 0,
        utilities=utilities,
    )


TRUTHFUL_RULES = ("myerson", "vcg")


def buyer_condition_findings(market, outcomes: dict[str, list[Outcome]]) -> list[str]:
    """A finding when a truthful rule left the buyer paying more than the data was worth to it
    and the reason is complementarity: its value is not submodular on the sellers bought
    (:mod:`dataprice.market.conditions`; checked on a tabulated subset market's last round)."""
    from dataprice.market.conditions import buyer_condition
    from dataprice.market.kinds.subset import SubsetMarket

    if not isinstance(market, SubsetMarket) or not isinstance(market.game, TabulatedGame):
        return []
    empty = float(market.game.values[0])
    for rule in (r for r in TRUTHFUL_RULES if r in outcomes):
        last = outcomes[rule][-1]
        if last.buyer_surplus >= empty - 1e-9 * max(1.0, abs(last.value)):
            continue
        condition = buyer_condition(market.game, last.selected)
        if condition is None or condition.holds:
            continue
        return [f"Under {rule} the buyer paid {last.total_paid:,.4g} for data worth {last.value - empty:,.4g} to it: "
                + condition.sentence() + "."]
    return []


#: Relative gap between the basis values of the sellers bought and the buyer's own value of
#: their data above which the report warns that the payments use another measure of quality.
BASIS_GAP = 0.25


def basis_findings(scenario: Scenario, valued: Game, values: dict[str, ValuationResult],
                   outcomes: dict[str, list[Outcome]]) -> list[str]:
    """A finding when the rules pay on a method's values (``market.value_basis``) and, on
    the sellers bought, those values add up to far more or less than the buyer's own value of
    their data (known when the game was tabulated): the method measured quality another way
    (in-run Shapley: the validation log-likelihood, not the accuracy) at the same money per
    unit, so the payments are on another scale than the buyer's gain."""
    key = scenario.market.value_basis
    if key is None or not isinstance(valued, TabulatedGame) or not outcomes:
        return []
    bought = next(iter(outcomes.values()))[-1].selected
    if not bought.any():
        return []
    total = float(np.sum(values[key].values[bought]))
    own = float(valued.values[int(coalitions_to_masks(bought[None, :])[0])] - valued.values[0])
    if abs(total - own) <= BASIS_GAP * max(abs(own), 1e-12):
        return []
    extra = values[key].extra
    utility = extra.get("utility") or "another measure of quality"
    scale = extra.get("value_per_unit", scenario.buyer.value_per_quality)
    return [f"Payments are on the {key} values, which measure {utility} at {scale:g} per unit: for the "
            f"{int(bought.sum())} sellers bought they add up to {total:,.4g}, while the buyer's own value of their "
            f"data, by its declared utility at value_per_quality {scenario.buyer.value_per_quality:g}, is {own:,.4g}. "
            f"The two measures differ in scale; set the method's money per unit (value_per_unit) for the one the "
            "payments use."]


def critical_by_rule(scenario: Scenario, market, outcomes: dict[str, list[Outcome]]) -> dict[str, np.ndarray]:
    """Each seller's critical report at each rule's last-round reports (what a statement
    explains Myerson and VCG with): in a static subset market with no budget (a budget
    scales payments below the critical report), else nothing."""
    if scenario.market.value_noise or scenario.market.budget is not None:
        return {}
    found = {}
    for rule, settled in outcomes.items():
        critical = critical_reports(market, settled[-1].bids)
        if critical is None:
            return {}
        found[rule] = critical
    return found


def check_finite(game: Game, scenario: Scenario) -> None:
    """The buyer's values must be finite numbers: a table is checked whole, any other game
    at the grand and empty coalitions. A NaN or an infinity (training that diverged, a
    value scale that overflowed) would otherwise turn into NaN payments much later."""
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
