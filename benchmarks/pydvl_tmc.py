"""Permutation Shapley against pyDVL's TMC-Shapley on the same classifier utility.

Sellers hold shards of a bundled sklearn dataset (some with noisy labels); the utility is
validation accuracy of an L2 logistic regression trained on a coalition's data (a
coalition with one class predicts it). Exact Shapley values come from the full table of
``2^n`` coalitions. Both libraries then run TMC-Shapley with the same absolute truncation
tolerance, one process each, over the same seeds; after every batch the estimate's
relative error ``||phi_hat - phi|| / ||phi||`` is recorded with the utility evaluations
and time spent. The benchmark prints, per library, the median evaluations and seconds
to first reach each target error, and their ratio.

pyDVL 0.10 pins ``numpy<2``, so its side runs in ``.venv-pydvl`` (``make bench-pydvl``
builds that and runs this script) through ``benchmarks/_pydvl_worker.py``. The worker first
evaluates coalitions sent from here and the two utilities are checked to agree.

    python benchmarks/pydvl_tmc.py [--dataset breast_cancer] [--sellers 10] [--seeds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.data.shards import make_shards
from dataprice.threads import one_blas_thread
from dataprice.valuation.game import tabulate
from dataprice.valuation.methods import ExactShapley, PermutationShapley
from dataprice.valuation.stopping import EstimationState, StoppingCriterion

ROOT = Path(__file__).resolve().parent.parent
PYDVL_PYTHON = ROOT / ".venv-pydvl" / "bin" / "python"


class Recorder(StoppingCriterion):
    """Never stops by itself; records the estimate at every check."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.trace: list[dict] = []

    def __call__(self, state: EstimationState) -> bool:
        self.trace.append({
            "evaluations": int(state.n_evaluations),
            "seconds": time.perf_counter() - self.started,
            "values": np.asarray(state.values).tolist(),
        })
        return False


def first_reach(trace: list[dict], exact: np.ndarray, target: float) -> tuple[float, float]:
    """(evaluations, seconds) at the first record whose relative error is <= target."""
    norm = np.linalg.norm(exact)
    for rec in trace:
        if np.linalg.norm(np.asarray(rec["values"]) - exact) / norm <= target:
            return rec["evaluations"], rec["seconds"]
    return np.nan, np.nan


def final_error(trace: list[dict], exact: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(trace[-1]["values"]) - exact) / np.linalg.norm(exact))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--sellers", type=int, default=10)
    parser.add_argument("--noisy", type=int, default=2, help="sellers with noisy labels")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-evaluations", type=int, default=4000)
    parser.add_argument("--truncation-rtol", type=float, default=0.01,
                        help="truncation tolerance relative to dataprice's |v(N)| (pyDVL gets the same absolute tolerance)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.1])
    parser.add_argument("--blas-threads", choices=["one", "default"], default="one",
                        help="BLAS/OpenMP threads of both sides (one: equal footing, one thread each)")
    args = parser.parse_args()
    if not PYDVL_PYTHON.exists():
        sys.exit(f"pyDVL's environment is missing: run `make bench-pydvl` (expected {PYDVL_PYTHON})")

    shards = make_shards(args.dataset, args.sellers, seed=0, noisy_sellers=range(args.noisy), noise_fraction=0.5)
    game = ClassifierGame(shards)
    started = time.perf_counter()
    table = tabulate(game)
    exact = ExactShapley().fit(table).result.values
    print(f"{args.dataset}: {args.sellers} sellers ({args.noisy} with noisy labels); exact Shapley over "
          f"2^{args.sellers} coalitions in {time.perf_counter() - started:.1f} s")
    v_full = table.values[-1]
    accuracy_full = v_full + game.empty_quality
    tolerance = args.truncation_rtol * abs(v_full)

    rng = np.random.default_rng(0)
    check = rng.random((8, args.sellers)) < 0.5
    seeds = np.arange(args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(
            data_path, X_train=shards.X_train, y_train=shards.y_train, owners=shards.owners,
            X_val=shards.X_val, y_val=shards.y_val, n_classes=shards.n_classes, C=game.regularization,
            check_coalitions=check, seeds=seeds, max_evaluations=args.max_evaluations,
            truncation_rtol=tolerance / abs(accuracy_full),
        )
        started = time.perf_counter()
        env = dict(os.environ)
        if args.blas_threads == "one":
            env.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        subprocess.run([str(PYDVL_PYTHON), "-W", "ignore::FutureWarning", str(ROOT / "benchmarks" / "_pydvl_worker.py"),
                        str(data_path), str(out_path)],
                       check=True, env=env)
        pydvl_wall = time.perf_counter() - started
        pydvl = json.loads(out_path.read_text())
    theirs = np.asarray(pydvl["check_values"]) - game.empty_quality
    ours = game(check)
    gap = float(np.max(np.abs(theirs - ours)))
    print(f"same utility: largest difference on 8 random coalitions {gap:.1e}")

    traces = {"pyDVL TMC": pydvl["runs"], "dataprice TMC": []}
    started = time.perf_counter()
    with one_blas_thread() if args.blas_threads == "one" else contextlib.nullcontext():
        for seed in seeds:
            recorder = Recorder()
            PermutationShapley(stopping=recorder, max_evaluations=args.max_evaluations,
                               truncation_rtol=args.truncation_rtol, seed=int(seed)).fit(game)
            traces["dataprice TMC"].append(recorder.trace)
    ours_wall = time.perf_counter() - started
    print(f"BLAS threads: {args.blas_threads} on both sides")
    print(f"wall time for {args.seeds} seeds x {args.max_evaluations} evaluations: dataprice {ours_wall:.1f} s, "
          f"pyDVL {pydvl_wall:.1f} s (including its start-up)")

    medians: dict[str, dict[float, tuple[float, float]]] = {}
    print(f"\n{'method':15s} {'target':>7s} {'evaluations':>12s} {'seconds':>8s} {'reached':>8s}")
    for name, runs in traces.items():
        medians[name] = {}
        for target in args.targets:
            reached = np.array([first_reach(run, exact, target) for run in runs])
            ok = ~np.isnan(reached[:, 0])
            med = (float(np.median(reached[ok, 0])), float(np.median(reached[ok, 1]))) if ok.any() else (np.nan, np.nan)
            medians[name][target] = med
            print(f"{name:15s} {target:7.2f} {med[0]:12.0f} {med[1]:8.2f} {ok.sum():>5d}/{len(runs)}")
        errors = [final_error(run, exact) for run in runs]
        print(f"{name:15s} final relative error after {args.max_evaluations} evaluations: median {np.median(errors):.3f}")
    print("\nratio pyDVL / dataprice (median evaluations, median seconds) to reach each target:")
    for target in args.targets:
        a, b = medians["pyDVL TMC"][target], medians["dataprice TMC"][target]
        print(f"  {target:.2f}: evaluations {a[0] / b[0]:.2f}x, seconds {a[1] / b[1]:.2f}x")


if __name__ == "__main__":
    main()
