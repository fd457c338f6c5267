"""Scaling of one valuation across engines: serial, 2 local workers (loky), Dask and Ray local clusters.

Permutation Shapley on the classifier buyer (logistic regression retrained per coalition,
the expensive part) with a fixed evaluation budget, run on each engine in the same process.
All engines must give identical values (checked); printed: wall time and speed-up against
the serial engine. Every process does its numerical work on one BLAS thread (this process
by threadpoolctl, workers by their engine), so the speed-up is the parallelism across
coalitions, not a serial run slowed by oversubscribed BLAS threads (``--blas-threads
default`` shows that case). On a 2-core machine the ideal speed-up is 2x.

    python benchmarks/engine_scaling.py [--sellers 10] [--evaluations 1500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dataprice.buyers.classifier.game import ClassifierGame
from dataprice.data.shards import make_shards
from dataprice.engine import DaskEngine, LokyEngine, RayEngine, SerialEngine
from dataprice.threads import one_blas_thread
from dataprice.valuation.methods import PermutationShapley


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=10)
    parser.add_argument("--evaluations", type=int, default=1500)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--blas-threads", choices=["one", "default"], default="one",
                        help="BLAS threads of this process (engine workers always use one)")
    args = parser.parse_args()
    if args.blas_threads == "one":
        with one_blas_thread():
            run(args)
    else:
        run(args)


def run(args) -> None:
    shards = make_shards(args.dataset, args.sellers, seed=0, max_points=900)
    game = ClassifierGame(shards, value_per_quality=100)
    engines = [
        ("serial", SerialEngine()), ("loky, 2 workers", LokyEngine(2)), ("dask, 2 workers", DaskEngine(2)),
        ("ray, 2 workers", RayEngine(2)),
    ]
    print(f"permutation Shapley, {args.dataset}, {args.sellers} sellers, budget {args.evaluations} evaluations, "
          f"BLAS threads in this process: {args.blas_threads}")
    reference, base = None, None
    for name, engine in engines:
        engine.submit(abs, 1).result()  # start workers before timing
        started = time.perf_counter()
        result = PermutationShapley(max_evaluations=args.evaluations, batch_size=8, seed=0).fit(
            game, engine=engine, window=4).result
        seconds = time.perf_counter() - started
        engine.shutdown()
        if reference is None:
            reference, base = result.values, seconds
        assert np.array_equal(result.values, reference), f"{name} disagrees"
        print(f"{name:18s} {seconds:7.1f} s   speed-up {base / seconds:4.2f}x   ({result.n_evaluations} evaluations)")


if __name__ == "__main__":
    main()
