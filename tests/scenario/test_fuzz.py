"""Hostile scenario files: every mutant of a shipped scenario is accepted or rejected with
short one-line errors -- never a traceback, never a hang (see :mod:`tests.fuzzing`).

The fast slice runs in ``make test``; the slow tests run thousands of cases, and run the
accepted mutants of the cheap scenarios at small size.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from ..fuzzing import cases, check_case

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
SRC = ROOT / "src"


def _fuzz(tmp_path: Path, n: int, seed: int, files=SCENARIOS, run=None, limit: float = 30.0) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    failures = []
    for case, source, data in cases(files, n, seed):
        path = tmp_path / f"case_{case}.yaml"
        path.write_bytes(data)
        outcome = check_case(path, case=case, source=source.name, limit=limit, run=run)
        counts[outcome.status] += 1
        if outcome.status in {"crashed", "hung"}:
            failures.append(f"case {case} ({source.name}, kept at {path}): {outcome.status}\n{outcome.detail}")
        else:
            path.unlink()
    assert not failures, "\n\n".join(failures[:3])
    return counts


def test_mutated_scenarios_are_accepted_or_rejected_cleanly(tmp_path):
    counts = _fuzz(tmp_path, 400, seed=20261202)
    assert counts["rejected"] > counts["accepted"] > 0, counts  # the mutator does reach both sides


def test_validate_checks_every_file_and_reports_each(tmp_path):
    """A binary file, a file with a bad field and a missing file do not stop the others."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios" / "single_winner.yaml").read_text().replace("count: 10", "count: true"))
    files = [binary, ROOT / "scenarios" / "single_winner.yaml", bad, tmp_path / "missing.yaml",
             ROOT / "scenarios" / "quickstart.yaml"]
    result = subprocess.run([sys.executable, "-m", "dataprice.cli", "validate", *map(str, files)],
                            capture_output=True, text=True, env={"PYTHONPATH": str(SRC), "PATH": ""})
    assert result.returncode == 2
    assert result.stdout.count(": ok") == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 3, errors
    assert "binary.yaml" in errors[0] and "UTF-8" in errors[0]
    assert "sellers.count" in errors[1] and "True" in errors[1]
    assert "missing.yaml" in errors[2] and "not found" in errors[2]


@pytest.mark.slow
def test_five_thousand_mutated_scenarios(tmp_path):
    counts = _fuzz(tmp_path, 5000, seed=5000)
    print("5,000 mutants:", dict(counts))


@pytest.mark.slow
def test_accepted_mutants_run_at_small_size(tmp_path):
    """Accepted mutants of the cheap scenarios also run (``--small``) without a traceback:
    a value the schema lets through must not crash the run later."""
    from dataprice.experiment import run_scenario
    from dataprice.scenario import small_scenario

    cheap = [ROOT / "scenarios" / f"{name}.yaml"
             for name in ("single_winner", "mean_estimation", "reserve_price", "reseller", "learning_sellers")]

    def run(scenario):
        run_scenario(small_scenario(scenario), progress=False)

    counts = _fuzz(tmp_path, 120, seed=77, files=cheap, run=run, limit=300.0)
    print("run at small size:", dict(counts))
    assert counts["accepted"] > 0
