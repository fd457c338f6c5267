"""``benchmarks/real_scale.py``: the files it writes make a valid, meaningful market, and
its stages run (tiny sizes here; the measured sizes are in the README)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_make_a_market_and_every_stage_runs(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    scenario = bench.write_market(tmp_path / "market", 8, 120, 60, dim=16, evaluations=200)
    docs = pd.read_csv(tmp_path / "market" / "documents.csv")
    assert docs["owner"].nunique() == 8 and docs["price"].between(0.05, 0.5).all()
    vectors = np.load(tmp_path / "market" / "docs.npz")["vectors"]
    asked = np.load(tmp_path / "market" / "questions.npz")["vectors"]
    gold = docs.index[docs["doc_id"].isin(pd.read_csv(tmp_path / "market" / "questions.csv")["gold_doc_id"])]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    nearest = (asked @ vectors.T).argmax(axis=1)
    assert np.isin(nearest, gold).mean() > 0.8  # questions lie near their gold documents
    result = bench.measure(scenario)
    stages = [row["stage"] for row in result["stages"]]
    assert sum(s.startswith("settle all queries") for s in stages) == len(bench.RULES)
    assert any("per_1000" in row for row in result["stages"]) and stages[-1].startswith("report")
    assert run_cli(scenario, tmp_path / "report") == 0


@pytest.mark.slow
def test_small_run_is_labelled_a_smoke_test(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--small"], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(SCRIPT.parents[1] / "src"), "DATAPRICE_CACHE": str(tmp_path)})
    assert done.stdout.startswith("SMOKE TEST") and "`dataprice run` end to end" in done.stdout
