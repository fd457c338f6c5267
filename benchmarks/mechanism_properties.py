"""Mechanism guarantees by brute force: IR violations and profitable misreports per rule.

Runs the instance generator and the brute-force check of ``tests/market/test_mechanism_properties.py``
(``tests/mechanism_cases.py``): random markets of 1..6 sellers over tabulated value
functions (additive, monotone, submodular coverage, supermodular complements, arbitrary),
settled with ``dataprice.market.settle`` under exact and greedy allocation, with and without
a reserve price. Per (allocation, rule): instances, instances where a truthful seller loses
(IR violations), instances where a seller gains by misreporting (others truthful; the search
covers every report where the seller's selection changes), and the largest loss and gain.
The "theory" column says whether each kind of violation can occur ("none": must be 0).
Also the per-query document market (Myerson = VCG there).

    python benchmarks/mechanism_properties.py [--instances 10000] [--seed 20240611] [--workers 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.mechanism_cases import (
    PER_QUERY_THEORY,
    THEORY,
    markdown_table,
    run_per_query_suite,
    run_suite,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--per-query", type=int, default=2_000, help="per-query market instances (0: skip)"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    results = run_suite(args.seed, args.instances, workers=args.workers)
    elapsed = time.perf_counter() - started
    print(
        f"subset market: {args.instances:,} instances, seed {args.seed}, "
        f"{results.reports_tried:,} (allocation, seller, report) triples each settled under every rule, "
        f"{elapsed:.0f} s\n"
    )
    print(markdown_table(results, THEORY))

    contradicted = []
    print(
        "\nsmallest instance per violation where theory says none, and for VCG on greedy allocation:"
    )
    for (allocation, rule), t in results.tallies.items():
        ir, ic = THEORY[(allocation, rule)]
        for kind, expected, witness in (("IR", ir, t.ir_witness), ("IC", ic, t.ic_witness)):
            if witness is None:
                continue
            if expected == "none":
                contradicted.append((allocation, rule, kind))
            if expected == "none" or (allocation == "greedy" and rule == "vcg"):
                print(f"- {allocation} / {rule} / {kind}: {witness.describe()}")
    print(f"\nthreshold-model mismatches (selection or Myerson payment): {len(results.mismatches)}")
    for line in results.mismatches[:5]:
        print(f"  {line}")

    if args.per_query:
        started = time.perf_counter()
        per_query = run_per_query_suite(args.seed, args.per_query)
        print(
            f"\nper-query document market: {args.per_query:,} instances (1-4 queries, 2-5 owners), "
            f"{time.perf_counter() - started:.0f} s\n"
        )
        print(markdown_table(per_query))
        contradicted += [
            ("per-query", rule, kind)
            for rule, (ir, ic) in PER_QUERY_THEORY.items()
            for kind, expected, count in (
                ("IR", ir, per_query.tallies[("per-query", rule)].ir_instances),
                ("IC", ic, per_query.tallies[("per-query", rule)].ic_instances),
            )
            if expected == "none" and count
        ]

    if contradicted or results.mismatches:
        print(f"\ntheory contradicted: {contradicted}")
        sys.exit(1)


if __name__ == "__main__":
    main()
