"""Exact Shapley over 2^20 coalitions: vectorised bitmask sums against a plain loop.

The game is tabulated once (2^20 values of a vectorised game). The fast path computes all
20 Shapley values with array operations over bitmasks; the baseline is the textbook loop
``phi_i = sum_{S not containing i} w(|S|) [v(S+i) - v(S)]`` in Python, timed on
``--baseline-players`` players in the same run (per-player times compared). Also times
exact welfare maximisation and VCG / Myerson payments for 20 sellers on the same table.

    python benchmarks/exact_shapley.py [--players 20] [--baseline-players 1]
"""

from __future__ import annotations

import argparse
import time
from math import comb

import numpy as np

from dataprice.market import SubsetMarket, settle
from dataprice.market.allocation import subset_sums
from dataprice.valuation.game import TabulatedGame, tabulate
from dataprice.valuation.methods import ExactShapley
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=20)
    parser.add_argument("--baseline-players", type=int, default=1)
    args = parser.parse_args()
    n = args.players
    rng = np.random.default_rng(0)
    # airport game plus an additive part: Shapley known in closed form (additivity), and
    # the buyer wants several sellers
    airport = AirportGame(rng.uniform(0, 10, n))
    weights = rng.uniform(0, 2, n)

    started = time.perf_counter()
    table = TabulatedGame(tabulate(airport, batch_size=1 << 16).values + subset_sums(weights))
    print(f"tabulated 2^{n} = {2**n:,} coalitions in {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    phi = ExactShapley().fit(table).result.values
    fast = time.perf_counter() - started
    assert np.allclose(phi, airport.shapley_values() + weights)
    print(f"vectorised exact Shapley, all {n} players: {fast:.2f} s ({fast / n * 1e3:.0f} ms per player)")

    started = time.perf_counter()
    for i in range(args.baseline_players):
        assert abs(loop_shapley(table.values, n, i) - phi[i]) < 1e-9
    slow = (time.perf_counter() - started) / args.baseline_players
    print(f"plain loop: {slow:.2f} s per player (timed on {args.baseline_players}); "
          f"per-player ratio: {slow / (fast / n):.0f}x; all {n} players would take ~{slow * n:.0f} s")

    bids = rng.uniform(0, 2, n)
    market = SubsetMarket(table)
    for rule in ("vcg", "myerson"):
        started = time.perf_counter()
        outcome = settle(market, bids, rule)
        print(f"exact allocation + {rule} payments for {n} sellers: {time.perf_counter() - started:.2f} s "
              f"({int(outcome.selected.sum())} selected)")


if __name__ == "__main__":
    main()
