"""A large market (1,000 sellers by default, 10,000 with ``--sellers 10000``): greedy
allocation with truthful critical payments.

The buyer values coverage of its needs (:class:`~dataprice.buyers.coverage.game.
CoverageGame`), a submodular game, so greedy evaluates lazily (Minoux's accelerated
greedy: a seller's gain at an earlier step bounds its gain now). Greedy allocation is
monotone, so critical-bid (Myerson) payments on it are truthful. The fast path computes
every winner's critical bid in one lazy pass over the greedy run without that winner.
Baselines, timed in the same run on ``--baseline-winners`` winners and compared per
winner: the same pass evaluating every candidate at every step (``lazy=False``, which
must give identical floats), and bisection on the allocation rule
(:func:`~dataprice.market.rules.myerson.critical_bid`). With ``--workers N`` the winners'
runs are also spread over N local worker processes (loky). Also: VCG on the greedy
welfare, and greedy welfare against the exact optimum on random 16-seller sub-markets.

    python benchmarks/large_market.py [--sellers 1000] [--needs 200] [--baseline-winners 5]
        [--workers 0] [--one-blas-thread]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from dataprice.buyers.coverage.game import CoverageGame, random_coverage_market
from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.allocation import ExactAllocation
from dataprice.market.rules.myerson import critical_bid
from dataprice.threads import one_blas_thread
from dataprice.valuation.game import tabulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--needs", type=int, default=200)
    parser.add_argument("--baseline-winners", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="also run the critical bids on N loky workers")
    parser.add_argument("--one-blas-thread", action="store_true", help="limit BLAS to one thread (threadpoolctl)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with one_blas_thread() if args.one_blas_thread else contextlib.nullcontext():
        run(args)


def run(args: argparse.Namespace) -> None:
    game, costs = random_coverage_market(args.sellers, args.needs, seed=args.seed)
    market = SubsetMarket(game, allocation=GreedyAllocation())
    print(f"{args.sellers:,} sellers x {args.needs} needs; BLAS threads "
          f"{'limited to 1' if args.one_blas_thread else 'not limited'}")

    started = time.perf_counter()
    alloc = market.allocate(costs)
    print(f"greedy allocation (lazy): {time.perf_counter() - started:.2f} s, {alloc.members.size} selected, "
          f"welfare {alloc.welfare_at_bids:.1f}, {game.n_evaluations:,} coalition values")

    game.n_evaluations = 0
    started = time.perf_counter()
    outcome = settle(market, costs, "myerson", costs)
    fast = time.perf_counter() - started
    winners = alloc.members
    per_winner = fast / winners.size
    print(f"Myerson (one lazy pass per winner): {fast:.2f} s for {winners.size} winners "
          f"({per_winner * 1e3:.1f} ms each, {game.n_evaluations:,} coalition values); "
          f"paid {outcome.payments.sum():.1f} for cost {costs[winners].sum():.1f}; "
          f"min utility {outcome.utilities[winners].min():.3f}")

    rng = np.random.default_rng(args.seed)
    sample = rng.choice(winners, min(args.baseline_winners, winners.size), replace=False)
    lazy_rule = market.allocation
    lazy_trace = lazy_rule.trace(game, costs)
    lazy_bids = lazy_rule.critical_bids(game, costs)
    full_rule = GreedyAllocation(lazy=False)
    game.n_evaluations = 0
    started = time.perf_counter()
    full_trace = full_rule.trace(game, costs)
    full_alloc_s = time.perf_counter() - started
    full_alloc_values = game.n_evaluations
    game.n_evaluations = 0
    started = time.perf_counter()
    full_bids = full_rule.critical_bids(game, costs, sellers=sample)
    full_per_winner = (time.perf_counter() - started) / sample.size
    same = all(np.array_equal(getattr(lazy_trace, f), getattr(full_trace, f)) for f in ("order", "values", "best", "prefix"))
    same = same and all(np.array_equal(a[sample], b[sample]) for a, b in zip(lazy_bids, full_bids, strict=True))
    print(f"full greedy baseline (every candidate at every step): allocation {full_alloc_s:.2f} s "
          f"({full_alloc_values:,} coalition values); {full_per_winner:.2f} s per winner (timed on {sample.size}, "
          f"{game.n_evaluations // sample.size:,} coalition values each); per-winner ratio "
          f"{full_per_winner / per_winner:.1f}x; run, critical bids and welfare without each winner "
          f"{'IDENTICAL' if same else 'DIFFERENT'} to the lazy ones")

    if args.workers:
        from dataprice.engine import LokyEngine

        engine = LokyEngine(args.workers)
        took, same = [], True
        try:
            for _ in range(2):  # cold (workers start, import dataprice), then warm
                rule = GreedyAllocation(engine=engine)
                rule.trace(game, costs)
                started = time.perf_counter()
                spread = rule.critical_bids(game, costs)
                took.append(time.perf_counter() - started)
                same = same and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(spread, lazy_bids, strict=True))
        finally:
            engine.shutdown()
        print(f"critical bids on {args.workers} loky workers: {took[0]:.2f} s with the workers starting, "
              f"{took[1]:.2f} s warm (the game shipped each time, {fast:.2f} s in this process); "
              f"{'IDENTICAL' if same else 'DIFFERENT'} to this process's")

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
