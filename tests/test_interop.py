"""dataprice.interop: shapiq games both ways, pyDVL results both ways (in pyDVL's own
environment), and tabulated games exported to NPZ or Parquet and imported back, with hostile
files refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataprice.errors import DataError, OutputError
from dataprice.interop.tables import export_game, import_game
from dataprice.valuation.game import TabulatedGame, masks_to_coalitions, tabulate
from dataprice.valuation.methods import ExactBanzhaf, ExactShapley
from dataprice.valuation.reference_games import (
    AdditiveGame,
    AirportGame,
    ApexGame,
    GloveGame,
    UnanimityGame,
)

ROOT = Path(__file__).resolve().parents[1]


def reference_games():
    rng = np.random.default_rng(0)
    return [AirportGame([1.0, 2.0, 4.0, 4.5]), GloveGame(2, 3), ApexGame(5), UnanimityGame(6, [1, 3, 4]),
            AdditiveGame(rng.normal(size=5), constant=2.5),
            TabulatedGame(rng.normal(size=2**6), [f"lab_{j}" for j in range(6)])]


# --- shapiq ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("game", reference_games(), ids=lambda g: type(g).__name__)
def test_shapiq_adapters_round_trip_exactly_and_shapiqs_exact_computer_agrees(game):
    pytest.importorskip("shapiq")
    from shapiq import ExactComputer

    from dataprice.interop.shapiq_games import from_shapiq, to_shapiq

    n = game.n_players
    coalitions = masks_to_coalitions(np.arange(2**n), n)
    theirs = to_shapiq(game)
    assert theirs.n_players == n and list(theirs.player_name_lookup) == list(game.player_names)
    np.testing.assert_array_equal(theirs(coalitions), game(coalitions))
    back = from_shapiq(theirs)
    np.testing.assert_array_equal(back(coalitions), game(coalitions))
    assert back.player_names == game.player_names
    computer = ExactComputer(game=theirs, n_players=n)
    for index, method in (("SV", ExactShapley()), ("BV", ExactBanzhaf())):
        values = computer(index).dict_values
        ours = method.fit(game).result.values
        np.testing.assert_allclose([values[(j,)] for j in range(n)], ours, rtol=1e-10, atol=1e-12)
    # shapiq's convention for its own games: centred on v(empty)
    centred = to_shapiq(game, normalize=True)
    np.testing.assert_allclose(centred(coalitions), game(coalitions) - game.empty_value(), atol=1e-12)


def test_a_native_shapiq_game_values_and_prices_in_dataprice():
    """A game written against shapiq's API (and one precomputed in shapiq's storage) runs
    through dataprice's methods and market unchanged."""
    shapiq = pytest.importorskip("shapiq")
    from dataprice.interop.shapiq_games import from_shapiq, to_shapiq
    from dataprice.market import SubsetMarket, settle

    class Majority(shapiq.Game):
        def __init__(self):
            super().__init__(5, normalize=False, player_names=["a", "b", "c", "d", "e"])

        def value_function(self, coalitions):
            return (coalitions @ np.array([3.0, 2.0, 2.0, 1.0, 1.0]) >= 5).astype(float) * 10.0

    game = from_shapiq(Majority())
    table = tabulate(game)
    assert table.player_names == ("a", "b", "c", "d", "e")
    np.testing.assert_allclose(ExactShapley().fit(table).result.values.sum(), 10.0)
    outcome = settle(SubsetMarket(table), np.full(5, 0.5), "myerson")
    assert outcome.value == 10.0 and outcome.payments.sum() > 0
    stored = to_shapiq(AirportGame([1.0, 2.0, 3.0]))
    stored.precompute()
    np.testing.assert_allclose(ExactShapley().fit(from_shapiq(stored)).result.values,
                               ExactShapley().fit(AirportGame([1.0, 2.0, 3.0])).result.values, atol=1e-12)
    with pytest.raises(DataError, match="is not a shapiq game"):
        from_shapiq(object())


# --- pyDVL (in its own environment: it pins numpy below 2) -----------------------------------------

PYDVL_PYTHON = ROOT / ".venv-pydvl" / "bin" / "python"
PYDVL_CHECK = """
import warnings; warnings.simplefilter("ignore")
import json, numpy as np
from dataprice.interop.pydvl_results import to_pydvl, from_pydvl
from dataprice.valuation.result import ValuationResult
from pydvl.valuation.result import ValuationResult as PyDVLResult
ours = ValuationResult(values=np.array([0.5, -1.25, 2.0, 0.0]), variances=np.array([0.1, 0.0, 0.3, 0.2]),
                       counts=np.array([10, 1, 7, 3]), player_names=("lab a", "lab_b", "c", "d"),
                       method="tmc_shapley", converged=False)
theirs = to_pydvl(ours)
assert isinstance(theirs, PyDVLResult) and theirs.algorithm == "tmc_shapley"
assert list(theirs.names) == list(ours.player_names) and theirs.status.value == "pending"
theirs = theirs.sort(reverse=True)  # pyDVL's own operation (a sorted copy): by value
back = from_pydvl(theirs)
for field in ("values", "variances", "counts"):
    assert np.array_equal(getattr(back, field), getattr(ours, field)), field
assert back.player_names == ours.player_names and back.method == "tmc_shapley" and not back.converged
native = PyDVLResult(values=np.array([3.0, 1.0]), variances=np.array([0.5, 0.25]), counts=np.array([4, 4]),
                     indices=np.array([1, 0]), data_names=np.array(["y", "x"], dtype=object), algorithm="pydvl-tmc")
mine = from_pydvl(native)
assert mine.player_names == ("x", "y") and np.array_equal(mine.values, [1.0, 3.0])
print(json.dumps({"ok": True, "pydvl_sorted_indices": [int(i) for i in theirs.indices]}))
"""


def test_pydvl_results_convert_both_ways_in_pydvls_environment():
    if not PYDVL_PYTHON.exists():
        pytest.skip("no .venv-pydvl here (make test creates it; pyDVL pins numpy below 2)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([str(PYDVL_PYTHON), "-c", PYDVL_CHECK], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["pydvl_sorted_indices"] == [2, 0, 3, 1]


def test_to_pydvl_without_pydvl_is_one_line():
    if "pydvl" in sys.modules or any((Path(p) / "pydvl").exists() for p in sys.path if p):
        pytest.skip("pyDVL is importable here")
    from dataprice.interop.pydvl_results import to_pydvl
    from dataprice.valuation.result import ValuationResult

    with pytest.raises(DataError, match="needs pyDVL"):
        to_pydvl(ValuationResult.exact([1.0], ["a"], "loo", 1))


# --- tables -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
@pytest.mark.parametrize("game", reference_games(), ids=lambda g: type(g).__name__)
def test_a_game_exports_and_imports_exactly(game, suffix, tmp_path):
    path = export_game(game, tmp_path / f"game{suffix}")
    back = import_game(path)
    np.testing.assert_array_equal(back.values, tabulate(game).values)
    assert back.player_names == game.player_names
    with pytest.raises(OutputError, match="exists"):
        export_game(game, path)


def _tamper_parquet(path: Path, out: Path, *, values=None, masks=None, manifest=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"dataprice"])
    if manifest is not None:
        meta = manifest(meta)
    cols = {"coalition": table.column("coalition").to_numpy(), "value": table.column("value").to_numpy()}
    if values is not None:
        cols["value"] = values(cols["value"].copy())
    if masks is not None:
        cols["coalition"] = masks(cols["coalition"].copy())
    pq.write_table(pa.table(cols).replace_schema_metadata({"dataprice": json.dumps(meta)}), out)
    return out


def test_hostile_game_files_are_refused_in_one_line(tmp_path):
    good = export_game(GloveGame(2, 2), tmp_path / "good.parquet")
    cases = {
        "changed": (_tamper_parquet(good, tmp_path / "a.parquet", values=lambda v: v + np.eye(1, v.size, 3)[0]),
                    "do not match the manifest's sha256"),
        "missing": (_tamper_parquet(good, tmp_path / "b.parquet", masks=lambda m: np.where(m == 5, 6, m)),
                    "exactly once"),
        "nan": (_tamper_parquet(good, tmp_path / "c.parquet", values=lambda v: np.where(np.arange(v.size) == 2, np.nan, v)),
                "must be a finite number"),
        "format": (_tamper_parquet(good, tmp_path / "d.parquet", manifest=lambda m: {**m, "format": "other"}),
                   "not a dataprice game"),
        "players": (_tamper_parquet(good, tmp_path / "e.parquet", manifest=lambda m: {**m, "n_players": 40}),
                    "n_players must be an integer"),
        "names": (_tamper_parquet(good, tmp_path / "f.parquet", manifest=lambda m: {**m, "player_names": ["x"] * 4}),
                  "distinct non-empty names"),
    }
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    cases["junk"] = (junk, "not a readable .npz archive")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, values=np.array([object(), object()], dtype=object), manifest=np.array("{}"))
    cases["pickle"] = (pickled, "not a readable .npz archive")
    cases["missing file"] = (tmp_path / "nowhere.npz", "not found")
    for name, (path, part) in cases.items():
        with pytest.raises(DataError) as caught:
            import_game(path)
        message = str(caught.value)
        assert part in message and "\n" not in message, (name, message)
