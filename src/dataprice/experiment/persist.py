"""Runs and replicates saved as data (Parquet and JSON), never as pickles.

A saved replicate is a folder of plain files, read back into exactly the
:class:`~dataprice.results.ReplicateResult` that was written (every float bit for bit):

* ``replicate.json``: replicate number, seed, game evaluations, seconds, the valuation
  results (:meth:`ValuationResult.to_dict`), the rules in settlement order and, per round,
  the best welfare at the true costs;
* ``outcomes.parquet``: one row per rule, round and seller (bid, quantity, payment, cost);
  ``settlements.parquet``: one row per rule and round (the buyer's value);
* ``audits.parquet``: the truthfulness audit per rule and seller;
* ``sellers.parquet``, ``dynamics.parquet``, ``transactions.parquet``: the replicate's
  tables as they are; ``resamples.parquet``: bootstrap draws of values and payments
  (:mod:`.resampling`), when the buyer's value averages over an evaluation set;
  ``utilities.parquet``: values and payments under each utility the buyer offers
  (:mod:`.utilities`), when it offers more than one.

A saved run (``run/`` inside a report directory) is ``run.json`` (seller names, true costs,
provenance, the report kind, what the report says about the buyer and the rules), one such
folder per replicate, and ``tables/`` (run-level tables, e.g. the federated buyer's
aggregator comparison); the resolved scenario is the report's ``scenario.yaml``. Every file is listed with its size and sha256 in the
directory's manifest (:mod:`dataprice.safedir`) and checked before it is parsed, so a
damaged file is a one-line error. Nothing here can execute code from a file: JSON, YAML
(the safe core-schema loader of :mod:`dataprice.inputs`) and Parquet only.

Schema history (:data:`SCHEMA`): 1 -- this layout. A later version reads every earlier
schema; a directory written in a newer schema is refused with a message to upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataprice.errors import DataError
from dataprice.experiment.resampling import empty_draws
from dataprice.experiment.results import ReplicateResult, RunResult
from dataprice.experiment.utilities import no_utilities
from dataprice.inputs import load_yaml
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import AuditResult
from dataprice.safedir import read_manifest, verified_bytes
from dataprice.valuation.result import ValuationResult, plain

#: Layout version written by this package (see the module docstring).
SCHEMA = 1
REPORT_FORMAT = "dataprice-report"
REPLICATE_FORMAT = "dataprice-replicate"
RUN_FOLDER = "run"

Reader = Callable[[str], bytes]


def _dumps(data: Any) -> str:
    return json.dumps(plain(data), indent=1) + "\n"


def _loads(data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataError(f"{name}: not valid JSON") from None


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _read_table(data: bytes, name: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise DataError(f"{name}: not a readable Parquet table ({str(exc).splitlines()[0][:120]})") from None


# --- one replicate ---------------------------------------------------------------------------


def write_replicate(rep: ReplicateResult, folder: Path, *, seconds: bool = True) -> None:
    """Write ``rep`` into ``folder`` (which exists); ``seconds=False`` stores 0 for its time,
    so equal runs give equal bytes (reports keep timings in ``timings.json``)."""
    rules = list(rep.outcomes)
    outcome_rows, settlement_rows = [], []
    for rule in rules:
        for t, o in enumerate(rep.outcomes[rule]):
            n = o.bids.shape[0]
            outcome_rows.append(pd.DataFrame({
                "rule": rule, "round": t, "seller": np.arange(n, dtype=np.int64),
                "bid": o.bids, "quantity": o.quantities, "payment": o.payments,
                "cost": o.costs if o.costs is not None else np.full(n, np.nan),
                "selected": o.selected,
            }))
            settlement_rows.append({"rule": rule, "round": t, "value": float(o.value), "costs_known": o.costs is not None})
    audit_rows = [
        pd.DataFrame({"rule": rule, "seller": np.arange(a.best_utility.shape[0], dtype=np.int64),
                      "truthful_utility": a.truthful_utility, "best_utility": a.best_utility,
                      "best_report": a.best_report})
        for rule, a in rep.audits.items()
    ]
    meta = {
        "replicate": rep.replicate, "seed": rep.seed, "game_evaluations": rep.game_evaluations,
        "seconds": float(rep.seconds) if seconds else 0.0,
        "rules": rules, "audited_rules": list(rep.audits),
        "round_best_welfare": [float(w) for w in rep.round_best_welfare],
        "notes": list(rep.notes),
        "findings": list(rep.findings),
        "values": {key: result.to_dict() for key, result in rep.values.items()},
        "critical": {rule: [float(c) for c in critical] for rule, critical in rep.critical.items()},
        "evaluation_points": int(rep.evaluation_points),
        "utilities": not rep.utilities.empty,
    }
    (folder / "replicate.json").write_text(_dumps(meta))
    empty_outcomes = pd.DataFrame({"rule": pd.Series([], dtype=str), "round": pd.Series([], dtype=np.int64),
                                   "seller": pd.Series([], dtype=np.int64), "bid": [], "quantity": [],
                                   "payment": [], "cost": [], "selected": pd.Series([], dtype=bool)})
    _write_table(pd.concat(outcome_rows, ignore_index=True) if outcome_rows else empty_outcomes,
                 folder / "outcomes.parquet")
    _write_table(pd.DataFrame(settlement_rows, columns=["rule", "round", "value", "costs_known"]),
                 folder / "settlements.parquet")
    if audit_rows:
        _write_table(pd.concat(audit_rows, ignore_index=True), folder / "audits.parquet")
    _write_table(rep.sellers, folder / "sellers.parquet")
    _write_table(rep.dynamics, folder / "dynamics.parquet")
    _write_table(rep.transactions, folder / "transactions.parquet")
    if rep.evaluation_points:
        _write_table(rep.resamples, folder / "resamples.parquet")
    if not rep.utilities.empty:
        _write_table(rep.utilities, folder / "utilities.parquet")


def _array(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype=np.float64, copy=True)


def read_replicate(read: Reader, prefix: str = "") -> ReplicateResult:
    """The replicate written by :func:`write_replicate`; ``read(name)`` returns the verified
    bytes of a file of the directory (``prefix`` is the folder inside it)."""

    def table(name: str) -> pd.DataFrame:
        return _read_table(read(prefix + name), prefix + name)

    meta = _loads(read(prefix + "replicate.json"), prefix + "replicate.json")
    try:
        outcomes_frame, settlements = table("outcomes.parquet"), table("settlements.parquet")
        outcomes: dict[str, list[Outcome]] = {}
        by_rule = {rule: frame for rule, frame in outcomes_frame.groupby("rule", sort=False)}
        for rule in meta["rules"]:
            rows = by_rule[rule].sort_values(["round", "seller"], kind="stable")
            rounds = settlements[settlements["rule"] == rule].sort_values("round", kind="stable")
            n_rounds = len(rounds)
            shape = (n_rounds, len(rows) // max(n_rounds, 1))
            bids, quantities = _array(rows, "bid").reshape(shape), _array(rows, "quantity").reshape(shape)
            payments, costs = _array(rows, "payment").reshape(shape), _array(rows, "cost").reshape(shape)
            # runs saved before outcomes kept "selected": a seller was selected where its quantity is positive
            sold = rows["selected"].to_numpy(dtype=bool).reshape(shape) if "selected" in rows else quantities > 0
            outcomes[rule] = [
                Outcome(rule=rule, bids=bids[t].copy(), quantities=quantities[t].copy(), payments=payments[t].copy(),
                        value=float(value), costs=costs[t].copy() if known else None, sold=sold[t].copy())
                for t, (value, known) in enumerate(zip(rounds["value"], rounds["costs_known"], strict=True))
            ]
        audits: dict[str, AuditResult] = {}
        if meta["audited_rules"]:
            frame = table("audits.parquet")
            for rule in meta["audited_rules"]:
                rows = frame[frame["rule"] == rule].sort_values("seller", kind="stable")
                audits[rule] = AuditResult(_array(rows, "truthful_utility"), _array(rows, "best_utility"),
                                           _array(rows, "best_report"))
        values = {key: ValuationResult.from_dict(data) for key, data in meta["values"].items()}
        return ReplicateResult(
            replicate=int(meta["replicate"]),
            seed=int(meta["seed"]),
            sellers=table("sellers.parquet"),
            values=values,
            outcomes=outcomes,
            audits=audits,
            round_best_welfare=[float(w) for w in meta["round_best_welfare"]],
            dynamics=table("dynamics.parquet"),
            transactions=table("transactions.parquet"),
            game_evaluations=int(meta["game_evaluations"]),
            seconds=float(meta["seconds"]),
            notes=[str(line) for line in meta.get("notes") or []],
            findings=[str(line) for line in meta.get("findings") or []],
            # runs saved before statements and intervals have none of these
            critical={str(rule): np.asarray(c, dtype=np.float64) for rule, c in (meta.get("critical") or {}).items()},
            resamples=table("resamples.parquet") if meta.get("evaluation_points") else empty_draws(),
            evaluation_points=int(meta.get("evaluation_points") or 0),
            utilities=table("utilities.parquet") if meta.get("utilities") else no_utilities(),
        )
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise DataError(f"{prefix}replicate.json: the saved replicate is inconsistent ({type(exc).__name__}: "
                        f"{str(exc)[:120]})") from None


# --- a whole run ---------------------------------------------------------------------------------


def replicate_folder(replicate: int) -> str:
    return f"replicate_{replicate:04d}"


def write_run(run: RunResult, directory: Path, kind: str) -> None:
    """Write ``run`` into ``directory/run/`` (timings zeroed: they go to ``timings.json``).
    The report writer writes ``scenario.yaml`` beside it and seals the directory."""
    folder = directory / RUN_FOLDER
    folder.mkdir()
    meta = {
        "kind": kind,
        "seller_names": list(run.seller_names),
        "costs": [float(c) for c in run.costs],
        "provenance": run.provenance,
        "notes": run.notes,
        "tables": sorted(run.tables),
        "replicates": [rep.replicate for rep in run.replicates],
    }
    (folder / "run.json").write_text(_dumps(meta))
    if run.tables:
        (folder / "tables").mkdir()
        for name, table in sorted(run.tables.items()):
            _write_table(table, folder / "tables" / f"{name}.parquet")
    for rep in run.replicates:
        sub = folder / replicate_folder(rep.replicate)
        sub.mkdir()
        write_replicate(rep, sub, seconds=False)


def read_run(directory: str | Path) -> tuple[RunResult, str]:
    """The run saved in a report directory and its kind (``run`` or ``compare``), every file
    checked against the manifest; timings restored from ``timings.json`` when it is sound."""
    from dataprice.scenario import parse_scenario

    directory = Path(directory)
    if not (directory / "manifest.json").is_file() and (directory / "results.pkl").is_file():
        raise DataError(
            f"{directory}: saved by an older dataprice as a pickle, which dataprice no longer opens "
            f"(a pickle can run code); re-run `dataprice run {directory / 'scenario.yaml'}`"
        )
    if not directory.is_dir():
        raise DataError(f"report directory not found: {directory}")
    if not (directory / "manifest.json").exists():
        raise DataError(f"{directory}: not a report directory written by dataprice run/compare (no manifest.json)")
    manifest = read_manifest(directory, [REPORT_FORMAT], SCHEMA, "report directory")

    def read(name: str) -> bytes:
        return verified_bytes(directory, name, manifest)

    scenario_data = load_yaml(read("scenario.yaml").decode("utf-8"), str(directory / "scenario.yaml"))
    scenario = parse_scenario(scenario_data, str(directory / "scenario.yaml"))
    meta = _loads(read(f"{RUN_FOLDER}/run.json"), f"{RUN_FOLDER}/run.json")
    try:
        replicates = [read_replicate(read, f"{RUN_FOLDER}/{replicate_folder(int(r))}/") for r in meta["replicates"]]
        run = RunResult(
            scenario=scenario,
            costs=np.asarray(meta["costs"], dtype=np.float64),
            seller_names=[str(s) for s in meta["seller_names"]],
            replicates=replicates,
            provenance=dict(meta["provenance"]),
            notes=dict(meta.get("notes") or _notes_now(scenario)),
            tables={str(name): _read_table(read(f"{RUN_FOLDER}/tables/{name}.parquet"), f"tables/{name}.parquet")
                    for name in meta.get("tables", [])},
        )
        kind = str(meta["kind"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{directory / RUN_FOLDER / 'run.json'}: the saved run is inconsistent ({exc})") from None
    if kind not in {"run", "compare"} or len(run.seller_names) != len(run.costs):
        raise DataError(f"{directory / RUN_FOLDER / 'run.json'}: the saved run is inconsistent")
    _restore_timings(run, directory)
    return run, kind


def _notes_now(scenario) -> dict:
    """What the report says about the buyer and the rules, from the installed registries
    (for a run saved without its notes)."""
    from dataprice.market.rules import RULES

    kind, scope = scenario.market_kind, scenario.market.shapley_scope
    rules = {rule: RULES[rule].note_for(kind, scope) if rule in RULES else "" for rule in scenario.market.payment_rules}
    return {"buyer": scenario.buyer.label, "rules": rules}


def _restore_timings(run: RunResult, directory: Path) -> None:
    """Seconds from ``timings.json`` (informational: ignored when missing or malformed)."""
    path = directory / "timings.json"
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return
        timings = json.loads(path.read_text(encoding="utf-8"))
        total = float(timings.get("total_seconds", 0.0))
        seconds = [float(s) for s in timings.get("replicate_seconds", [])]
    except (OSError, ValueError, TypeError, AttributeError, RecursionError):
        return
    run.seconds = total
    for rep, sec in zip(run.replicates, seconds, strict=False):
        rep.seconds = sec


def read_replicate_dir(directory: str | Path) -> ReplicateResult:
    """A replicate saved alone (a checkpoint), checked against its manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory, [REPLICATE_FORMAT], SCHEMA, "checkpoint")
    return read_replicate(lambda name: verified_bytes(directory, name, manifest))
