"""Sentence-embedding folders through sentence-transformers: what a folder may ask to load,
and the vectors it gives, against ground truth.

* MiniLM through sentence-transformers equals the formula it stands for (mean of the token
  states under the attention mask, L2-normalised), computed here with plain transformers.
* A folder saved by sentence-transformers with CLS pooling, a Dense layer, Normalize and
  query/document prompts gives what ``SentenceTransformer.encode_query`` and
  ``encode_document`` give.
* A received folder whose ``modules.json`` names code to import, a path out of the folder,
  or a pickled Dense layer is refused from its files, before anything is imported.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dataprice.errors import DataError
from dataprice.models import embedder as embedder_module
from dataprice.models.embedder import Embedder, load_sentence_model, minilm_folder
from dataprice.models.sentence import ALLOWED_MODULES, encoder_problem, modules_problem, prompt_for

from ..conftest import fails

TEXTS = ["What is the code for cholera?", "Essential (primary) hypertension: code I10.",
         "Acute appendicitis without perforation.", "A", "Headache, unspecified: code R51.9 " * 20]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))


def plain_minilm(texts: list[str]) -> np.ndarray:
    """The reference: MiniLM's token states, mean-pooled under the attention mask (256
    tokens at most), L2-normalised, with plain transformers."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    model = AutoModel.from_pretrained(minilm_folder(), local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            batch = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy())
    return np.concatenate(out)


def test_minilm_through_sentence_transformers_is_the_mean_pooled_formula():
    got = Embedder(cache=False, batch_size=2).encode(TEXTS)
    want = plain_minilm(TEXTS)
    assert got.shape == (5, 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    # MiniLM has no prompts: the role changes nothing, and batches do not change the vectors
    assert np.abs(Embedder(cache=False, batch_size=64).encode(TEXTS, role="query") - got).max() < 1e-6


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory) -> Path:
    """MiniLM saved by sentence-transformers with CLS pooling, a Dense layer to 32
    dimensions, Normalize, and E5-style prompts."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("st") / "own-encoder"
    transformer = Transformer(str(minilm_folder()), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(384, pooling_mode="cls"),
                                         Dense(384, 32, activation_function=torch.nn.Tanh()), Normalize()],
                                prompts={"query": "query: ", "document": "passage: "}, device="cpu")
    model.save(str(folder))
    return folder


def test_a_sentence_transformers_folder_gives_what_sentence_transformers_gives(st_folder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(st_folder), device="cpu", local_files_only=True)
    assert modules_problem(st_folder) is None
    embedder = Embedder(folder=str(st_folder), cache=True, batch_size=2)
    assert embedder.limit() == 128 and embedder.prompt("query") == "query: "
    assert embedder.prompt("document") == "passage: " and embedder.prompt(None) == ""
    queries = embedder.encode(TEXTS, role="query")
    documents = embedder.encode(TEXTS, role="document")
    assert queries.shape == (5, 32) and embedder.dimension == 32
    assert np.abs(queries - reference.encode_query(TEXTS, normalize_embeddings=True)).max() < 1e-5
    assert np.abs(documents - reference.encode_document(TEXTS, normalize_embeddings=True)).max() < 1e-5
    assert np.abs(queries - documents).max() > 0.01  # the prompts matter
    # cached by role: a second embedder reads both back without the model
    again = Embedder(folder=str(st_folder), batch_size=2)
    assert np.array_equal(again.encode(TEXTS, role="document"), documents) and again.n_encoded == 0
    assert np.array_equal(again.encode(TEXTS, role="query"), queries) and again.dimension == 32
    # the prompt's tokens come out of what a chunk may hold
    tokenizer = reference.tokenizer
    prompt_tokens = len(tokenizer("passage: ", add_special_tokens=False)["input_ids"])
    special = len(tokenizer("", add_special_tokens=True)["input_ids"])
    assert prompt_tokens >= 2 and special == 2
    assert embedder.content_limit("document") == 128 - special - prompt_tokens
    assert embedder.content_limit(None) == 128 - special


def test_a_plain_transformers_folder_is_mean_pooled(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copy(minilm_folder() / name, folder / name)
    got = Embedder(folder=str(folder), cache=False).encode(TEXTS[:4])
    assert np.abs(got - plain_minilm(TEXTS[:4])).max() < 1e-5


def test_a_dense_layer_must_be_intact_and_use_a_torch_activation(st_folder, tmp_path):
    """sentence-transformers (without trust_remote_code) replaces an activation outside
    torch.nn by Tanh with only a log warning: other vectors than the model's, so refused."""
    import torch
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "received"
    shutil.copytree(st_folder, folder)
    dense = next(p for p in folder.iterdir() if p.name.endswith("_Dense"))
    config = json.loads((dense / "config.json").read_text())
    assert config["activation_function"] == "torch.nn.modules.activation.Tanh" and modules_problem(folder) is None
    (dense / "config.json").write_text(json.dumps({**config, "activation_function": "my_package.layers.Swish"}))
    replaced = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    assert isinstance(replaced[2].activation_function, torch.nn.Tanh)  # the silent replacement
    problem = modules_problem(folder)
    assert "'my_package.layers.Swish' is not a torch.nn module class" in problem and "\n" not in problem
    fails(lambda: load_sentence_model(str(folder), "buyer.embeddings.model.path"),
          "buyer.embeddings.model.path", "activation_function")
    (dense / "config.json").write_text(json.dumps({**config, "activation_function": "torch.nn.GELU"}))
    assert modules_problem(folder) is None
    weights = dense / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert "but its header describes" in modules_problem(folder)


def _folder_with(tmp_path: Path, modules: list, **files: str) -> Path:
    folder = tmp_path / "received"
    shutil.copytree(minilm_folder(), folder)
    (folder / "modules.json").write_text(json.dumps(modules))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}

HOSTILE = {
    "a class of another package": ([TRANSFORMER, {**POOLING, "type": "dataprice_planted_module.Evil"}],
                                   "'dataprice_planted_module.Evil' is not a module dataprice loads"),
    "a module of sentence-transformers not on the list": (
        [TRANSFORMER, {**POOLING, "type": "sentence_transformers.models.CLIPModel"}], "CLIPModel' is not a module"),
    "a path out of the folder": ([TRANSFORMER, {**POOLING, "path": "../outside"}], "not a subfolder"),
    "an absolute path": ([TRANSFORMER, {**POOLING, "path": "/etc"}], "not a subfolder"),
    "a Transformer elsewhere": ([{**TRANSFORMER, "path": "1_Pooling"}, POOLING], "must be the Transformer"),
    "no Transformer first": ([POOLING, TRANSFORMER], "must be the Transformer"),
    "not a list": ({"0": TRANSFORMER}, "not a list of 1 to 16 modules"),
    "no type": ([TRANSFORMER, {"path": "1_Pooling"}], "needs a 'type' and a 'path'"),
    "a pickled Dense layer": ([TRANSFORMER, POOLING, {"idx": 2, "path": "2_Dense",
                                                      "type": "sentence_transformers.models.Dense"}],
                              "has no model.safetensors"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_received_folder_that_asks_for_code_is_refused_before_any_import(case, tmp_path, monkeypatch):
    modules, needle = HOSTILE[case]
    (tmp_path / "outside").mkdir()
    planted = tmp_path / "site"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "dataprice_planted_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Evil:\n    pass\n")
    monkeypatch.syspath_prepend(str(planted))
    folder = _folder_with(tmp_path, modules)
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    problem = modules_problem(folder)
    assert problem is not None and needle in problem and "\n" not in problem, problem
    for call in (lambda: Embedder(folder=str(folder), cache=False).encode(["a"]),
                 lambda: load_sentence_model(str(folder), "buyer.embeddings.model.path")):
        with pytest.raises(DataError, match="buyer.embeddings.model.path"):
            call()
    assert not marker.exists() and "dataprice_planted_module" not in sys.modules


def test_sentence_transformers_itself_would_not_import_a_foreign_class_either(tmp_path, monkeypatch):
    """Defence in depth: the allow-list is checked first, and sentence-transformers 6 also
    refuses a class outside its package without trust_remote_code."""
    planted = tmp_path / "site"
    planted.mkdir()
    (planted / "dataprice_planted_module.py").write_text("class Evil:\n    pass\n")
    monkeypatch.syspath_prepend(str(planted))
    folder = _folder_with(tmp_path, [TRANSFORMER, {**POOLING, "type": "dataprice_planted_module.Evil"}])
    from sentence_transformers import SentenceTransformer

    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(folder), device="cpu", local_files_only=True)


def test_every_allowed_class_path_is_one_sentence_transformers_has():
    from sentence_transformers.util.misc import import_from_string

    for kind, paths in ALLOWED_MODULES.items():
        for path in paths:
            assert import_from_string(path).__name__ == kind


def test_bad_prompt_files_and_gguf_files_are_named(tmp_path):
    folder = _folder_with(tmp_path, [TRANSFORMER, POOLING],
                          **{"config_sentence_transformers.json": json.dumps({"prompts": ["query: "]})})
    assert "not a mapping of names to strings" in modules_problem(folder)
    (folder / "config_sentence_transformers.json").write_text("{not json")
    assert "config_sentence_transformers.json" in modules_problem(folder)
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "q: ", "classify": "c: "}, "default_prompt_name": "classify"}))
    assert modules_problem(folder) is None
    assert prompt_for(folder, "query") == "q: " and prompt_for(folder, "document") == "c: "
    assert prompt_for(None, "query") == ""
    assert "a GGUF file is a causal LM" in encoder_problem(tmp_path / "model.gguf")


@pytest.mark.parametrize(("text", "needle"), [
    ("{not json", "not readable JSON"),
    ("[]", "not a JSON object"),
    ('{"max_seq_length": 4096}', "max_seq_length 4096 is not allowed; allowed: 1 to 512"),
    ('{"max_seq_length": "long"}', "max_seq_length 'long' is not allowed"),
    ('{"max_seq_length": 0}', "max_seq_length 0 is not allowed"),
])
def test_a_bad_sentence_bert_config_is_named_before_loading(text, needle, tmp_path):
    """MiniLM reads 512 positions: a limit above them would let texts through that the model
    cannot read (the run would fail mid-way on the first long document)."""
    folder = _folder_with(tmp_path, [TRANSFORMER, POOLING], **{"sentence_bert_config.json": text})
    problem = encoder_problem(folder)
    assert problem is not None and needle in problem and "sentence_bert_config.json" in problem, problem
    fails(lambda: load_sentence_model(str(folder), "buyer.embeddings.model.path"), "buyer.embeddings.model.path", needle)
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 512, "do_lower_case": false}')
    assert encoder_problem(folder) is None


def test_a_load_says_nothing_unless_asked(capsys, tmp_path):
    embedder_module.load_sentence_model.cache_clear()
    folder = tmp_path / "plain"
    shutil.copytree(minilm_folder(), folder, ignore=shutil.ignore_patterns("modules.json", "1_Pooling"))
    Embedder(folder=str(folder), cache=False).encode(["quiet"])
    assert capsys.readouterr().err == ""  # no weights bar, no notice about mean pooling


def test_a_module_folder_that_links_out_of_the_model_folder_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    folder = _folder_with(tmp_path, [TRANSFORMER, {**POOLING, "path": "linked"}])
    (folder / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert "its path 'linked' is not a subfolder" in modules_problem(folder)
