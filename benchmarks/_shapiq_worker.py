"""shapiq's side of ``benchmarks/estimators.py``; runs in its own virtual environment.

shapiq is kept out of dataprice's environment, so this script is run with
``.venv-shapiq/bin/python`` (``make bench-estimators`` builds it) and imports numpy and
shapiq only (not dataprice). It reads a job written by the benchmark: the stored games
(``benchmarks/results/estimator_games/*.npz``: a full value table, or a coverage matrix and
need weights), their exact Shapley values, the approximators, budgets and seeds. Every
(game, approximator, budget, seed) is one fresh run of the approximator with that budget
and ``random_state=seed``; the game it calls counts the coalitions it is asked for. It
writes, per run, the estimate, the evaluations made, shapiq's reported budget, the relative
L2 error and the seconds taken, and per game its values on the coalitions the benchmark
sent (checked there against dataprice's).

    python benchmarks/_shapiq_worker.py JOB.json OUT.json
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from importlib.metadata import version

import numpy as np
from shapiq.approximator import (
    SVARM,
    KernelSHAP,
    OwenSamplingSV,
    PermutationSamplingSV,
    StratifiedSamplingSV,
    UnbiasedKernelSHAP,
    kADDSHAP,
)

#: The approximators by the names the benchmark uses: shapiq 1.4.1's Shapley value
#: approximators (``shapiq.approximator.SV_APPROXIMATORS``), the regression ones also with
#: the pairing trick (the border trick is always on: coalition sizes whose every coalition
#: fits the budget are evaluated exhaustively). SPEX and ProxySPEX (sparse Fourier
#: transforms, meant for thousands of players) are left out.
APPROXIMATORS = {
    "PermutationSamplingSV": lambda n, seed: PermutationSamplingSV(n, random_state=seed),
    "KernelSHAP (paired)": lambda n, seed: KernelSHAP(n, pairing_trick=True, random_state=seed),
    "KernelSHAP": lambda n, seed: KernelSHAP(n, random_state=seed),
    "UnbiasedKernelSHAP (paired)": lambda n, seed: UnbiasedKernelSHAP(n, pairing_trick=True, random_state=seed),
    "kADD-SHAP (paired)": lambda n, seed: kADDSHAP(n, max_order=2, pairing_trick=True, random_state=seed),
    "SVARM": lambda n, seed: SVARM(n, random_state=seed),
    "StratifiedSamplingSV": lambda n, seed: StratifiedSamplingSV(n, random_state=seed),
    "OwenSamplingSV": lambda n, seed: OwenSamplingSV(n, random_state=seed),
}


class StoredGame:
    """A stored game evaluated with numpy; ``calls`` counts the coalitions asked for."""

    def __init__(self, path: str) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.kind = str(data["kind"])
            self.exact = np.asarray(data["exact"], dtype=np.float64)
            if self.kind == "table":
                self.values = np.asarray(data["values"], dtype=np.float64)
            else:
                self.log_miss = np.log1p(-np.asarray(data["coverage"], dtype=np.float64))
                self.weights = np.asarray(data["weights"], dtype=np.float64)
        self.n = self.exact.shape[0]
        self.bits = np.left_shift(np.int64(1), np.arange(self.n, dtype=np.int64))
        self.calls = 0

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        coalitions = np.asarray(coalitions, dtype=bool)
        if coalitions.ndim == 1:
            coalitions = coalitions[None, :]
        self.calls += coalitions.shape[0]
        if self.kind == "table":
            return self.values[coalitions.astype(np.int64) @ self.bits]
        return (1.0 - np.exp(coalitions.astype(np.float64) @ self.log_miss)) @ self.weights


def run_one(game: StoredGame, name: str, budget: int, seed: int) -> dict:
    game.calls = 0
    started = time.perf_counter()
    record = {"approximator": name, "budget": budget, "seed": seed}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not all budget is required" and the like
            estimate = APPROXIMATORS[name](game.n, seed).approximate(budget, game)
        values = np.array([estimate[(i,)] for i in range(game.n)], dtype=np.float64)
    except Exception as exc:  # an approximator that cannot run at this budget: recorded
        record.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=3))
        return record
    error = float(np.linalg.norm(values - game.exact) / np.linalg.norm(game.exact))
    record.update(
        values=values.tolist(), evaluations=game.calls, reported_budget=int(estimate.estimation_budget or 0),
        rel_error=error if np.isfinite(error) else None, seconds=time.perf_counter() - started,
    )
    return record


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    out = {"shapiq_version": version("shapiq"), "numpy_version": np.__version__, "games": {}}
    for name, spec in job["games"].items():
        game = StoredGame(spec["path"])
        check = np.asarray(spec["check_coalitions"], dtype=bool)
        runs = []
        started = time.perf_counter()
        for approximator in job["approximators"]:
            for budget in spec["budgets"]:
                for seed in job["seeds"]:
                    runs.append(run_one(game, approximator, int(budget), int(seed)))
            done = [r for r in runs if r["approximator"] == approximator]
            failed = sum("error" in r for r in done)
            print(f"  shapiq {name:10s} {approximator:28s} {len(done)} runs, {failed} failed, "
                  f"{time.perf_counter() - started:6.1f} s so far", flush=True)
        game.calls = 0
        out["games"][name] = {"check_values": game(check).tolist(), "runs": runs}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
