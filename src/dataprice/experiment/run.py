"""Run a scenario: every replicate (on the scenario's engine), then what the run shows.

Replicates are independent jobs mapped over the engine and folded in replicate order, so
results do not depend on the engine or the number of workers. A job ships the scenario as
data and the names of the plugin modules in use; the worker imports those and validates the
scenario again, so a plugin's buyer, method or rule works on every engine. Once every
replicate is in, the buyer computes its run-level tables (:meth:`Buyer.run_tables`) and the
run keeps what the report will say about its buyer and rules, so the report only formats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataprice import __version__
from dataprice.engine import SerialEngine, as_engine, make_engine
from dataprice.experiment.checkpoints import ReplicateCheckpoints
from dataprice.experiment.diagnostics import data_notes, diagnostics
from dataprice.experiment.replicate import run_replicate
from dataprice.experiment.results import ReplicateResult, RunResult
from dataprice.market.rules import RULES
from dataprice.progress import progress as progress_display
from dataprice.scenario import Scenario
from dataprice.threads import one_blas_thread
from dataprice.valuation.store import CoalitionStore


@dataclass(frozen=True)
class _ReplicateJob:
    """One replicate, as it is shipped to a worker: the scenario as data, the plugins."""

    scenario: dict
    costs: np.ndarray
    names: tuple[str, ...]
    replicate: int
    progress: bool
    plugins: tuple[str, ...] = ()

    def __call__(self, _=None) -> ReplicateResult:
        from dataprice.plugins import load_plugins
        from dataprice.scenario import parse_scenario

        load_plugins(self.plugins)
        scenario = parse_scenario(self.scenario)
        return run_replicate(scenario, self.costs, self.replicate, progress=self.progress, names=list(self.names))


def run_scenario(
    scenario: Scenario, *, progress: bool = True, engine=None, checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Run every replicate of ``scenario`` (on ``engine``: an engine, any
    ``concurrent.futures.Executor``, or by default the scenario's).

    With ``checkpoint_dir``, each finished replicate is saved there and a later call with the
    same scenario reuses it (see :class:`ReplicateCheckpoints`).
    """
    from dataprice.plugins import loaded_plugins

    started = time.monotonic()
    names = scenario.buyer.seller_names(scenario.sellers)
    costs = scenario.buyer.seller_costs(scenario, names)
    if costs is None:
        costs = scenario.sellers.draw_costs(scenario.seed, names)
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
    engine = as_engine(engine) if engine is not None else make_engine(
        spec.kind, spec.workers, spec.address, connect_timeout=spec.connect_timeout)
    parallel = engine.name != "serial" and len(todo) > 1
    if parallel:
        engine.start()  # connect or start workers now: an unreachable cluster fails before any work
    data = scenario.model_dump(mode="json")
    plugins = loaded_plugins()
    jobs = [_ReplicateJob(data, costs, tuple(names), r, progress and not parallel, plugins) for r in todo]
    try:
        if parallel:
            with progress_display(total=len(jobs), desc="replicates", enabled=progress) as bar:
                futures = [engine.submit(_run_job, job) for job in jobs]
                for future in futures:  # in replicate order; each saved as soon as it is folded
                    result = future.result()
                    done[result.replicate] = result
                    if checkpoints is not None:
                        checkpoints.save(result)
                    bar.update(1)
        else:  # the serial engine: this process does the work, on one BLAS thread (dataprice.threads)
            with one_blas_thread():
                for r in progress_display(todo, desc="replicates", enabled=progress and len(todo) > 1):
                    result = run_replicate(scenario, costs, r, progress=progress, names=names)
                    done[result.replicate] = result
                    if checkpoints is not None:
                        checkpoints.save(result)
        used = engine.describe() if parallel else {**SerialEngine().describe(), "requested": engine.name}
    finally:
        if own_engine:
            engine.shutdown()
    run = RunResult(
        scenario=scenario,
        costs=costs,
        seller_names=list(names),
        replicates=[done[r] for r in range(scenario.replicates)],
        provenance={
            "dataprice": __version__, "engine": used, "seed": scenario.seed,
            "replicates_from_checkpoint": scenario.replicates - len(todo),
        },
        notes={
            "buyer": scenario.buyer.label,
            "rules": {rule: RULES[rule].note_for(scenario.market_kind, scenario.market.shapley_scope)
                      for rule in scenario.market.payment_rules},
        },
    )
    run.notes["data"] = data_notes(run.replicates)
    run.tables = scenario.buyer.run_tables(run)
    run.notes["diagnostics"] = diagnostics(run)
    run.seconds = time.monotonic() - started
    return run


def _run_job(job: _ReplicateJob) -> ReplicateResult:
    return job()
