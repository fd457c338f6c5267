"""Does FedRandom give more stable, more size-like contributions than fixed aggregators? A sweep.

The FedRandom paper (Geimer, Fiz Pontiveros, State, 2026) measures contributions against a
data-size baseline (each client's share of the data) by the L2 and L-inf distances of the
normalised contributions, and their *instability across aggregation strategies*: a client's
contribution moves when the federation switches from one fixed rule to another, and
FedRandom, drawing the rule each round, is meant to average that out. This sweep reproduces
those measurements on dataprice's federated buyer (softmax regression, local SGD, the four
fixed rules and FedRandom over them; multi-round reconstruction with the server rule
replayed; exact Shapley over the clients):

* grid: data sets x splits x client counts, each with ``--seeds`` training seeds (the split
  is fixed per configuration: data seed 13; only the training randomness varies), one task
  per configuration on a 2-worker loky engine;
* per configuration and aggregator: the L2 and L-inf distances of the mean normalised
  contribution ``phi / sum |phi|`` to the data-size shares, and the instability across
  seeds (mean over clients of the standard deviation of the normalised contribution);
* per configuration: the instability across the four fixed strategies (per seed, the
  standard deviation over strategies of each client's normalised contribution; mean over
  clients and seeds), the quantity FedRandom is meant to reduce;
* summary: how often each aggregator is the most stable across seeds and the closest to
  the baseline (L2), and how often FedRandom's across-seed instability is below the
  across-strategy instability of the fixed rules.

    python benchmarks/fedrandom_sweep.py [--datasets breast_cancer,wine,digits] [--clients 4,6,8]
                                         [--seeds 10] [--rounds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: (label, make_shards options): the four splits.
SPLITS = {
    "iid": {"partition": "iid"},
    "dirichlet 1.0": {"partition": "dirichlet", "alpha": 1.0},
    "dirichlet 0.3": {"partition": "dirichlet", "alpha": 0.3},
    "sizes 1:2:4": {"partition": "sizes"},
}


def normalised(phi: np.ndarray) -> np.ndarray:
    total = np.abs(phi).sum()
    return phi / total if total > 1e-12 else phi


def one_configuration(dataset: str, split: str, clients: int, seeds: int, rounds: int) -> dict:
    """Every aggregator on one fixed split over ``seeds`` training seeds (runs on a worker)."""
    from dataprice.buyers.federated.training import (
        AGGREGATORS,
        FederatedConfig,
        FederatedGame,
        train_federated,
    )
    from dataprice.data.shards import make_shards
    from dataprice.threads import one_blas_thread
    from dataprice.valuation.game import tabulate
    from dataprice.valuation.methods import ExactShapley

    options = dict(SPLITS[split])
    if options["partition"] == "sizes":
        options["sizes"] = [2.0 ** (j % 3) for j in range(clients)]
    started = time.perf_counter()
    with one_blas_thread():
        shards = make_shards(dataset, clients, seed=13, **options)
        sizes = np.bincount(shards.owners, minlength=clients).astype(float)
        baseline = sizes / sizes.sum()
        config = FederatedConfig(rounds=rounds)
        shares: dict[str, list[np.ndarray]] = {}
        accuracy: dict[str, list[float]] = {}
        for aggregator in [*AGGREGATORS, "fedrandom"]:
            for seed in range(seeds):
                run = train_federated(shards, aggregator, config, pool=AGGREGATORS, seed=seed)
                game = FederatedGame(shards, run, reconstruction="multi_round", value_per_quality=100.0)
                shares.setdefault(aggregator, []).append(normalised(ExactShapley().fit(tabulate(game)).result.values))
                accuracy.setdefault(aggregator, []).append(float(game._acc_global[-1]))
    rows = {}
    for aggregator, values in shares.items():
        s = np.array(values)
        mean = s.mean(axis=0)
        rows[aggregator] = {
            "l2_to_data_size": float(np.linalg.norm(mean - baseline)),
            "linf_to_data_size": float(np.abs(mean - baseline).max()),
            "instability_across_seeds": float(s.std(axis=0, ddof=1).mean()),
            "accuracy": float(np.mean(accuracy[aggregator])),
        }
    fixed = np.array([shares[a] for a in AGGREGATORS])  # (strategies, seeds, clients)
    return {
        "dataset": dataset, "split": split, "clients": clients, "sizes": sizes.astype(int).tolist(),
        "instability_across_strategies": float(fixed.std(axis=0, ddof=1).mean()),
        "aggregators": rows, "seconds": time.perf_counter() - started,
    }


def markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame`` (index first), numbers to 3 decimals."""
    head = ["aggregator", *frame.columns]
    rows = [f"| {index} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for index, row in frame.iterrows()]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="breast_cancer,wine,digits")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--clients", default="4,6,8")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from dataprice.engine import make_engine

    grid = list(itertools.product(args.datasets.split(","), args.splits.split(","),
                                  [int(c) for c in args.clients.split(",")]))
    print(f"{len(grid)} configurations x {args.seeds} seeds x 5 aggregators, {args.rounds} rounds, "
          f"{args.workers} loky workers")
    started = time.perf_counter()
    engine = make_engine("loky", args.workers)
    try:
        futures = [engine.submit(one_configuration, d, s, c, args.seeds, args.rounds) for d, s, c in grid]
        results = []
        for (d, s, c), future in zip(grid, futures, strict=True):
            results.append(future.result())
            print(f"  {d:14s} {s:14s} {c} clients  {results[-1]['seconds']:.1f} s", flush=True)
    finally:
        engine.shutdown()
    wall = time.perf_counter() - started

    records = []
    for r in results:
        for aggregator, row in r["aggregators"].items():
            records.append({"dataset": r["dataset"], "split": r["split"], "clients": r["clients"],
                            "aggregator": aggregator, **row,
                            "instability_across_strategies": r["instability_across_strategies"]})
    table = pd.DataFrame(records)
    keys = ["dataset", "split", "clients"]
    most_stable = table.loc[table.groupby(keys)["instability_across_seeds"].idxmin(), "aggregator"].value_counts()
    closest = table.loc[table.groupby(keys)["l2_to_data_size"].idxmin(), "aggregator"].value_counts()
    fr = table[table.aggregator == "fedrandom"]
    below_strategies = float((fr["instability_across_seeds"] < fr["instability_across_strategies"]).mean())
    summary = table.groupby("aggregator")[["l2_to_data_size", "linf_to_data_size", "instability_across_seeds",
                                           "accuracy"]].median()
    summary["most stable (share of configurations)"] = (most_stable / len(grid)).reindex(summary.index).fillna(0.0)
    summary["closest to data size, L2 (share)"] = (closest / len(grid)).reindex(summary.index).fillna(0.0)
    order = ["fedavg", "fedavgm", "fedadam", "fedprox", "fedrandom"]
    summary = summary.reindex(order)
    lines = [
        f"## FedRandom sweep: {len(grid)} configurations ({args.datasets}; splits {args.splits}; "
        f"{args.clients} clients), {args.seeds} training seeds each, {args.rounds} rounds", "",
        "Medians over configurations; shares of configurations in which each aggregator is the most stable across "
        "seeds and the closest to the data-size baseline.", "",
        markdown(summary), "",
        f"Instability across the four fixed strategies (median over configurations): "
        f"{table.groupby(keys)['instability_across_strategies'].first().median():.3f}. FedRandom's instability across "
        f"seeds is below it in {below_strategies:.0%} of configurations.", "",
        f"Command: `python benchmarks/fedrandom_sweep.py` with {vars(args)}; wall time {wall / 60:.1f} min.",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fedrandom_sweep.md").write_text(text + "\n")
    table.to_csv(RESULTS / "fedrandom_sweep.csv", index=False)
    (RESULTS / "fedrandom_sweep.json").write_text(json.dumps({"args": vars(args), "wall_seconds": wall,
                                                             "configurations": results}, indent=1))


if __name__ == "__main__":
    main()
