"""A 1,000-seller market: greedy allocation with truthful critical payments.

The buyer values coverage of its needs (:class:`~dataprice.buyers.coverage.game.
CoverageGame`). Greedy allocation is monotone, so critical-bid (Myerson) payments on it
are truthful. The fast path computes every winner's critical bid in one pass over the
greedy run without that winner; the baseline is bisection on the allocation rule
(:func:`~dataprice.market.rules.myerson.critical_bid`), timed on ``--baseline-winners`` winners
in the same run and compared per winner. Also: VCG on the greedy welfare, and greedy
welfare against the exact optimum on random 16-seller sub-markets.

    python benchmarks/large_market.py [--sellers 1000] [--needs 200] [--baseline-winners 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dataprice.buyers.coverage.game import CoverageGame, random_coverage_market
from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.allocation import ExactAllocation
from dataprice.market.rules.myerson import critical_bid
from dataprice.valuation.game import tabulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--needs", type=int, default=200)
    parser.add_argument("--baseline-winners", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    game, costs = random_coverage_market(args.sellers, args.needs, seed=args.seed)
    market = SubsetMarket(game, allocation=GreedyAllocation())

    started = time.perf_counter()
    alloc = market.allocate(costs)
    print(f"greedy allocation, {args.sellers} sellers x {args.needs} needs: "
          f"{time.perf_counter() - started:.2f} s, {alloc.members.size} selected, "
          f"welfare {alloc.welfare_at_bids:.1f}")

    game.n_evaluations = 0
    started = time.perf_counter()
    outcome = settle(market, costs, "myerson", costs)
    fast = time.perf_counter() - started
    winners = alloc.members
    per_winner = fast / winners.size
    print(f"Myerson (one pass per winner): {fast:.2f} s for {winners.size} winners "
          f"({per_winner * 1e3:.1f} ms each, {game.n_evaluations:,} coalition values); "
          f"paid {outcome.payments.sum():.1f} for cost {costs[winners].sum():.1f}; "
          f"min utility {outcome.utilities[winners].min():.3f}")

    rng = np.random.default_rng(args.seed)
    sample = rng.choice(winners, min(args.baseline_winners, winners.size), replace=False)
    game.n_evaluations = 0
    started = time.perf_counter()
    worst = 0.0
    for j in sample:
        worst = max(worst, abs(critical_bid(market, costs, j) - outcome.payments[j]))
    slow = (time.perf_counter() - started) / sample.size
    print(f"bisection baseline: {slow:.2f} s per winner (timed on {sample.size}, "
          f"{game.n_evaluations // sample.size:,} coalition values each); "
          f"per-winner ratio {slow / per_winner:.0f}x; largest difference {worst:.1e}")

    started = time.perf_counter()
    vcg = settle(market, costs, "vcg", costs)
    print(f"VCG on the greedy welfare: {time.perf_counter() - started:.2f} s; paid "
          f"{vcg.payments.sum():.1f} (not truthful with a greedy allocation)")

    ratios = []
    for _ in range(10):
        players = rng.choice(args.sellers, 16, replace=False)
        sub = CoverageGame(game.coverage[players], game.weights)
        bids = costs[players]
        greedy = GreedyAllocation()(sub, bids).welfare_at_bids
        exact = ExactAllocation()(tabulate(sub), bids).welfare_at_bids
        ratios.append(greedy / exact if exact > 0 else 1.0)
    print(f"greedy / exact welfare on 10 random 16-seller sub-markets: mean {np.mean(ratios):.4f}, "
          f"min {np.min(ratios):.4f}")


if __name__ == "__main__":
    main()
