"""A run imports the heavy libraries only when it uses them.

Each run goes through the command line in a fresh interpreter (as a user starts it) and
reports which of torch, transformers, faiss, sentence_transformers and scipy.stats it
imported: a query-log market embeds nothing and loads no model; a replayed-score RAG market
whose embeddings are cached loads no model either (faiss, which retrieves, is its only one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "scipy.stats")

PROBE = f"""
import json, sys
from dataprice.cli import main
status = main(["run", sys.argv[1], "-q", "--out", sys.argv[2]])
print(json.dumps({{"status": status, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def imported(scenario: Path, out: Path, cache: Path) -> list[str]:
    env = {**os.environ, "DATAPRICE_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(scenario), str(out)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 0
    return result["heavy"]


def test_a_query_log_market_imports_no_model_library(tmp_path):
    assert imported(SCENARIOS / "query_log_market.yaml", tmp_path / "out", tmp_path / "cache") == []


def test_a_cached_replay_market_loads_no_model(tmp_path):
    folder = tmp_path / "market"
    folder.mkdir()
    (folder / "documents.csv").write_text(
        "doc_id,owner,text\nd1,a,Cholera is coded A00.0.\nd2,b,Hypertension is coded I10.\nd3,c,Asthma: J45.909.\n")
    (folder / "questions.csv").write_text("question_id,question,answer\nq1,Code for cholera?,A00.0\n"
                                          "q2,Code for hypertension?,I10\n")
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,d1,0.9\nq2,d2,0.8\nq2,d3,0.1\n")
    scenario = folder / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "replay", "seed": 1, "sellers": {"count": 3, "costs": 0.1},
        "buyer": {"task": "rag", "top_k": 1, "utility": "replay", "replay_file": "replay.csv",
                  "corpus": {"source": "files", "documents": "documents.csv", "questions": "questions.csv"}},
        "valuation": [{"method": "exact_shapley"}], "market": {"payment_rules": ["shapley", "vcg"]},
    }))
    first = imported(scenario, tmp_path / "first", tmp_path / "cache")
    assert "torch" in first  # the first run embeds the texts with MiniLM
    assert imported(scenario, tmp_path / "second", tmp_path / "cache") == ["faiss"]  # embeddings and chunks cached
