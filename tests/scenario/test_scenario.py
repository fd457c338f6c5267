"""Scenario validation and the CLI's handling of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataprice.cli import main
from dataprice.errors import ScenarioError
from dataprice.scenario import load_scenario, parse_scenario

SCENARIOS = sorted(Path(__file__).resolve().parents[2].joinpath("scenarios").glob("*.yaml"))

GOOD = {
    "name": "t",
    "sellers": {"count": 3, "costs": [0.1, 0.2, 0.3]},
    "buyer": {"task": "single_winner", "values": [1.0, 2.0, 3.0]},
}


def _problems(data) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"sellers": {"count": "three"}}, "sellers.count: Input should be a valid integer"),
        ({"sellers": {"count": 0}}, "sellers.count: Input should be greater than or equal to 1 (got 0)"),
        ({"sellers": {"count": 3, "costs": [0.1, -0.2, 0.3]}}, "sellers.costs[1]: Input should be greater than or equal to 0 (got -0.2)"),
        ({"sellers": {"count": 3, "costs": [0.1, 0.2]}}, "sellers.costs: 2 costs for 3 sellers"),
        ({"valuation": [{"method": "magic"}]}, "valuation[0].method: unknown value 'magic'; allowed: 'loo', 'shapley', 'exact_shapley'"),
        ({"market": {"payment_rules": ["vickrey"]}}, "market.payment_rules[0]: unknown payment rule 'vickrey'; choose one of 'loo', 'shapley', 'myerson', 'vcg', 'pay_as_bid'"),
        ({"buyer": {"task": "oracle"}}, "buyer.task: unknown value 'oracle'; allowed: 'classifier', 'mean_estimation'"),
        ({"sellerz": {}}, "unknown field 'sellerz'; allowed fields:"),
        ({"valuation": [{"method": "knn_shapley"}]}, "valuation[0].method: 'knn_shapley' needs the buyer's training points and labels (KNN-Shapley's closed form), which buyer.task 'classifier' can give; buyer.task 'single_winner'"),
        ({"engine": {"kind": "spark"}}, "engine.kind: Input should be 'serial', 'loky', 'dask' or 'ray' (got 'spark')"),
    ],
)
def test_bad_fields_are_named_with_what_is_allowed(patch, expected):
    message = _problems({**GOOD, **patch})
    assert expected in message
    for line in message.splitlines():
        assert line.strip(), "no blank lines"


def test_a_value_of_no_allowed_form_is_one_line_naming_every_form():
    message = _problems({**GOOD, "sellers": {"count": 3, "costs": "cheap"}})
    assert message.splitlines() == [
        "sellers.costs: 'cheap' is none of the forms allowed: a valid number; a valid list; "
        "a valid dictionary or instance of CostDistribution; a valid dictionary"
    ]
    # a number of the right type but a wrong value says what is wrong with it, once
    assert _problems({**GOOD, "sellers": {"count": 3, "costs": -1}}).splitlines() == [
        "sellers.costs: Input should be greater than or equal to 0 (got -1)"
    ]


def test_one_number_is_every_sellers_cost():
    scenario = parse_scenario({**GOOD, "sellers": {"count": 3, "costs": 0.25}})
    assert scenario.sellers.draw_costs(0).tolist() == [0.25, 0.25, 0.25]
    assert scenario.sellers.draw_costs(0, ["x", "y"]).tolist() == [0.25, 0.25]


def test_every_problem_is_reported_at_once():
    message = _problems({**GOOD, "sellers": {"count": 0}, "valuation": [{"method": "magic"}]})
    assert len(message.splitlines()) == 2


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsellers: [count: 3\n")
    with pytest.raises(ScenarioError, match="not valid YAML: line"):
        load_scenario(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ScenarioError, match="empty"):
        load_scenario(empty)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_validate(path):
    assert main(["validate", str(path)]) == 0


def test_cli_bad_scenario_exits_2_and_writes_nothing(tmp_path, capsys):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(yaml.safe_dump({**GOOD, "sellers": {"count": 3, "costs": [0.1, -1, 0.3]}}))
    out = tmp_path / "report"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "sellers.costs[1]" in err[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [scenario]


def test_cli_validate_missing_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "scenario file not found" in capsys.readouterr().err
