"""A user's own causal LM folder (or GGUF file) for the DPO buyer and the LM reader.

The tiny test LM saved with ``save_pretrained`` stands in for a user's model folder: run
through a scenario file and the command line as a user would, it gives the same numbers as
the ``tiny`` preset. Bad folders give one line naming the field and the path, exit status 2
and no report directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dataprice.cli import main
from dataprice.errors import DataError
from dataprice.models.folder import content_id, folder_problem
from dataprice.models.lm import load_lm_folder, sequence_logprobs, tiny_causal_lm

from ..conftest import EMPTY_SAFETENSORS, run_cli, run_cli_process, same_tables

DPO = {
    "name": "own_model",
    "seed": 3,
    "sellers": {"count": 3, "costs": {"distribution": "uniform", "low": 1.0, "high": 5.0}},
    "buyer": {
        "task": "dpo",
        "model": "tiny",
        "preferences": {"source": "medical", "sizes": [6, 4, 6], "flipped_sellers": [2], "n_heldout": 8,
                        "n_categories": 4},
        "training": {"epochs": 1, "lora_r": 0, "learning_rate": 0.003, "batch_size": 4},
    },
    "valuation": [{"method": "exact_shapley"}],
    "market": {"payment_rules": ["shapley", "vcg"]},
    "audit": {"grid_points": 3},
}

READER = {
    "name": "own_reader",
    "seed": 5,
    "sellers": {"count": 3, "costs": {"distribution": "uniform", "low": 0.01, "high": 0.05}},
    "buyer": {
        "task": "rag",
        "value_per_quality": 1.0,
        "corpus": {"source": "icd10", "n_categories": 9, "n_questions": 4},
        "top_k": 1,
        "utility": "lm_reader",
        "reader": {"model": "tiny", "max_context_tokens": 32, "batch_size": 4},
    },
    "valuation": [{"method": "exact_shapley"}],
    "market": {"payment_rules": ["shapley"]},
    "audit": {"grid_points": 3},
}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny preset saved as a user would save a model: ``save_pretrained`` (safetensors)."""
    folder = tmp_path_factory.mktemp("user") / "my-llm"
    model, tokenizer = tiny_causal_lm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))


def scenario_file(folder: Path, data: dict, model=None, field: tuple[str, ...] = ("model",)) -> Path:
    """``data`` written to ``folder/scenario.yaml``, with ``model`` at ``buyer.<field>``."""
    data = json.loads(json.dumps(data))
    if model is not None:
        node = data["buyer"]
        for part in field[:-1]:
            node = node[part]
        node[field[-1]] = model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path




def assert_has(err: str, *needles: str) -> None:
    for needle in needles:
        assert needle in err, err


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --------------------------------------------------------------------------- loading


def test_a_saved_folder_loads_to_the_same_model(tiny_folder):
    model, tokenizer = tiny_causal_lm()
    loaded, loaded_tokenizer = load_lm_folder(str(tiny_folder))
    prompts, completions = ["Question: code for cholera?\nAnswer:"] * 2, [" A00.1", " E11.9"]
    assert loaded_tokenizer("A00.1 cholera")["input_ids"] == tokenizer("A00.1 cholera")["input_ids"]
    assert sequence_logprobs(loaded, loaded_tokenizer, prompts, completions).tolist() == \
        sequence_logprobs(model, tokenizer, prompts, completions).tolist()


def test_content_id_names_the_files(tiny_folder, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tiny_folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert content_id(str(copy)) == content_id(str(tiny_folder))
    (copy / "config.json").write_text((tiny_folder / "config.json").read_text() + " ")
    assert content_id(str(copy)) != content_id(str(tiny_folder))


# --------------------------------------------------------------------------- same numbers as the preset


def test_dpo_on_a_model_folder_gives_the_tiny_presets_numbers(tiny_folder, tmp_path):
    preset = scenario_file(tmp_path / "preset", DPO)
    own = scenario_file(tmp_path / "own", DPO, {"path": str(Path("..") / tiny_folder.parent.name / "my-llm")})
    # the path is relative to the scenario file's folder
    own_yaml = yaml.safe_load(own.read_text())
    (tmp_path / "own" / "models").mkdir()
    link = tmp_path / "own" / "models" / "my-llm"
    link.symlink_to(tiny_folder, target_is_directory=True)
    own_yaml["buyer"]["model"] = {"path": "models/my-llm"}
    own.write_text(yaml.safe_dump(own_yaml))
    assert run_cli(preset, tmp_path / "r_preset") == 0
    assert run_cli(own, tmp_path / "r_own") == 0
    same_tables(tmp_path / "r_preset", tmp_path / "r_own")
    saved = yaml.safe_load((tmp_path / "r_own" / "scenario.yaml").read_text())
    assert saved["buyer"]["model"]["path"] == str(link.resolve())  # relative paths are made absolute


def test_lm_reader_on_a_model_folder_gives_the_tiny_presets_numbers(tiny_folder, tmp_path):
    preset = scenario_file(tmp_path / "preset", READER)
    own = scenario_file(tmp_path / "own", READER, {"path": str(tiny_folder)}, ("reader", "model"))
    assert run_cli(preset, tmp_path / "r_preset") == 0
    assert run_cli(own, tmp_path / "r_own") == 0
    same_tables(tmp_path / "r_preset", tmp_path / "r_own")


def test_small_switches_a_model_folder_to_the_tiny_preset(tiny_folder, tmp_path):
    from dataprice import api

    own = scenario_file(tmp_path / "own", DPO, {"path": str(tiny_folder)})
    assert api.load(own).buyer.model.path == str(tiny_folder)
    from dataprice.scenario import small_scenario

    assert small_scenario(api.load(own)).buyer.model == "tiny"


# --------------------------------------------------------------------------- bad folders


def _no_config(folder: Path) -> None:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)


def _pickle_only(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    (folder / "tokenizer.json").write_text("{}")


def _no_tokenizer(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)


def _bad_json(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text("{not json")


def _a_file(folder: Path) -> None:
    folder.write_text("weights")


def _cut_short(folder: Path) -> None:
    """The tiny LM's folder with its weights cut short, as an interrupted copy leaves it."""
    model, tokenizer = tiny_causal_lm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4000])


def _foreign_weights(folder: Path) -> None:
    _no_tokenizer(folder)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"PK\x03\x04 a zip archive, not safetensors")


def _missing_shard(folder: Path) -> None:
    _no_tokenizer(folder)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "model-00001.safetensors"}}))


BAD_FOLDERS = {
    "weights cut short": (_cut_short, "but its header describes"),
    "foreign weights": (_foreign_weights, "is not a safetensors file or is cut short"),
    "missing shard": (_missing_shard, "names the shard 'model-00001.safetensors'"),
    "missing": (lambda folder: None, "model folder not found"),
    "no config": (_no_config, "has no config.json"),
    "pickle only": (_pickle_only, "only pickle weights (pytorch_model.bin)"),
    "no tokenizer": (_no_tokenizer, "has no tokenizer"),
    "bad config": (_bad_json, "config.json: not a JSON object"),
    "a file": (_a_file, "is not a folder"),
    "missing gguf": (lambda folder: None, "GGUF file not found"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
@pytest.mark.parametrize("where", ["dpo", "reader"])
def test_a_bad_model_folder_is_one_line_exit_2_and_no_report(case, where, tmp_path, capsys):
    make, message = BAD_FOLDERS[case]
    name = "model.gguf" if "gguf" in case else "my-llm"
    make(tmp_path / "s" / name) if (tmp_path / "s").mkdir() is None else None
    data, field = (DPO, ("model",)) if where == "dpo" else (READER, ("reader", "model"))
    path = scenario_file(tmp_path / "s", data, {"path": name}, field)
    label = "buyer.model.path" if where == "dpo" else "buyer.reader.model.path"
    assert main(["validate", str(path)]) == 2
    one_line_error(capsys, label, message, name)
    assert run_cli(path, tmp_path / "report") == 2
    one_line_error(capsys, label, message)
    assert not (tmp_path / "report").exists()


def test_an_unsupported_architecture_fails_before_any_work(tmp_path, capsys):
    folder = tmp_path / "s" / "vision"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    (folder / "tokenizer.json").write_text("{}")
    path = scenario_file(tmp_path / "s", DPO, {"path": "vision"})
    assert run_cli(path, tmp_path / "report") == 2
    one_line_error(capsys, "buyer.model.path", "architecture 'vit'", str(folder))
    assert not (tmp_path / "report").exists()
    assert not list(tmp_path.glob(".report*"))  # no checkpoint folder either


def test_a_folder_whose_config_does_not_fit_its_weights_is_one_line(tiny_folder, tmp_path):
    """Files that pass every check but do not fit together (config.json edited after
    saving): the loader's failure is one line, without transformers' load report (in a
    process of its own: the report goes to the process's stderr through its own handler)."""
    folder = tmp_path / "s" / "my-llm"
    folder.mkdir(parents=True)
    for f in tiny_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": config["hidden_size"] // 2}))
    path = scenario_file(tmp_path / "s", DPO, {"path": "my-llm"})
    status, err = run_cli_process(path, tmp_path / "report")
    assert status == 2 and len(err.splitlines()) == 1, err
    assert_has(err, "buyer.model.path", "cannot be loaded as a causal LM",
               "the tensor shapes in its weights do not match its config.json")
    assert not (tmp_path / "report").exists()


def test_code_in_a_folder_is_never_run(tmp_path):
    """A config asking for remote code (auto_map) of an unknown architecture is refused
    without importing the folder's Python file."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil_lm", "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilLM"},
    }))
    (folder / "modeling_evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\n")
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    (folder / "tokenizer.json").write_text("{}")
    assert folder_problem(str(folder)) is None  # the files are there ...
    with pytest.raises(DataError, match="architecture 'evil_lm'"):
        load_lm_folder(str(folder))  # ... but nothing transformers knows without the folder's code
    assert not (tmp_path / "ran").exists()


@pytest.mark.slow
def test_a_gguf_file_named_by_path_is_smollm2():
    """SmolLM2's GGUF file named as a user's own model loads to the same scores as the preset."""
    from dataprice.models.lm import SMOLLM2_GGUF, load_smollm2, smollm2_folder

    model, tokenizer = load_smollm2()
    own, own_tokenizer = load_lm_folder(str(smollm2_folder() / SMOLLM2_GGUF))
    prompts, completions = ["Question: what is the ICD-10-CM code for cholera?\nAnswer:"] * 2, [" A00.9", " E11.9"]
    assert sequence_logprobs(own, own_tokenizer, prompts, completions).tolist() == \
        sequence_logprobs(model, tokenizer, prompts, completions).tolist()
