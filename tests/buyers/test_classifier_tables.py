"""The classifier and federated buyers on a user's own table (CSV or Parquet), through the
same public path a user takes: a scenario YAML in ``tmp_path``, run with ``dataprice.cli``
or ``dataprice.api``.

Good files: deterministic values for a seed, sellers named by the file's owners,
categorical features, CSV and Parquet giving the same numbers, a scikit-learn estimator
from the allow-list, the federated buyer. Bad files and settings: one line naming the file
(or scenario field) and the column, exit status 2, no report directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import dataprice as dp
from dataprice.cli import main

OWNERS = ["acme", "globex", "initech"]


def make_table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """A small two-class table: owners, two numeric features, one categorical feature that
    carries signal, a label."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + 1.5 * (color == "red") + 0.3 * rng.normal(size=n) > 0.5, "yes", "no")
    owner = [OWNERS[i % 3] for i in range(n)]
    owner[0], owner[1], owner[2] = "initech", "acme", "globex"  # first appearance: initech, acme, globex
    return pd.DataFrame({"owner": owner, "x1": x1, "x2": x2, "color": color, "label": label})


def write_scenario(tmp_path: Path, buyer: dict, *, count: int = 3, name: str = "tab", valuation=None,
                   seed: int = 3, market: dict | None = None) -> Path:
    data = {
        "name": name, "seed": seed, "sellers": {"count": count, "costs": {"distribution": "uniform", "high": 2.0}},
        "buyer": buyer, "valuation": valuation or [{"method": "exact_shapley"}],
        "market": market or {"payment_rules": ["shapley", "vcg"]}, "audit": {"grid_points": 3},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def csv_file(tmp_path) -> Path:
    path = tmp_path / "data.csv"
    make_table().to_csv(path, index=False)
    return path


def run_cli(scenario: Path, out: Path) -> int:
    return main(["run", str(scenario), "--out", str(out), "--quiet"])


def values(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "sellers.csv")


# --- good files ---------------------------------------------------------------------------------


def test_a_csv_table_runs_with_owner_names_from_the_file_and_is_deterministic(tmp_path, csv_file):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}})
    assert main(["validate", str(scenario)]) == 0
    assert run_cli(scenario, tmp_path / "a") == 0 and run_cli(scenario, tmp_path / "b") == 0
    a, b = values(tmp_path / "a"), values(tmp_path / "b")
    assert a["seller"].tolist() == ["initech", "acme", "globex"]
    pd.testing.assert_frame_equal(a, b)
    # the held-out split takes 30% of the rows; the owners keep the rest
    assert a["data_points"].sum() == 90 - int(np.ceil(0.3 * 90))
    assert a["value[exact_shapley]"].abs().sum() > 0


def test_another_seed_draws_another_split(tmp_path, csv_file):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}})
    assert main(["run", str(scenario), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(scenario), "--out", str(tmp_path / "b"), "--quiet", "--seed", "11"]) == 0
    assert not values(tmp_path / "a")["data_points"].equals(values(tmp_path / "b")["data_points"])


def test_csv_and_parquet_give_the_same_numbers_and_categorical_columns_are_encoded(tmp_path):
    table = make_table()
    table.to_csv(tmp_path / "data.csv", index=False)
    table.to_parquet(tmp_path / "data.parquet", index=False)
    for suffix in ("csv", "parquet"):
        scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": f"data.{suffix}"}}, name=suffix)
        assert run_cli(scenario, tmp_path / suffix) == 0
    pd.testing.assert_frame_equal(values(tmp_path / "csv"), values(tmp_path / "parquet"))
    # the categorical column carries the signal: without it the buyer's value falls
    no_color = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv", "features": ["x1", "x2"]}},
                              name="no_color")
    assert run_cli(no_color, tmp_path / "no_color") == 0
    # Shapley values sum to v(N) - v(empty): the value of all the data to the buyer
    with_color = values(tmp_path / "csv")["value[exact_shapley]"].sum()
    assert with_color > values(tmp_path / "no_color")["value[exact_shapley]"].sum()


def test_ordinal_encoding_and_a_validation_file(tmp_path):
    table = make_table(120, seed=1)
    table.iloc[:80].to_csv(tmp_path / "train.csv", index=False)
    table.iloc[80:].drop(columns="owner").to_csv(tmp_path / "val.csv", index=False)
    buyer = {"task": "classifier", "table": {"file": "train.csv", "validation_file": "val.csv", "encoding": "ordinal"}}
    assert run_cli(write_scenario(tmp_path, buyer), tmp_path / "out") == 0
    assert values(tmp_path / "out")["data_points"].sum() == 80  # every training row is sold


def test_a_scikit_learn_estimator_by_name_and_what_methods_it_allows(tmp_path, csv_file):
    buyer = {"task": "classifier", "table": {"file": "data.csv"},
             "estimator": {"name": "random_forest", "params": {"n_estimators": 10, "max_depth": 3}}}
    scenario = write_scenario(tmp_path, buyer, valuation=[{"method": "exact_shapley"}, {"method": "knn_shapley"}])
    assert run_cli(scenario, tmp_path / "a") == 0 and run_cli(scenario, tmp_path / "b") == 0
    pd.testing.assert_frame_equal(values(tmp_path / "a"), values(tmp_path / "b"))  # random_state from the seed
    unlearning = write_scenario(tmp_path, buyer, valuation=[{"method": "unlearning_shapley"}], name="unlearn")
    with pytest.raises(Exception, match="unlearning_shapley.*does not"):
        dp.load(unlearning)


def test_the_federated_buyer_reads_the_same_table(tmp_path, csv_file):
    buyer = {"task": "federated", "table": {"file": "data.csv"}, "aggregator": "fedavg", "rounds": 3}
    scenario = write_scenario(tmp_path, buyer)
    assert run_cli(scenario, tmp_path / "a") == 0 and run_cli(scenario, tmp_path / "b") == 0
    a = values(tmp_path / "a")
    assert a["seller"].tolist() == ["initech", "acme", "globex"]
    pd.testing.assert_frame_equal(a, values(tmp_path / "b"))


# --- bad files and settings ------------------------------------------------------------------------


def fails_cleanly(capsys, scenario: Path, out: Path, *parts: str) -> str:
    """``dataprice run`` and ``dataprice validate`` exit 2 with one error line containing
    ``parts``, and nothing is written."""
    capsys.readouterr()
    assert run_cli(scenario, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for part in parts:
        assert part in err[0], err[0]
    assert not out.exists() and not out.with_name(f".{out.name}.checkpoints").exists()
    assert main(["validate", str(scenario)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == err
    return err[0]


def _bad_table(tmp_path: Path, content: bytes | pd.DataFrame, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content.to_csv(path, index=False)
    return path


BAD_TABLES = {
    "missing owner column": (make_table().drop(columns="owner"), ["bad.csv", "'owner'", "missing"]),
    "missing value": (make_table().assign(x2=lambda t: t.x2.where(t.index != 5)), ["bad.csv", "line 7", "'x2'"]),
    "one class": (make_table().assign(label="yes"), ["bad.csv", "'label'", "two classes"]),
    "empty": (b"", ["bad.csv", "empty"]),
    "header only": (b"owner,x1,label\n", ["bad.csv", "no rows"]),
    "not UTF-8": (b"owner,x1,label\nacme,1.0,caf\xe9\nb,2.0,x\n", ["bad.csv", "not UTF-8", "line 2"]),
}


@pytest.mark.parametrize("case", list(BAD_TABLES), ids=lambda c: c.replace(" ", "_"))
def test_a_bad_table_is_one_line_naming_file_and_column(tmp_path, capsys, case):
    content, parts = BAD_TABLES[case]
    _bad_table(tmp_path, content)
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "bad.csv"}})
    fails_cleanly(capsys, scenario, tmp_path / "out", *parts)


def test_owner_count_mismatch_says_what_to_set(tmp_path, capsys, csv_file):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}}, count=4)
    fails_cleanly(capsys, scenario, tmp_path / "out", "data.csv", "'owner'", "set sellers.count to 3")


def test_a_validation_file_with_other_columns(tmp_path, capsys):
    table = make_table()
    table.to_csv(tmp_path / "train.csv", index=False)
    table.rename(columns={"x2": "x3"}).to_csv(tmp_path / "val.csv", index=False)
    buyer = {"task": "classifier", "table": {"file": "train.csv", "validation_file": "val.csv"}}
    fails_cleanly(capsys, write_scenario(tmp_path, buyer), tmp_path / "out", "val.csv", "'x2'", "missing")
    table.assign(extra=1).to_csv(tmp_path / "val.csv", index=False)
    fails_cleanly(capsys, write_scenario(tmp_path, buyer), tmp_path / "out", "val.csv", "'extra'", "not in the training")
    table.assign(x1="high").to_csv(tmp_path / "val.csv", index=False)
    fails_cleanly(capsys, write_scenario(tmp_path, buyer), tmp_path / "out", "val.csv", "'x1'", "numeric")
    table.assign(label="maybe").to_csv(tmp_path / "val.csv", index=False)
    fails_cleanly(capsys, write_scenario(tmp_path, buyer), tmp_path / "out", "val.csv", "'label'", "does not occur")


@pytest.mark.parametrize(("estimator", "parts"), [
    ({"name": "xgboost_magic"}, ["buyer.estimator", "unknown estimator 'xgboost_magic'", "random_forest"]),
    ({"name": "os.system"}, ["buyer.estimator", "unknown estimator"]),
    ({"name": "random_forest", "params": {"n_jobs": 4}}, ["buyer.estimator", "unknown parameter 'n_jobs'", "n_estimators"]),
    ({"name": "random_forest", "params": {"n_estimators": "many"}}, ["buyer.estimator", "'n_estimators'", "integer"]),
    ({"name": "knn", "params": {"n_neighbors": 0}}, ["buyer.estimator", "'n_neighbors'", "greater than or equal to 1"]),
], ids=["unknown", "import_path", "unknown_param", "wrong_type", "out_of_bounds"])
def test_a_bad_estimator_is_one_line_naming_the_field(tmp_path, capsys, csv_file, estimator, parts):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}, "estimator": estimator})
    message = fails_cleanly(capsys, scenario, tmp_path / "out", *parts)
    assert "tab.yaml" in message


def test_bundled_data_settings_next_to_a_table_are_refused(tmp_path, capsys, csv_file):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}, "dataset": "wine"})
    fails_cleanly(capsys, scenario, tmp_path / "out", "remove dataset")


def test_one_and_two_workers_give_the_same_numbers_and_label_noise_applies(tmp_path, csv_file):
    from ..conftest import run_serial_and_parallel

    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}})
    data = yaml.safe_load(scenario.read_text())
    data["replicates"] = 2
    data["sellers"]["label_noise"] = {"sellers": [2], "fraction": 1.0}
    scenario.write_text(yaml.safe_dump(data))
    serial, parallel = run_serial_and_parallel(dp.load(scenario))
    a, b = serial.sellers_table(), parallel.sellers_table()
    pd.testing.assert_frame_equal(a, b)
    assert a.set_index("seller").loc["globex", "noisy_label_fraction"] == 1.0  # seller 2: third owner in the file


@pytest.mark.parametrize(("sellers", "part"), [
    ({"partition": {"kind": "dirichlet"}}, "sellers.partition: the table's owner column"),
    ({"names": ["x", "y", "z"]}, "sellers.names: the sellers are the owners"),
])
def test_seller_settings_the_table_decides_are_refused(tmp_path, capsys, csv_file, sellers, part):
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "data.csv"}})
    data = yaml.safe_load(scenario.read_text())
    data["sellers"].update(sellers)
    scenario.write_text(yaml.safe_dump(data))
    fails_cleanly(capsys, scenario, tmp_path / "out", part)


def test_the_default_shapley_and_the_proxy_control_variate_on_a_users_table(tmp_path):
    """``shapley`` and ``stratified_shapley`` with the buyer's soft-KNN proxy, from a user's
    CSV through the CLI: below the table's 2^6 coalitions they sample, close to exact
    Shapley, and twice the same."""
    table = make_table(180, seed=4).assign(owner=[f"owner_{i % 6}" for i in range(180)])
    table.to_csv(tmp_path / "six.csv", index=False)
    valuation = [{"method": "exact_shapley"}, {"method": "shapley", "max_evaluations": 48},
                 {"method": "stratified_shapley", "max_evaluations": 48, "proxy": True}]
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "six.csv"}}, count=6,
                              valuation=valuation)
    assert run_cli(scenario, tmp_path / "a") == 0 and run_cli(scenario, tmp_path / "b") == 0
    a = values(tmp_path / "a")
    pd.testing.assert_frame_equal(a, values(tmp_path / "b"))
    exact = a["value[exact_shapley]"].to_numpy()
    for key in ("shapley", "stratified_shapley"):
        estimate = a[f"value[{key}]"].to_numpy()
        assert np.linalg.norm(estimate - exact) < 0.35 * np.linalg.norm(exact), (key, estimate, exact)


def five_owners_last_flipped(path: Path) -> None:
    """240 rows of five owners; every label of ``owner_4`` replaced by another class."""
    table = make_table(240, seed=5).assign(owner=[f"owner_{i % 5}" for i in range(240)])
    flipped = table["owner"] == "owner_4"
    labels = sorted(table["label"].unique())
    table.loc[flipped, "label"] = table.loc[flipped, "label"].map(dict(zip(labels, labels[1:] + labels[:1], strict=True)))
    table.to_csv(path, index=False)


def test_inrun_shapley_on_a_users_table_from_one_training_run(tmp_path):
    """``inrun_shapley`` from a user's CSV through the CLI: the owner whose labels are all
    flipped gets the lowest value, as under exact retraining Shapley; the run's seed and
    Taylor remainder are recorded; the same seed gives the same numbers."""
    import json

    five_owners_last_flipped(tmp_path / "five.csv")
    valuation = [{"method": "exact_shapley"}, {"method": "inrun_shapley", "epochs": 4, "batch_size": 16}]
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "five.csv"}}, count=5,
                              valuation=valuation)
    assert run_cli(scenario, tmp_path / "a") == 0 and run_cli(scenario, tmp_path / "b") == 0
    a = values(tmp_path / "a")
    pd.testing.assert_frame_equal(a, values(tmp_path / "b"))
    inrun = a["value[inrun_shapley]"].to_numpy()
    assert int(np.argmin(inrun)) == 4 and int(np.argmin(a["value[exact_shapley]"].to_numpy())) == 4
    recorded = json.loads((tmp_path / "a" / "valuations.json").read_text())
    text = json.dumps(recorded)
    assert "taylor_remainder" in text and "training_seed" in text


def test_gradient_similarity_screens_a_users_table_and_statements_do_not_quote_it_as_a_value(tmp_path):
    """``gradient_similarity`` from a user's CSV: the flipped owner scores lowest; each
    statement shows it as a screening score, outside the table of values."""
    five_owners_last_flipped(tmp_path / "five.csv")
    valuation = [{"method": "gradient_similarity", "epochs": 3}, {"method": "loo"}]
    scenario = write_scenario(tmp_path, {"task": "classifier", "table": {"file": "five.csv"}}, count=5,
                              valuation=valuation)
    assert run_cli(scenario, tmp_path / "a") == 0
    scores = values(tmp_path / "a")["value[gradient_similarity]"].to_numpy()
    assert int(np.argmin(scores)) == 4 and np.all(np.abs(scores) <= 1.0)
    report = (tmp_path / "a" / "report.md").read_text()
    statement = report.split("### Statement: owner_0")[1].split("### Statement:")[0]
    values_table, rest = statement.split("**Screening scores** (not a value and not a basis for payment")
    assert "| LOO |" in values_table and "gradient similarity" not in values_table
    assert rest.split("\n")[0].rstrip().endswith(f"gradient similarity {scores[0]:+.3f}.")


def test_every_rule_pays_on_inrun_values_of_a_users_table(tmp_path, capsys):
    """``market.value_basis: inrun_shapley``: the rules settle on the additive game of the
    in-run values, so LOO, Shapley, Myerson and VCG pay a selected seller its value, a seller
    is selected exactly when its value covers its report, and pay-as-bid pays the report. The
    coalition game is never tabulated (no retraining per coalition). A screening score or an
    unknown entry is refused in one line."""
    five_owners_last_flipped(tmp_path / "five.csv")
    rules = ["loo", "shapley", "myerson", "vcg", "pay_as_bid"]
    valuation = [{"method": "inrun_shapley", "epochs": 4, "batch_size": 16, "label": "inrun"},
                 {"method": "gradient_similarity", "epochs": 2}]
    buyer = {"task": "classifier", "table": {"file": "five.csv"}, "value_per_quality": 40.0}
    scenario = write_scenario(tmp_path, buyer, count=5, valuation=valuation,
                              market={"payment_rules": rules, "value_basis": "inrun"})
    assert run_cli(scenario, tmp_path / "a") == 0
    a = values(tmp_path / "a")
    phi, bids = a["value[inrun]"].to_numpy(), a["bid"].to_numpy()
    chosen = phi >= bids
    assert 0 < chosen.sum() < 5, (phi, bids)  # the flipped owner's negative value is never bought
    assert not chosen[4]
    for rule in rules:
        assert np.array_equal(a[f"selected[{rule}]"].to_numpy() > 0, chosen), rule
        expected = np.where(chosen, bids if rule == "pay_as_bid" else phi, 0.0)
        np.testing.assert_allclose(a[f"payment[{rule}]"].to_numpy(), expected, rtol=1e-9, atol=1e-12, err_msg=rule)
    report = (tmp_path / "a" / "report.md").read_text()
    assert "settled on the additive game of the inrun values" in report
    # per-example values: they add up to each seller's value, and each statement names its extremes
    examples = pd.read_csv(tmp_path / "a" / "examples.csv")
    sums = examples.groupby("seller")["value"].sum().reindex(a["seller"]).to_numpy()
    np.testing.assert_allclose(sums, phi, rtol=1e-9, atol=1e-12)
    mine = examples[examples["seller"] == "owner_4"]
    statement = report.split("### Statement: owner_4")[1].split("### Statement:")[0]
    assert f"**Your {len(mine)} examples under inrun** add up to" in statement
    assert f"Lowest: #{int(mine.loc[mine['value'].idxmin(), 'example'])} (" in statement

    for basis, part in (("gradient_similarity", "is a screening score"), ("nothing", "is not a valuation entry")):
        bad = write_scenario(tmp_path, buyer, count=5, valuation=valuation, name=f"bad_{basis}",
                             market={"payment_rules": rules, "value_basis": basis})
        capsys.readouterr()
        assert main(["validate", str(bad)]) != 0
        err = capsys.readouterr().err
        assert "market.value_basis" in err and part in err, err
