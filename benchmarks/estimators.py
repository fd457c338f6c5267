"""Game evaluations each Shapley estimator needs for a given accuracy: dataprice vs shapiq (and pyDVL).

On four games from the project's buyers (``benchmarks/estimator_games.py``: a logistic
classifier with noisy sellers, 12 players; soft-KNN, 18; RAG hit@3 with MiniLM embeddings on
the ICD-10-CM corpus, 20; probabilistic coverage, 40) whose exact Shapley values are
computed once and stored, every estimator is run at each budget ``B`` of a geometric grid
(64 to 8192 evaluations by factors of sqrt(2), at most ``4 * 2^n``), once per seed, and the
estimate's relative error ``||phi_hat - phi|| / ||phi||`` and Spearman correlation with
``phi`` are recorded. The tables give, per estimator, the game evaluations it needs to reach
10% and 5% relative error and Spearman 0.95: the first grid budget at which the *median*
over seeds reaches the target, shown as the median of the game calls actually made there
(counted by the game itself; "not reached at B" otherwise).

* dataprice: the methods of ``--methods`` (default: every registered Monte Carlo method
  estimating Shapley values that needs nothing beyond a budget and a seed, ``shapley`` (the
  default picker) among them, and the option variants of :data:`VARIANTS`), run in this
  process as ``METHODS[name](max_evaluations=B, seed=s, **options)``; a method is named
  ``name`` or ``name[key=value,...]`` (values read as JSON: ``tmc_shapley[paired=true]``). Games of
  at most 22 players are read from their value table through a plain ``Game`` (not a
  ``TabulatedGame``, so no method can tell the table is there).
* shapiq 1.4.1 (``benchmarks/_shapiq_worker.py`` in ``.venv-shapiq``): PermutationSamplingSV,
  KernelSHAP (with and without the pairing trick), UnbiasedKernelSHAP and kADD-SHAP (paired),
  SVARM, StratifiedSamplingSV, OwenSamplingSV, each with ``budget=B, random_state=s`` on the
  same stored games.
* pyDVL 0.10's TMC-Shapley without truncation (``benchmarks/_pydvl_worker.py`` in
  ``.venv-pydvl``) on the classifier game, which it re-implements with scikit-learn's
  logistic regression (checked to agree on random coalitions); it trains a model per
  evaluation, so it runs to ``--pydvl-max-evaluations`` (default 2048) only, and one run per
  seed is read at every budget of the grid (its estimate after the last permutation that fits).

``make bench-estimators`` builds both side environments and runs this script (options in
``BENCH_ARGS``, e.g. ``make bench-estimators BENCH_ARGS=--quick``); without a side
environment that part is skipped. Results go to ``benchmarks/results/estimators.{md,json}``
and ``estimators_runs.csv`` (one row per run; ``--quick`` writes ``estimators_quick.*``).

    python benchmarks/estimators.py [--games classifier,knn,rag,coverage] [--methods tmc_shapley,...]
                                    [--seeds 10] [--quick] [--no-shapiq] [--no-pydvl]
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from estimator_games import (
    GAME_NAMES,
    GAMES_DIR,
    ROOT,
    StoredGame,
    classifier_shards,
    load_or_build,
)
from scipy.stats import spearmanr

from dataprice.valuation.methods import METHODS, MonteCarloMethod

SHAPIQ_PYTHON = ROOT / ".venv-shapiq" / "bin" / "python"
PYDVL_PYTHON = ROOT / ".venv-pydvl" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"
#: (metric, target, column): relative L2 error at most 10% and 5%, Spearman at least 0.95.
TARGETS = (("rel_error", 0.10, "evals to 10%"), ("rel_error", 0.05, "evals to 5%"),
           ("spearman", 0.95, "evals to Spearman 0.95"))
#: Option variants benchmarked by default beside each method's defaults.
VARIANTS = ("tmc_shapley[paired=true]",)
#: Side processes run on one thread each (the machine is shared).
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


# -- the grid and the metrics --------------------------------------------------------------------

def budget_grid(lowest: int, highest: int, factor: float, n_players: int | None = None) -> list[int]:
    """Geometric budgets ``lowest * factor^k`` up to ``highest`` (both included), for a game of
    ``n_players`` tabulated players at most ``4 * 2^n``."""
    if n_players is not None:
        highest = min(highest, 4 * 2**n_players)
    steps = int(np.floor(np.log(highest / lowest) / np.log(factor) + 1e-9))
    grid = {int(round(lowest * factor**k)) for k in range(steps + 1)} | {int(highest)}
    return sorted(b for b in grid if lowest <= b <= highest)


def relative_error(estimate: Sequence[float], exact: Sequence[float]) -> float:
    """``||estimate - exact|| / ||exact||`` (inf for a missing or non-finite estimate)."""
    estimate, exact = np.asarray(estimate, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if estimate.shape != exact.shape or not np.all(np.isfinite(estimate)):
        return float("inf")
    return float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact))


def spearman(estimate: Sequence[float], exact: Sequence[float]) -> float:
    """Spearman's rank correlation of the estimate with the exact values (0 for a constant
    estimate, -1 for a missing one)."""
    estimate, exact = np.asarray(estimate, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if estimate.shape != exact.shape or not np.all(np.isfinite(estimate)):
        return -1.0
    if np.ptp(estimate) == 0:
        return 0.0
    return float(spearmanr(estimate, exact).statistic)


def evals_to_target(
    budgets: Sequence[int],
    scores: np.ndarray,
    target: float,
    *,
    higher_is_better: bool = False,
    evaluations: np.ndarray | None = None,
) -> tuple[int | None, float | None]:
    """The first budget whose median score over seeds reaches ``target``.

    ``scores[b, s]``: the metric of the run at ``budgets[b]`` with seed ``s`` (NaN: the run
    failed or was not made, counted as missing the target). Returns ``(budget, median
    evaluations made at that budget)`` (``evaluations[b, s]``, default the budget), or
    ``(None, None)`` when no budget of the grid reaches it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    worst = -np.inf if higher_is_better else np.inf
    medians = np.median(np.where(np.isnan(scores), worst, scores), axis=1)
    reached = medians >= target if higher_is_better else medians <= target
    if not reached.any():
        return None, None
    b = int(np.argmax(reached))
    if evaluations is None:
        return int(budgets[b]), float(budgets[b])
    spent = np.asarray(evaluations, dtype=np.float64)[b]
    return int(budgets[b]), float(np.median(spent[~np.isnan(spent)])) if np.any(~np.isnan(spent)) else None


def record(game: str, library: str, method: str, budget: int, seed: int, values, exact, *,
           evaluations: int | None, seconds: float | None, reported: int | None = None,
           failure: str | None = None) -> dict[str, Any]:
    """One run: its errors against ``exact`` (NaN metrics when it failed)."""
    ok = failure is None and values is not None
    return {
        "game": game, "library": library, "method": method, "budget": int(budget), "seed": int(seed),
        "evaluations": evaluations, "reported_evaluations": reported, "seconds": seconds,
        "rel_error": relative_error(values, exact) if ok else float("nan"),
        "spearman": spearman(values, exact) if ok else float("nan"),
        "failure": failure,
    }


def score_table(runs: list[dict], budgets: Sequence[int], seeds: Sequence[int], metric: str):
    """``(scores, evaluations)``, arrays ``[budget, seed]`` of one estimator's runs (NaN where missing)."""
    scores = np.full((len(budgets), len(seeds)), np.nan)
    spent = np.full((len(budgets), len(seeds)), np.nan)
    where_b = {b: i for i, b in enumerate(budgets)}
    where_s = {s: i for i, s in enumerate(seeds)}
    for run in runs:
        if run["budget"] in where_b and run["seed"] in where_s and run.get("failure") is None:
            i, j = where_b[run["budget"]], where_s[run["seed"]]
            scores[i, j] = run[metric]
            spent[i, j] = np.nan if run["evaluations"] is None else run["evaluations"]
    return scores, spent


def summarize(runs: list[dict], budgets: Sequence[int], seeds: Sequence[int]) -> dict[str, Any]:
    """Evaluations to each target, and the median error and seconds at the largest budget run."""
    out: dict[str, Any] = {}
    for metric, target, column in TARGETS:
        scores, spent = score_table(runs, budgets, seeds, metric)
        budget, evals = evals_to_target(budgets, scores, target, higher_is_better=metric == "spearman",
                                        evaluations=spent)
        out[column] = {"budget": budget, "evaluations": evals}
    made = [b for b in budgets if any(r["budget"] == b and r.get("failure") is None for r in runs)]
    top = max(made) if made else None
    at_top = [r for r in runs if r["budget"] == top and r.get("failure") is None]
    out["largest budget"] = top
    out["median rel. error there"] = float(np.median([r["rel_error"] for r in at_top])) if at_top else None
    seconds = [r["seconds"] for r in at_top if r["seconds"] is not None]
    out["median seconds there"] = float(np.median(seconds)) if seconds else None
    out["failed runs"] = sum(r.get("failure") is not None for r in runs)
    return out


# -- dataprice --------------------------------------------------------------------------------------

def budget_and_seed_only(cls: type) -> bool:
    """True when ``cls(max_evaluations=B, seed=s)`` sets every parameter it needs."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    names = {p.name for p in params}
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return not required and (accepts_kwargs or {"max_evaluations", "seed"} <= names)


def default_methods() -> tuple[list[str], dict[str, str]]:
    """The dataprice methods benchmarked by default, and the Monte Carlo ones left out (why)."""
    chosen, left_out = [], {}
    for name, cls in METHODS.items():
        if not (isinstance(cls, type) and issubclass(cls, MonteCarloMethod)):
            continue
        if cls.estimates != "shapley":
            left_out[name] = f"estimates {cls.estimates}"
        elif cls.uses_buyer_game:
            left_out[name] = "reads the buyer's own game (not a value function)"
        elif not budget_and_seed_only(cls):
            left_out[name] = "needs settings beyond a budget and a seed"
        else:
            chosen.append(name)
    chosen += [v for v in VARIANTS if parse_method(v)[0] in chosen]
    return chosen, left_out


def parse_method(label: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name[key=value,...]"`` -> ``(name, options)``; values are JSON
    (``true``, ``3``, ``"x"``), else taken as strings."""
    name, _, rest = label.partition("[")
    options: dict[str, Any] = {}
    if rest:
        if not rest.endswith("]"):
            raise ValueError(f"method {label!r}: options go in brackets, as name[key=value,...]")
        for item in filter(None, rest[:-1].split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"method {label!r}: option {item!r} is not key=value")
            try:
                options[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                options[key.strip()] = value.strip()
    return name.strip(), options


def run_dataprice(method: str | type, stored_game, exact, game_name: str, budgets: Sequence[int],
                  seeds: Sequence[int]) -> list[dict]:
    """Every (budget, seed) run of one dataprice method. ``stored_game()`` makes a fresh game
    (its ``n_evaluations`` counts the calls); a failing run is recorded with its error."""
    options: dict[str, Any] = {}
    if isinstance(method, str):
        name, options = parse_method(method)
        cls, label = METHODS[name], method
    else:
        cls, label = method, method.name
    runs = []
    for budget in budgets:
        for seed in seeds:
            game = stored_game()
            started = time.perf_counter()
            try:
                result = cls(max_evaluations=int(budget), seed=int(seed), **options).fit(game).result
            except Exception as exc:  # reported, and the method is left out of the tables
                runs.append(record(game_name, "dataprice", label, budget, seed, None, exact, evaluations=None,
                                   seconds=None, failure=f"{type(exc).__name__}: {exc}"))
                continue
            runs.append(record(game_name, "dataprice", label, budget, seed, result.values, exact,
                               evaluations=int(game.n_evaluations), reported=int(result.n_evaluations),
                               seconds=time.perf_counter() - started))
    return runs


# -- shapiq and pyDVL ---------------------------------------------------------------------------

def check_coalitions(n: int, count: int = 16, seed: int = 0) -> np.ndarray:
    """Random coalitions, plus the empty and the grand one, to check that two sides agree."""
    rows = np.random.default_rng(seed).random((count, n)) < 0.5
    return np.vstack([np.zeros((1, n), dtype=bool), np.ones((1, n), dtype=bool), rows])


def run_shapiq(games: dict[str, StoredGame], budgets: dict[str, list[int]], seeds: Sequence[int],
               approximators: list[str], log=print) -> tuple[list[dict], dict[str, Any]]:
    """shapiq's runs on the stored games, in ``.venv-shapiq``; and its versions and checks."""
    job = {"approximators": approximators, "seeds": list(map(int, seeds)), "games": {}}
    checks = {}
    for name, stored in games.items():
        coalitions = check_coalitions(stored.n_players)
        checks[name] = stored.game()(coalitions)
        job["games"][name] = {"path": str(GAMES_DIR / f"{name}.npz"), "budgets": budgets[name],
                              "check_coalitions": coalitions.tolist()}
    with tempfile.TemporaryDirectory() as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        subprocess.run([str(SHAPIQ_PYTHON), str(ROOT / "benchmarks" / "_shapiq_worker.py"), str(job_path),
                        str(out_path)], check=True, env={**os.environ, **ONE_THREAD})
        out = json.loads(out_path.read_text())
    runs, info = [], {"shapiq": out["shapiq_version"], "numpy": out["numpy_version"], "same_values": {}}
    for name, stored in games.items():
        side = out["games"][name]
        gap = float(np.max(np.abs(np.asarray(side["check_values"]) - checks[name])))
        info["same_values"][name] = gap
        if gap > 1e-9 * max(1.0, float(np.abs(checks[name]).max())):
            raise RuntimeError(f"{name}: shapiq's side evaluates the game differently (gap {gap:.2e})")
        for run in side["runs"]:
            runs.append(record(name, "shapiq", run["approximator"], run["budget"], run["seed"], run.get("values"),
                               stored.exact, evaluations=run.get("evaluations"), seconds=run.get("seconds"),
                               reported=run.get("reported_budget"), failure=run.get("error")))
    log(f"shapiq {out['shapiq_version']}: game values agree with dataprice's to "
        + ", ".join(f"{k} {v:.0e}" for k, v in info["same_values"].items()))
    return runs, info


def run_pydvl(stored: StoredGame, budgets: Sequence[int], seeds: Sequence[int], max_evaluations: int,
              log=print) -> tuple[list[dict], dict[str, Any]]:
    """pyDVL's TMC-Shapley (no truncation) on the classifier game: one run per seed to
    ``max_evaluations``, read at every budget of the grid up to it."""
    from dataprice.buyers.classifier.game import ClassifierGame

    shards = classifier_shards(stored.settings)
    game = ClassifierGame(shards, model="logistic")
    coalitions = check_coalitions(stored.n_players, 8)
    ours = stored.game()(coalitions)
    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data_path, X_train=shards.X_train, y_train=shards.y_train, owners=shards.owners,
                 X_val=shards.X_val, y_val=shards.y_val, n_classes=shards.n_classes, C=game.regularization,
                 check_coalitions=coalitions, seeds=np.asarray(seeds), max_evaluations=max_evaluations,
                 truncation_rtol=0.0)
        started = time.perf_counter()
        subprocess.run([str(PYDVL_PYTHON), "-W", "ignore::FutureWarning", str(ROOT / "benchmarks" / "_pydvl_worker.py"),
                        str(data_path), str(out_path)], check=True, env={**os.environ, **ONE_THREAD})
        wall = time.perf_counter() - started
        out = json.loads(out_path.read_text())
    gap = float(np.max(np.abs(np.asarray(out["check_values"]) - game.empty_quality - ours)))
    log(f"pyDVL TMC: {len(seeds)} runs of {max_evaluations} evaluations in {wall:.0f} s; its utility differs "
        f"from dataprice's by at most {gap:.1e} on {len(coalitions)} coalitions")
    runs = []
    for seed, trace in zip(seeds, out["runs"], strict=True):
        for budget in budgets:
            if budget > max_evaluations:
                continue
            fitting = [rec for rec in trace if rec["evaluations"] <= budget]
            if not fitting:
                runs.append(record("classifier", "pyDVL", "TMC (no truncation)", budget, seed, None, stored.exact,
                                   evaluations=None, seconds=None, failure="no permutation fits the budget"))
                continue
            last = fitting[-1]
            runs.append(record("classifier", "pyDVL", "TMC (no truncation)", budget, seed, last["values"],
                               stored.exact, evaluations=last["evaluations"], seconds=last["seconds"]))
    return runs, {"wall_seconds": wall, "utility_gap": gap, "max_evaluations": max_evaluations}


# -- the report -------------------------------------------------------------------------------------

def cell(entry: dict, top: int | None) -> str:
    if entry["budget"] is None:
        return f"not reached at {top}" if top else "-"
    return f"{entry['evaluations']:.0f}"


def rank_key(summary: dict) -> tuple:
    """Fewest evaluations to 5%, then 10%, then Spearman 0.95, then the smallest final error."""
    def evals(column):
        e = summary[column]["evaluations"]
        return np.inf if e is None else e
    error = summary["median rel. error there"]
    return (evals("evals to 5%"), evals("evals to 10%"), evals("evals to Spearman 0.95"),
            np.inf if error is None else error)


def game_table(name: str, stored: StoredGame, summaries: dict[tuple[str, str], dict]) -> list[str]:
    lines = [f"### {name}: {stored.n_players} players", "",
             f"{stored.description}; exact values: {stored.info.get('exact_source')}.", "",
             "| library | method | evals to 10% | evals to 5% | evals to Spearman 0.95 | median rel. error at largest B "
             "| median s per run there |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (library, method), s in summaries.items():
        top = s["largest budget"]
        error = "-" if s["median rel. error there"] is None else f"{s['median rel. error there']:.3f} (B={top})"
        secs = "-" if s["median seconds there"] is None else f"{s['median seconds there']:.3f}"
        failed = f" ({s['failed runs']} runs failed)" if s["failed runs"] else ""
        lines.append(f"| {library} | {method}{failed} | " + " | ".join(cell(s[c], top) for _, _, c in TARGETS)
                     + f" | {error} | {secs} |")
    best = {lib: min(((m, s) for (lb, m), s in summaries.items() if lb == lib), key=lambda ms: rank_key(ms[1]),
                     default=None) for lib in ("dataprice", "shapiq")}
    if best["shapiq"] is not None:
        m, s = best["shapiq"]
        lines += ["", f"Best shapiq approximator: **{m}** "
                  f"(10%: {cell(s['evals to 10%'], s['largest budget'])}, 5%: {cell(s['evals to 5%'], s['largest budget'])}, "
                  f"Spearman 0.95: {cell(s['evals to Spearman 0.95'], s['largest budget'])})."]
        if best["dataprice"] is not None:
            dm, ds = best["dataprice"]
            ratios = []
            for _, _, column in TARGETS:
                ours, theirs = ds[column]["evaluations"], s[column]["evaluations"]
                what = column.removeprefix("evals to ")
                if ours is not None and theirs is not None:
                    ratios.append(f"{what} {ours / theirs:.1f}x")
                elif theirs is not None:
                    ratios.append(f"{what} > {ds['largest budget'] / theirs:.1f}x")
            if ratios:
                lines.append(f"Best dataprice method, {dm}, needs this many times its evaluations: " + ", ".join(ratios) + ".")
    verdict = default_against_shapiq(summaries)
    if verdict is not None:
        lines.append(verdict["line"])
    return lines


def default_against_shapiq(summaries: dict[tuple[str, str], dict]) -> dict[str, Any] | None:
    """The goal's comparison of the default ``shapley`` with shapiq, read two ways.

    * Against *the best shapiq approximator* (the goal's words): the one the table ranks first
      (fewest evaluations to 5%, then 10%, then Spearman 0.95), on each target.
    * Against *the best per target* (stricter): the fewest evaluations any approximator needs
      for that target, whichever it is.

    Each gives ``no_more`` (the default needs no more evaluations on every target the
    approximator reaches) and ``fewer`` (no more everywhere and strictly fewer somewhere, or
    a target reached that the approximator does not). Returns ``{"line", "best": {...},
    "per_target": {...}}`` or None without the default or shapiq."""
    ours = summaries.get(("dataprice", "shapley"))
    theirs = {m: s for (lib, m), s in summaries.items() if lib == "shapiq"}
    if ours is None or not theirs:
        return None
    ranked = min(theirs, key=lambda m: rank_key(theirs[m]))

    def compare(pick) -> tuple[list[str], bool, bool]:
        parts, no_more, fewer = [], True, False
        for _, _, column in TARGETS:
            best, who = pick(column)
            mine = ours[column]["evaluations"]
            what = column.removeprefix("evals to ")
            shown = "not reached" if mine is None else f"{mine:.0f}"
            if best is None:
                fewer |= mine is not None
                parts.append(f"{what} {shown} vs not reached")
                continue
            if mine is None or mine > best:
                no_more = False
            elif mine < best:
                fewer = True
            parts.append(f"{what} {shown} vs {best:.0f}" + (f" ({who})" if who != ranked else ""))
        return parts, no_more, no_more and fewer

    def per_target(column):
        reached = [(s[column]["evaluations"], m) for m, s in theirs.items() if s[column]["evaluations"] is not None]
        return min(reached) if reached else (None, None)

    best_parts, best_no_more, best_fewer = compare(lambda c: (theirs[ranked][c]["evaluations"], ranked))
    target_parts, target_no_more, target_fewer = compare(per_target)

    def word(no_more: bool, fewer: bool) -> str:
        return "fewer" if fewer else ("no more" if no_more else "more")

    line = (f"Default `shapley` against the best shapiq approximator, {ranked}: {'; '.join(best_parts)}: "
            f"**{word(best_no_more, best_fewer)}**. Against the best approximator for each target: "
            f"{'; '.join(target_parts)}: **{word(target_no_more, target_fewer)}**.")
    return {"line": line, "best": {"no_more": best_no_more, "fewer": best_fewer},
            "per_target": {"no_more": target_no_more, "fewer": target_fewer}}


def read_csv(path: Path) -> list[dict]:
    """Runs written by :func:`write_csv`, with their types back."""
    runs = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            def number(key, cast, row=row):
                return cast(row[key]) if row[key] not in ("", None) else None
            runs.append({"game": row["game"], "library": row["library"], "method": row["method"],
                         "budget": int(row["budget"]), "seed": int(row["seed"]),
                         "evaluations": number("evaluations", lambda v: int(float(v))),
                         "reported_evaluations": number("reported_evaluations", lambda v: int(float(v))),
                         "rel_error": float(row["rel_error"]) if row["rel_error"] else float("nan"),
                         "spearman": float(row["spearman"]) if row["spearman"] else float("nan"),
                         "seconds": number("seconds", float), "failure": row["failure"] or None})
    return runs


def write_csv(path: Path, runs: list[dict]) -> None:
    columns = ["game", "library", "method", "budget", "seed", "evaluations", "reported_evaluations", "rel_error",
               "spearman", "seconds", "failure"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default=",".join(GAME_NAMES), help=f"comma-separated, of {', '.join(GAME_NAMES)}")
    parser.add_argument("--methods", default=None,
                        help="dataprice methods, comma-separated (default: every Monte Carlo Shapley method that "
                             "needs only a budget and a seed, shapley included, and the variants of VARIANTS)")
    parser.add_argument("--shapiq", default="all", help="shapiq approximators, comma-separated (names as in "
                        "_shapiq_worker.APPROXIMATORS), or all")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--min-budget", type=int, default=64)
    parser.add_argument("--max-budget", type=int, default=8192)
    parser.add_argument("--grid-factor", type=float, default=2**0.5)
    parser.add_argument("--pydvl-max-evaluations", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="3 seeds, budgets 64..2048 by factors of 2, pyDVL to 1024")
    parser.add_argument("--no-shapiq", action="store_true")
    parser.add_argument("--no-pydvl", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stored games and exact values")
    parser.add_argument("--from-csv", type=Path, default=None,
                        help="write the report from the runs of an earlier run's CSV (nothing is run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.max_budget, args.grid_factor = 3, 2048, 2.0
        args.pydvl_max_evaluations = min(args.pydvl_max_evaluations, 1024)
    started = time.perf_counter()
    game_names = [g for g in args.games.split(",") if g]
    unknown = set(game_names) - set(GAME_NAMES)
    if unknown:
        sys.exit(f"unknown games {sorted(unknown)}; choose from {', '.join(GAME_NAMES)}")
    if args.methods:
        methods, left_out = [m for m in args.methods.split(",") if m], {}
        missing = [m for m in methods if parse_method(m)[0] not in METHODS]
        if missing:
            sys.exit(f"not registered dataprice methods: {missing}; registered: {', '.join(METHODS)}")
    else:
        methods, left_out = default_methods()
    seeds = list(range(args.seeds))
    print(f"dataprice methods: {', '.join(methods)}"
          + (f" (left out: {'; '.join(f'{k}: {v}' for k, v in left_out.items())})" if left_out else ""))

    games = {name: load_or_build(name, rebuild=args.rebuild) for name in game_names}
    budgets = {name: budget_grid(args.min_budget, args.max_budget, args.grid_factor,
                                 g.n_players if g.tabulated else None) for name, g in games.items()}
    for name, g in games.items():
        print(f"{name}: {g.n_players} players, {g.description}; exact: {g.info.get('exact_source')}"
              + (f"; {g.info['check']}" if "check" in g.info else "") + f"; budgets {budgets[name]}")

    runs: list[dict] = []
    failures: dict[str, str] = {}
    if args.from_csv is not None:  # the report of an earlier run, written again
        runs = [r for r in read_csv(args.from_csv) if r["game"] in games]
        methods = list(dict.fromkeys(r["method"] for r in runs if r["library"] == "dataprice"))
        args.no_shapiq = args.no_pydvl = True
    for name, stored in games.items():
        for method in methods if args.from_csv is None else []:
            t0 = time.perf_counter()
            done = run_dataprice(method, stored.game, stored.exact, name, budgets[name], seeds)
            failed = [r for r in done if r["failure"]]
            if failed:
                failures[f"{method} on {name}"] = failed[0]["failure"]
                print(f"  dataprice {name:10s} {method:28s} FAILED {len(failed)}/{len(done)} runs: {failed[0]['failure']}")
            over = [r for r in done if r["evaluations"] is not None and r["evaluations"] > r["budget"]]
            differ = [r for r in done if r["evaluations"] is not None and r["evaluations"] != r["reported_evaluations"]]
            if over:
                print(f"  dataprice {name:10s} {method}: {len(over)} runs spent more than their budget")
            if differ:
                print(f"  dataprice {name:10s} {method}: {len(differ)} runs report n_evaluations other than the "
                      "game calls counted (the tables use the calls)")
            print(f"  dataprice {name:10s} {method:28s} {len(done)} runs in {time.perf_counter() - t0:.1f} s")
            runs += done

    side: dict[str, Any] = {}
    if not args.no_shapiq:
        if SHAPIQ_PYTHON.exists():
            approximators = "all" if args.shapiq == "all" else args.shapiq.split(",")
            if approximators == "all":
                approximators = ["PermutationSamplingSV", "KernelSHAP (paired)", "KernelSHAP",
                                 "UnbiasedKernelSHAP (paired)", "kADD-SHAP (paired)", "SVARM", "StratifiedSamplingSV",
                                 "OwenSamplingSV"]
            t0 = time.perf_counter()
            shapiq_runs, side["shapiq"] = run_shapiq(games, budgets, seeds, approximators)
            side["shapiq"]["wall_seconds"] = time.perf_counter() - t0
            runs += shapiq_runs
        else:
            print(f"shapiq's environment is missing ({SHAPIQ_PYTHON}): run `make bench-estimators`; skipping shapiq")
    if not args.no_pydvl and "classifier" in games:
        if PYDVL_PYTHON.exists():
            pydvl_runs, side["pyDVL"] = run_pydvl(games["classifier"], budgets["classifier"], seeds,
                                                  min(args.pydvl_max_evaluations, budgets["classifier"][-1]))
            runs += pydvl_runs
        else:
            print(f"pyDVL's environment is missing ({PYDVL_PYTHON}): `make bench-pydvl` builds it; skipping pyDVL")

    wall = time.perf_counter() - started
    earlier = args.from_csv.with_name(args.from_csv.name.replace("_runs.csv", ".json")) if args.from_csv else None
    if earlier is not None and earlier.is_file():  # the run's own command and time, not this rewrite's
        before = json.loads(earlier.read_text())
        wall, argv, side = before["wall_seconds"], before["command"].split()[2:], before.get("sides", {})
    report = ["## Game evaluations to reach a relative L2 error of 10% / 5% and Spearman 0.95", "",
              f"Median over {len(seeds)} seeds; the first budget of the grid (factor {args.grid_factor:.3g}, "
              f"{args.min_budget}..{args.max_budget}, at most 4 * 2^n for tabulated games) at which the median "
              "reaches the target, shown as the median game calls made there. Seconds: the estimator's time per run, "
              "on games read from their table (coverage: computed) in the library's own process.", ""]
    summary: dict[str, Any] = {}
    for name, stored in games.items():
        game_runs = [r for r in runs if r["game"] == name]
        keys = list(dict.fromkeys((r["library"], r["method"]) for r in game_runs))
        summaries = {}
        for library, method in keys:
            mine = [r for r in game_runs if r["library"] == library and r["method"] == method]
            if all(r["failure"] for r in mine) and library == "dataprice":
                continue  # a dataprice method that failed everywhere is reported, not tabled
            summaries[(library, method)] = summarize(mine, budgets[name], seeds)
        report += game_table(name, stored, summaries)
        pydvl = next((m for lib, m in summaries if lib == "pyDVL"), None)
        if pydvl is not None and ("dataprice", "tmc_shapley") in summaries:
            top = summaries[("pyDVL", pydvl)]["largest budget"]
            pairs = []
            for library, method in (("pyDVL", pydvl), ("dataprice", "tmc_shapley")):
                at = [r for r in game_runs if r["library"] == library and r["method"] == method and r["budget"] == top
                      and r["failure"] is None]
                pairs.append(f"{np.median([r['rel_error'] for r in at]):.3f}" if at else "-")
            report.append(f"At B={top}, pyDVL's TMC has median relative error {pairs[0]}, dataprice's tmc_shapley "
                          f"{pairs[1]} (pyDVL's seconds include training a model per evaluation).")
        report.append("")
        summary[name] = {"players": stored.n_players, "description": stored.description, "info": stored.info,
                         "budgets": budgets[name], "exact": stored.exact.tolist(),
                         "estimators": {f"{lib}: {m}": s for (lib, m), s in summaries.items()}}
    verdicts = {name: default_against_shapiq({(e.split(": ", 1)[0], e.split(": ", 1)[1]): s
                                              for e, s in summary[name]["estimators"].items()}) for name in summary}
    if all(v is not None for v in verdicts.values()) and verdicts:
        for reading, words in (("best", "the best shapiq approximator (the goal's reading)"),
                               ("per_target", "the best approximator for each target (stricter)")):
            fewer = [g for g, v in verdicts.items() if v[reading]["fewer"]]
            no_more = [g for g, v in verdicts.items() if v[reading]["no_more"]]
            met = len(no_more) == len(verdicts) and len(fewer) >= 2
            report += [f"Goal (the default needs no more evaluations than the best shapiq approximator on every game, "
                       f"strictly fewer on at least two), against {words}: no more on {len(no_more)} of "
                       f"{len(verdicts)} games ({', '.join(no_more) or 'none'}), fewer on {len(fewer)} "
                       f"({', '.join(fewer) or 'none'}): **{'met' if met else 'not met'}**.", ""]
    if failures:
        report += ["Failed dataprice methods (left out of the tables):", ""]
        report += [f"* {k}: {v}" for k, v in failures.items()] + [""]
    command = "python benchmarks/estimators.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report += [f"Command: `{command.strip()}`; wall time {wall / 60:.1f} min."]
    text = "\n".join(report)
    print("\n" + text)

    stem = "estimators_quick" if args.quick else "estimators"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    write_csv(RESULTS / f"{stem}_runs.csv", runs)
    (RESULTS / f"{stem}.json").write_text(json.dumps({
        "command": command.strip(), "wall_seconds": wall, "seeds": seeds, "methods": methods,
        "methods_left_out": left_out, "failures": failures, "sides": side, "games": summary,
    }, indent=1, default=float))
    print(f"\nwrote {', '.join(str((RESULTS / f'{stem}{s}').relative_to(ROOT)) for s in ('.md', '.json', '_runs.csv'))}")


if __name__ == "__main__":
    main()
