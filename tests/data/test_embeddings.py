"""Precomputed embeddings (``.npz`` / ``.parquet``: id -> vector) and an own embedding model
folder for the RAG buyers, through scenario files and the command line as a user runs them.

A run on a file holding MiniLM's own vectors gives the same retrieval and the same values as
embedding with MiniLM, and never loads the embedding model; bad files give one line naming
the file and the array or column, exit status 2 and no report directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataprice.cli import main
from dataprice.data.embeddings import load_vectors
from dataprice.errors import DataError
from dataprice.models import embedder as embedder_module
from dataprice.models.embedder import Embedder, minilm_folder

from ..conftest import run_cli, run_cli_process, same_tables

DOCS = [
    ("d1", "clinic_a", "Cholera due to Vibrio cholerae: code A00.0."),
    ("d2", "clinic_a", "Type 2 diabetes mellitus without complications: code E11.9."),
    ("d3", "clinic_b", "Essential (primary) hypertension: code I10."),
    ("d4", "clinic_b", "Asthma, unspecified, uncomplicated: code J45.909."),
    ("d5", "clinic_c", "Acute appendicitis without perforation: code K35.80."),
    ("d6", "clinic_c", "Urinary tract infection, site not specified: code N39.0."),
    ("d7", "clinic_a", "Headache, unspecified: code R51.9."),
]
QUESTIONS = [
    ("q1", "What is the code for cholera?", "d1"),
    ("q2", "Code for type 2 diabetes without complications?", "d2"),
    ("q3", "Which code is essential hypertension?", "d3"),
    ("q4", "Code for a urinary tract infection?", "d6"),
    ("q5", "What is the code for a headache?", "d7"),
]


def scenario(folder: Path, embeddings: dict | None = None, task: str = "rag") -> Path:
    buyer = {
        "task": task,
        "corpus": {"source": "files", "documents": "documents.csv", "questions": "questions.csv"},
    }
    if task == "rag":
        buyer["top_k"] = 1
    if embeddings is not None:
        buyer["embeddings"] = embeddings
    data = {
        "name": "vectors",
        "seed": 2,
        "sellers": {"count": 3, "costs": {"distribution": "uniform", "low": 1.0, "high": 5.0}},
        "buyer": buyer,
        "valuation": [{"method": "exact_shapley"}],
        "market": {"payment_rules": ["shapley", "vcg"]},
        "audit": {"grid_points": 3},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def minilm_vectors():
    embedder = Embedder(cache=False)
    return embedder.encode([t for _, _, t in DOCS]), embedder.encode([q for _, q, _ in QUESTIONS])


@pytest.fixture
def corpus(tmp_path, minilm_vectors) -> Path:
    """A user corpus with MiniLM's own vectors in ``docs.npz``/``questions.npz`` and Parquet twins."""
    folder = tmp_path / "market"
    folder.mkdir()
    pd.DataFrame(DOCS, columns=["doc_id", "owner", "text"]).to_csv(folder / "documents.csv", index=False)
    pd.DataFrame(QUESTIONS, columns=["question_id", "question", "gold_doc_id"]).to_csv(
        folder / "questions.csv", index=False)
    docs, questions = minilm_vectors
    doc_ids, q_ids = [d for d, _, _ in DOCS], [q for q, _, _ in QUESTIONS]
    # the file's order need not be the corpus's, and it may hold more ids
    order = np.arange(len(doc_ids))[::-1]
    np.savez(folder / "docs.npz", ids=np.array([doc_ids[i] for i in order] + ["extra"]),
             vectors=np.vstack([docs[order], np.ones((1, docs.shape[1]), np.float32)]))
    np.savez(folder / "questions.npz", ids=np.array(q_ids), vectors=questions)
    pd.DataFrame({"id": doc_ids, "vector": list(docs)}).to_parquet(folder / "docs.parquet")
    pd.DataFrame({"id": q_ids, "vector": list(questions)}).to_parquet(folder / "questions.parquet")
    return folder




def forbid_embedding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the embedding model was used")

    monkeypatch.setattr(embedder_module, "load_sentence_model", refuse)
    monkeypatch.setattr(embedder_module.Embedder, "encode", refuse)


def assert_has(err: str, *needles: str) -> None:
    for needle in needles:
        assert needle in err, err


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("task", ["rag", "rag_single_document"])
@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_minilms_own_vectors_from_a_file_give_minilms_numbers(corpus, tmp_path, monkeypatch, fmt, task):
    embedded = scenario(corpus, task=task)
    assert run_cli(embedded, tmp_path / "embedded") == 0
    from_file = scenario(corpus, {"documents": f"docs.{fmt}", "questions": f"questions.{fmt}"}, task=task)
    forbid_embedding(monkeypatch)
    assert run_cli(from_file, tmp_path / "from_file") == 0
    same_tables(tmp_path / "embedded", tmp_path / "from_file")
    values = pd.read_parquet(tmp_path / "from_file" / "values.parquet")
    assert values["value"].abs().sum() > 0  # retrieval found the gold documents: not a trivial game


def test_an_embedding_model_folder_gives_the_same_vectors_as_the_preset(corpus, tmp_path):
    assert run_cli(scenario(corpus), tmp_path / "preset") == 0
    own = scenario(corpus, {"model": {"path": str(minilm_folder())}})
    assert run_cli(own, tmp_path / "own") == 0
    same_tables(tmp_path / "preset", tmp_path / "own")


def test_an_embedding_folder_is_checked_at_validation(corpus, capsys):
    path = scenario(corpus, {"model": {"path": "no-such-encoder"}})
    assert main(["validate", str(path)]) == 2
    one_line_error(capsys, "buyer.embeddings.model.path", "model folder not found", "no-such-encoder")


def _received_encoder(corpus: Path, modules: list | None = None, prompts: dict | None = None) -> str:
    """MiniLM copied into the user's folder as a model they received, with its own
    ``modules.json`` and prompts when given."""
    import shutil

    folder = corpus / "encoder"
    shutil.copytree(minilm_folder(), folder)
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    if prompts is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
    return "encoder"


def test_an_embedding_folder_with_prompts_validates_and_runs(corpus, tmp_path):
    path = scenario(corpus, {"model": {"path": _received_encoder(corpus, prompts={"query": "query: "})}})
    assert main(["validate", str(path)]) == 0
    assert run_cli(path, tmp_path / "own") == 0
    assert run_cli(scenario(corpus), tmp_path / "preset") == 0
    own, preset = (pd.read_parquet(tmp_path / r / "values.parquet") for r in ("own", "preset"))
    assert own["value"].abs().sum() > 0 and len(own) == len(preset)


def test_a_received_encoder_naming_code_to_import_is_refused_at_validation(corpus, tmp_path, monkeypatch, capsys):
    planted = tmp_path / "site"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "dataprice_planted_encoder.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Pool:\n    pass\n")
    monkeypatch.syspath_prepend(str(planted))
    modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
               {"path": "1_Pooling", "type": "dataprice_planted_encoder.Pool"}]
    path = scenario(corpus, {"model": {"path": _received_encoder(corpus, modules)}})
    assert main(["validate", str(path)]) == 2
    one_line_error(capsys, "buyer.embeddings.model.path", "modules.json: module 2", "is not a module dataprice loads")
    assert run_cli(path, tmp_path / "report") == 2
    one_line_error(capsys, "buyer.embeddings.model.path", "dataprice_planted_encoder.Pool")
    assert not (tmp_path / "report").exists() and not marker.exists()


def test_a_received_encoder_with_cut_short_weights_is_one_line_and_no_report(corpus, tmp_path, capsys):
    """A copy interrupted mid-file: named at validation from the safetensors header, before
    any loader sees it (the loader's own error was a SafetensorError traceback)."""
    path = scenario(corpus, {"model": {"path": _received_encoder(corpus)}})
    weights = corpus / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["validate", str(path)]) == 2
    one_line_error(capsys, "buyer.embeddings.model.path", "model.safetensors", "cut short, copy it again")
    assert run_cli(path, tmp_path / "report") == 2
    one_line_error(capsys, "model.safetensors", "cut short")
    assert not (tmp_path / "report").exists()


def test_a_received_encoder_whose_config_does_not_fit_its_weights_is_one_line(corpus, tmp_path):
    """A config.json edited after saving passes every check of the files; the loader's
    failure is then one line, without transformers' load report on the process's stderr."""
    path = scenario(corpus, {"model": {"path": _received_encoder(corpus)}})
    config = json.loads((corpus / "encoder" / "config.json").read_text())
    (corpus / "encoder" / "config.json").write_text(json.dumps({**config, "hidden_size": 192}))
    status, err = run_cli_process(path, tmp_path / "report")
    assert status == 2 and len(err.splitlines()) == 1, err
    assert_has(err, "buyer.embeddings.model.path", "cannot be loaded as an embedding model",
               "the tensor shapes in its weights do not match its config.json")
    assert not (tmp_path / "report").exists()


def _write(folder: Path, name: str, **arrays) -> None:
    np.savez(folder / name, **arrays)


def _ids(n: int) -> np.ndarray:
    return np.array([d for d, _, _ in DOCS][:n])


BAD = {
    "a document without a vector": (
        lambda f: _write(f, "docs.npz", ids=_ids(6), vectors=np.ones((6, 384), np.float32)),
        ["docs.npz", "document id 'd7'", "1 of 7 document ids missing"]),
    "a duplicate id": (
        lambda f: _write(f, "docs.npz", ids=np.array(["d1", "d2", "d1"]), vectors=np.ones((3, 384), np.float32)),
        ["docs.npz", "row 3, array 'ids'", "'d1' appears twice"]),
    "a NaN": (
        lambda f: _write(f, "docs.npz", ids=_ids(7), vectors=np.where(np.arange(7)[:, None] == 4, np.nan,
                                                                      np.ones((7, 384), np.float32))),
        ["docs.npz", "row 5, array 'vectors'", "document 'd5'", "NaN or infinity"]),
    "another dimension": (
        lambda f: _write(f, "docs.npz", ids=_ids(7), vectors=np.ones((7, 8), np.float32)),
        ["questions.npz", "384 dimensions", "docs.npz", "have 8"]),
    "an object array": (
        lambda f: _write(f, "docs.npz", ids=np.array(list(_ids(7)), dtype=object), vectors=np.ones((7, 384))),
        ["docs.npz", "array 'ids'", "Python objects"]),
    "no vectors array": (
        lambda f: _write(f, "docs.npz", ids=_ids(7), emb=np.ones((7, 384))),
        ["docs.npz", "array 'vector' is missing", "arrays found: ids, emb"]),
    "rows and ids differ": (
        lambda f: _write(f, "docs.npz", ids=_ids(7), vectors=np.ones((5, 384))),
        ["docs.npz", "5 rows of 384 numbers for 7 ids"]),
    "not an archive": (
        lambda f: (f / "docs.npz").write_bytes(b"not a zip"),
        ["docs.npz", "not a .npz archive"]),
    "ragged parquet": (
        lambda f: pd.DataFrame({"id": _ids(7), "vector": [np.ones(384)] * 6 + [np.ones(3)]}).to_parquet(
            f / "docs.parquet"),
        ["docs.parquet", "row 7, column 'vector'", "3 numbers, but row 1 has 384"]),
    "parquet without the id column": (
        lambda f: pd.DataFrame({"doc": _ids(7), "vector": [np.ones(384)] * 7}).to_parquet(f / "docs.parquet"),
        ["docs.parquet", "column 'id' is missing", "columns found: doc, vector"]),
    "another suffix": (
        lambda f: (f / "docs.csv").write_text("id,vector\n"),
        ["docs.csv", "unsupported embeddings format '.csv'"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_embeddings_file_is_one_line_exit_2_and_no_report(case, corpus, tmp_path, monkeypatch, capsys):
    make, needles = BAD[case]
    for name in ("docs.npz", "docs.parquet"):
        (corpus / name).unlink()
    make(corpus)
    docs = next(p.name for p in corpus.iterdir() if p.name.startswith("docs."))
    questions = "questions.parquet" if docs.endswith(".parquet") else "questions.npz"
    path = scenario(corpus, {"documents": docs, "questions": questions})
    forbid_embedding(monkeypatch)
    assert run_cli(path, tmp_path / "report") == 2
    one_line_error(capsys, *needles)
    assert not (tmp_path / "report").exists()


def test_both_files_are_needed_and_not_with_a_model(corpus, capsys):
    assert main(["validate", str(scenario(corpus, {"documents": "docs.npz"}))]) == 2
    one_line_error(capsys, "buyer.embeddings", "need both 'documents' and 'questions'")
    both = {"documents": "docs.npz", "questions": "questions.npz", "model": {"path": "enc"}}
    assert main(["validate", str(scenario(corpus, both))]) == 2
    one_line_error(capsys, "buyer.embeddings", "not both")
    assert main(["validate", str(scenario(corpus, {"documents": "nope.npz", "questions": "questions.npz"}))]) == 2
    one_line_error(capsys, "buyer.embeddings.documents", "not found", "nope.npz")


def test_load_vectors_accepts_integer_ids_and_named_arrays(tmp_path):
    np.savez(tmp_path / "v.npz", doc=np.array([3, 1, 2]), emb=np.eye(3, dtype=np.float64))
    vectors = load_vectors(tmp_path / "v.npz", "document", id_column="doc", vector_column="emb")
    assert vectors.ids == ["3", "1", "2"] and vectors.matrix.dtype == np.float32 and vectors.dimension == 3
    with pytest.raises(DataError, match="has no rows"):
        np.savez(tmp_path / "e.npz", ids=np.array([], dtype=str), vectors=np.zeros((0, 3)))
        load_vectors(tmp_path / "e.npz", "document")
    assert json.dumps(vectors.ids)


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_array_in_an_embeddings_file_is_never_loaded(tmp_path):
    marker = tmp_path / "unpickled"
    ids = np.empty(1, dtype=object)
    ids[0] = _Payload(str(marker))
    np.savez(tmp_path / "v.npz", ids=ids, vectors=np.ones((1, 4), np.float32))
    with pytest.raises(DataError, match="Python objects"):
        load_vectors(tmp_path / "v.npz", "document")
    assert not marker.exists()
