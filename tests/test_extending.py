"""Users bring their own payment rule and buyer (docs/extending.md), and they work like the
built-in ones: from a scenario, on every engine, through entry points -- while a scenario
file alone can never make dataprice import code.

Plugin registration changes process-wide registries, so every run here is a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
SCENARIO = EXAMPLES / "quality_power.yaml"
PLUGINS = ["--plugin", "my_market.rules", "--plugin", "my_market.buyers"]


def _dataprice(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES)])}
    return subprocess.run([sys.executable, "-m", "dataprice.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_the_code_on_the_page_is_the_code_that_runs():
    page = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    for name in ("rules.py", "buyers.py"):
        assert (EXAMPLES / "my_market" / name).read_text() in blocks, f"docs/extending.md shows another {name}"
        lines = len((EXAMPLES / "my_market" / name).read_text().splitlines())
        assert f"({lines} lines)" in page


def test_a_custom_rule_and_buyer_run_from_a_scenario(tmp_path):
    result = _dataprice(*PLUGINS, "run", str(SCENARIO), "-q", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    sellers = pd.read_csv(tmp_path / "r" / "sellers.csv").set_index("seller")
    # the figures quoted in docs/extending.md
    assert sellers.loc["seller_3", "payment[shapley]"] == pytest.approx(3.06, abs=0.005)
    assert sellers.loc["seller_3", "payment[shapley_floor]"] == pytest.approx(4.50, abs=1e-9)
    assert sellers.loc["seller_3", "payment[myerson]"] == pytest.approx(4.62, abs=0.005)
    mechanisms = pd.read_csv(tmp_path / "r" / "mechanisms.csv").set_index("rule")
    assert mechanisms.loc["shapley", "ir_violations"] == 1 and mechanisms.loc["shapley_floor", "ir_violations"] == 0
    assert mechanisms.loc["shapley_floor", "sellers_gaining"] == 3
    assert mechanisms.loc["shapley_floor", "max_misreport_gain"] == pytest.approx(2.57, abs=0.005)
    assert mechanisms.loc["myerson", "max_misreport_gain"] == 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert "a buyer whose value is a power of the total quality it buys" in report
    assert "never less than its report" in report
    rebuilt = _dataprice(*PLUGINS, "report", str(tmp_path / "r"), "--out", str(tmp_path / "again"))
    assert rebuilt.returncode == 0, rebuilt.stderr


def test_plugins_reach_engine_workers(tmp_path):
    """Two replicates on two loky workers: the workers import the plugins named on the
    command line and give the same tables as one process."""
    for engine in ("serial", "loky"):
        result = _dataprice(*PLUGINS, "run", str(SCENARIO), "-q", "--replicates", "2", "--engine", engine,
                            "--workers", "2", "--out", str(tmp_path / engine))
        assert result.returncode == 0, result.stderr
    for table in ("sellers.csv", "mechanisms.csv", "values.csv", "outcomes.csv"):
        assert (tmp_path / "serial" / table).read_text() == (tmp_path / "loky" / table).read_text(), table


def test_an_installed_package_registers_through_entry_points(tmp_path):
    """The entry-point groups load when a scenario is read (a real EntryPoint object)."""
    code = f"""
import importlib.metadata as md
points = [md.EntryPoint("rules", "my_market.rules", "dataprice.rules"),
          md.EntryPoint("buyers", "my_market.buyers", "dataprice.buyers")]
md.entry_points = lambda group=None, **kw: [p for p in points if p.group == group]
from dataprice.scenario import load_scenario
scenario = load_scenario({str(SCENARIO)!r})
print(scenario.buyer.task, scenario.market.payment_rules)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "quality_power ['shapley', 'shapley_floor', 'myerson']" in result.stdout


def test_a_scenario_file_alone_imports_nothing(tmp_path):
    """Without the plugin, the scenario is refused in one line; a scenario cannot name code."""
    result = _dataprice("validate", str(SCENARIO))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines  # the unknown task, and the unknown rule
    assert "buyer.task: unknown value 'quality_power'" in lines[0]
    assert "unknown payment rule 'shapley_floor'" in lines[1]
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(SCENARIO.read_text() + "plugins: [my_market.rules]\n")
    result = _dataprice("validate", str(hostile))
    assert result.returncode == 2 and "unknown field 'plugins'" in result.stderr


def test_a_bad_plugin_is_one_line():
    result = _dataprice("--plugin", "no_such_module_xyz", "validate", str(SCENARIO))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --plugin no_such_module_xyz: cannot import it (ModuleNotFoundError: No module named 'no_such_module_xyz')"
    ]
