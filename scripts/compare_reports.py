"""Check that two report directories hold the same numbers: every table (sellers,
mechanisms, values, outcomes, dynamics, transactions, comparison, per_seed, aggregators)
equal column by column, numbers to a tolerance (default 1e-12, absolute or relative), text
exactly. For refactors that must not change any figure a user sees.

    python scripts/compare_reports.py BEFORE_DIR AFTER_DIR [--tol 1e-12]
    python scripts/compare_reports.py --tree BEFORE_ROOT AFTER_ROOT   # every report below

Exit status 1 if anything differs; each difference is printed on one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = ("sellers", "mechanisms", "values", "outcomes", "dynamics", "transactions", "comparison", "per_seed",
          "aggregators")


def compare(a: Path, b: Path, tol: float) -> list[str]:
    problems = []
    for name in TABLES:
        pa, pb = a / f"{name}.parquet", b / f"{name}.parquet"
        if not pa.exists() and not pb.exists():
            continue
        if pa.exists() != pb.exists():
            problems.append(f"{name}: only in {'before' if pa.exists() else 'after'}")
            continue
        ta, tb = pd.read_parquet(pa), pd.read_parquet(pb)
        if list(ta.columns) != list(tb.columns):
            problems.append(f"{name}: columns differ: {sorted(set(ta.columns) ^ set(tb.columns))}")
            continue
        if len(ta) != len(tb):
            problems.append(f"{name}: {len(ta)} rows before, {len(tb)} after")
            continue
        for column in ta.columns:
            x, y = ta[column], tb[column]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
                with np.errstate(invalid="ignore"):
                    same = (np.isnan(xv) & np.isnan(yv)) | (xv == yv) | (
                        np.abs(xv - yv) <= tol * np.maximum(1.0, np.maximum(np.abs(xv), np.abs(yv))))
                if not same.all():
                    i = int(np.flatnonzero(~same)[0])
                    problems.append(f"{name}.{column}: row {i}: {xv[i]!r} -> {yv[i]!r} "
                                    f"({int((~same).sum())} rows differ)")
            elif not x.astype(str).equals(y.astype(str)):
                i = int(np.flatnonzero(x.astype(str).to_numpy() != y.astype(str).to_numpy())[0])
                problems.append(f"{name}.{column}: row {i}: {x.iloc[i]!r} -> {y.iloc[i]!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tol", type=float, default=1e-12)
    parser.add_argument("--tree", action="store_true", help="compare every report directory below the two roots")
    args = parser.parse_args()
    pairs = ([(d, args.after / d.relative_to(args.before)) for d in sorted(args.before.rglob("mechanisms.parquet"))]
             if args.tree else [(args.before / "mechanisms.parquet", args.after / "mechanisms.parquet")])
    failed = 0
    for before, after in pairs:
        name = before.parent.relative_to(args.before) if args.tree else before.parent
        if not after.exists():
            print(f"{name}: missing after")
            failed += 1
            continue
        problems = compare(before.parent, after.parent, args.tol)
        print(f"{name}: {'same' if not problems else f'{len(problems)} difference(s)'}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
