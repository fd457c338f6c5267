"""``benchmarks/fedrandom_sweep.py``: one configuration's measurements (tiny sizes here; the
sweep's figures are in the README)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_one_configuration_measures_every_aggregator_against_the_data_size_baseline():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        sweep = importlib.import_module("fedrandom_sweep")
    finally:
        sys.path.remove(str(BENCHMARKS))
    result = sweep.one_configuration("wine", "sizes 1:2:4", 3, 3, 4)
    assert result["sizes"][0] < result["sizes"][2]  # sizes 1:2:4
    rows = result["aggregators"]
    assert set(rows) == {"fedavg", "fedavgm", "fedadam", "fedprox", "fedrandom"}
    for row in rows.values():
        # for shares in the simplex, L-inf <= L2 <= sqrt(n) L-inf
        assert row["linf_to_data_size"] <= row["l2_to_data_size"] + 1e-12
        assert row["l2_to_data_size"] <= np.sqrt(3) * row["linf_to_data_size"] + 1e-12
        assert row["instability_across_seeds"] >= 0 and 0 < row["accuracy"] <= 1
    assert result["instability_across_strategies"] > 0
    np.testing.assert_allclose(sweep.normalised(np.array([2.0, -1.0, 1.0])), [0.5, -0.25, 0.25])
