"""Fuzz the scenario loader: N seeded mutants of the shipped scenarios, each loaded like
``dataprice validate``; prints how many were accepted, cleanly rejected, crashed or hung,
and the first crashes with their tracebacks.

    python scripts/fuzz_scenarios.py --cases 5000 --seed 0
    python scripts/fuzz_scenarios.py --cases 100 --run-small   # also run accepted mutants --small

Exit status 1 if anything crashed or hung.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzing import cases, check_case  # noqa: E402

CHEAP = ["single_winner", "quickstart", "mean_estimation", "reserve_price", "reseller", "unlearning",
         "learning_sellers", "large_market", "federated_fedrandom"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds before a case counts as hung")
    parser.add_argument("--run-small", action="store_true",
                        help="run accepted mutants at --small size (cheap scenarios only)")
    parser.add_argument("--show", type=int, default=5, help="crashes to print")
    args = parser.parse_args()

    names = CHEAP if args.run_small else sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    files = [ROOT / "scenarios" / f"{name}.yaml" for name in names]
    run = None
    if args.run_small:
        from dataprice.experiment import run_scenario
        from dataprice.scenario import small_scenario

        def run(scenario):
            run_scenario(small_scenario(scenario), progress=False)

    counts: collections.Counter = collections.Counter()
    bad = []
    slowest = (0.0, None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for case, source, data in cases(files, args.cases, args.seed):
            path = Path(tmp) / f"case_{case}.yaml"
            path.write_bytes(data)
            outcome = check_case(path, case=case, source=source.name, limit=args.limit, run=run)
            counts[outcome.status] += 1
            if outcome.seconds > slowest[0]:
                slowest = (outcome.seconds, outcome)
            if outcome.status in {"crashed", "hung"}:
                bad.append(outcome)
                (Path(tmp) / f"case_{case}.yaml").rename(Path(tmp) / f"bad_{case}.yaml")
            path.unlink(missing_ok=True)
    total = time.monotonic() - started
    print(f"{args.cases} cases (seed {args.seed}) in {total:.1f} s: " + ", ".join(
        f"{counts[s]} {s}" for s in ("accepted", "rejected", "crashed", "hung")))
    print(f"slowest case: {slowest[0]:.2f} s ({slowest[1].source if slowest[1] else '-'})")
    for outcome in bad[: args.show]:
        print(f"\n--- case {outcome.case} from {outcome.source}: {outcome.status}\n{outcome.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
