"""Exact Shapley, Banzhaf, Myerson and VCG over 2^n coalitions, next to one pass over the table.

For n = 16, 18, 20, 22 the game is tabulated once; each computation is timed (best of 3,
one BLAS thread) beside one numpy sum over the 2^n values, the floor for anything that
reads the whole table, and printed as a multiple of it. Exact semivalues are one weighting
pass and one fold (dataprice.valuation.folds; timed without ExactShapley's by-size breakdown
for statements, which it adds up to 18 players); exact allocation with Myerson or VCG
payments is a welfare table and one max-fold. With a last n of at most 20 the textbook
loop ``phi_i = sum_{S not containing i} w(|S|) [v(S+i) - v(S)]`` in Python is timed too.

    python benchmarks/exact_shapley.py [--players 16 18 20 22] [--baseline-players 1]
"""

from __future__ import annotations

import argparse
import time
from math import comb

import numpy as np

from dataprice.market import SubsetMarket, settle
from dataprice.market.allocation import subset_sums
from dataprice.threads import one_blas_thread
from dataprice.valuation.game import TabulatedGame, tabulate
from dataprice.valuation.methods import ExactShapley
from dataprice.valuation.methods.exact import (
    banzhaf_coefficient,
    semivalues_from_table,
    shapley_coefficient,
)
from dataprice.valuation.reference_games import AirportGame


def loop_shapley(values: np.ndarray, n: int, i: int) -> float:
    bit = 1 << i
    weights = [1.0 / (n * comb(n - 1, s)) for s in range(n)]
    total = 0.0
    for mask in range(1 << n):
        if mask & bit:
            continue
        total += weights[bin(mask).count("1")] * (values[mask | bit] - values[mask])
    return total


def best_of(fn, repeat: int = 3) -> float:
    """The fastest of ``repeat`` timings of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, nargs="+", default=[16, 18, 20, 22])
    parser.add_argument("--baseline-players", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("n    one numpy pass   exact Shapley        exact Banzhaf        Myerson (exact alloc)  VCG (exact alloc)")
    with one_blas_thread():
        for n in args.players:
            # airport game plus an additive part: Shapley known in closed form (additivity)
            airport = AirportGame(rng.uniform(0, 10, n))
            weights = rng.uniform(0, 2, n)
            table = TabulatedGame(tabulate(airport, batch_size=1 << 16).values + subset_sums(weights))
            phi = ExactShapley().fit(table).result.values
            assert np.allclose(phi, airport.shapley_values() + weights)
            one_pass = best_of(lambda t=table: t.values.sum(), 5)
            shapley = best_of(lambda t=table: semivalues_from_table(t, shapley_coefficient))
            banzhaf = best_of(lambda t=table: semivalues_from_table(t, banzhaf_coefficient))
            bids = rng.uniform(0, 2, n)
            # a fresh market per settlement: the allocation remembers its last welfare table,
            # which a repeat with the same bids would otherwise read instead of building
            rules = {rule: best_of(lambda r=rule, b=bids, t=table: settle(SubsetMarket(t), b, r))
                     for rule in ("myerson", "vcg")}
            cells = [f"{x * 1e3:8.2f} ms ({x / one_pass:5.1f}x)" for x in (shapley, banzhaf, rules["myerson"], rules["vcg"])]
            print(f"{n:<4} {one_pass * 1e3:8.2f} ms      " + "   ".join(cells))
        n = args.players[-1]
        if n <= 20 and args.baseline_players:
            started = time.perf_counter()
            for i in range(args.baseline_players):
                assert abs(loop_shapley(table.values, n, i) - phi[i]) < 1e-9
            slow = (time.perf_counter() - started) / args.baseline_players
            print(f"plain Python loop at n = {n}: {slow:.2f} s per player (timed on {args.baseline_players})")


if __name__ == "__main__":
    main()
