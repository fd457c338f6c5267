"""``dataprice validate`` opens every data file a buyer reads, without embedding, scoring or
training anything, and says what ``run`` would say: one line naming the file (or field) and
the problem, exit status 2; ``run`` on the same scenario stops the same way before any work
and leaves no report directory.

Each case writes a small user market, breaks one thing in one file, and runs both commands
as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dataprice.cli import main

from ..conftest import EMPTY_SAFETENSORS, run_cli

DOCS = "doc_id,owner,text\nd1,a,Cholera is coded A00.0.\nd2,b,Hypertension is coded I10.\nd3,c,Asthma is J45.909.\n"
QUESTIONS = "question_id,question,gold_doc_id\nq1,Code for cholera?,d1\nq2,Code for hypertension?,d2\n"


def _rag(folder: Path, **buyer) -> dict:
    (folder / "documents.csv").write_text(DOCS)
    (folder / "questions.csv").write_text(QUESTIONS)
    return {
        "name": "user", "seed": 1, "sellers": {"count": 3},
        "buyer": {"task": "rag", "top_k": 1,
                  "corpus": {"source": "files", "documents": "documents.csv", "questions": "questions.csv"}, **buyer},
        "valuation": [{"method": "exact_shapley"}], "market": {"payment_rules": ["shapley", "vcg"]},
    }


def replay_unknown_question(folder: Path) -> dict:
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,d1,0.9\nq9,d2,0.5\n")
    return _rag(folder, utility="replay", replay_file="replay.csv")


def replay_unknown_document(folder: Path) -> dict:
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,d7,0.9\n")
    return _rag(folder, utility="replay", replay_file="replay.csv")


def vectors_missing_a_document(folder: Path) -> dict:
    rng = np.random.default_rng(0)
    np.savez(folder / "docs.npz", ids=np.array(["d1", "d2"]), vectors=rng.normal(size=(2, 8)).astype(np.float32))
    np.savez(folder / "qs.npz", ids=np.array(["q1", "q2"]), vectors=rng.normal(size=(2, 8)).astype(np.float32))
    return _rag(folder, embeddings={"documents": "docs.npz", "questions": "qs.npz"})


def vectors_of_two_dimensions(folder: Path) -> dict:
    rng = np.random.default_rng(0)
    np.savez(folder / "docs.npz", ids=np.array(["d1", "d2", "d3"]), vectors=rng.normal(size=(3, 8)).astype(np.float32))
    np.savez(folder / "qs.npz", ids=np.array(["q1", "q2"]), vectors=rng.normal(size=(2, 4)).astype(np.float32))
    return _rag(folder, embeddings={"documents": "docs.npz", "questions": "qs.npz"})


def _query_log(folder: Path, log: str, **extra) -> dict:
    data = _rag(folder)
    (folder / "questions.csv").write_text("question_id,question\nq1,Code for cholera?\nq2,Code for hypertension?\n")
    (folder / "log.csv").write_text(log)
    data["buyer"] = {"task": "rag_single_document", "candidates_from": "query_log", "query_log": "log.csv",
                     "corpus": data["buyer"]["corpus"]}
    data["market"] = {"payment_rules": ["myerson", "vcg"]}
    data.update(extra)
    return data


def query_log_unknown_document(folder: Path) -> dict:
    return _query_log(folder, "question_id,doc_id,score\nq1,d1,0.9\nq2,d8,0.4\n")


def query_log_pair_twice(folder: Path) -> dict:
    return _query_log(folder, "question_id,doc_id,score\nq1,d1,0.9\nq1,d1,0.4\n")


def query_log_prices_and_costs(folder: Path) -> dict:
    return _query_log(folder, "question_id,doc_id,score,price\nq1,d1,0.9,0.2\nq2,d2,0.4,0.1\n",
                      sellers={"count": 3, "costs": {"a": 0.1, "b": 0.2, "c": 0.3}})


def _dpo(folder: Path, sold: str, **buyer) -> dict:
    (folder / "pairs.csv").write_text(sold)
    (folder / "heldout.csv").write_text("prompt,chosen,rejected\nCode for cholera?,A00.0,I10\n")
    return {
        "name": "prefs", "seed": 1, "sellers": {"count": 2},
        "buyer": {"task": "dpo", "model": "tiny",
                  "preferences": {"source": "files", "file": "pairs.csv", "heldout_file": "heldout.csv"}, **buyer},
        "valuation": [{"method": "exact_shapley"}], "market": {"payment_rules": ["shapley"]},
    }


def preferences_with_three_owners(folder: Path) -> dict:
    return _dpo(folder, "prompt,chosen,rejected,owner\nq?,A,B,x\nr?,C,D,y\ns?,E,F,z\n")


def preferences_missing_rejected(folder: Path) -> dict:
    return _dpo(folder, "prompt,chosen,owner\nq?,A,x\nr?,C,y\n")


def _folder(folder: Path, model_type: str) -> str:
    model = folder / "my-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": model_type}))
    (model / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    (model / "tokenizer.json").write_text("{}")
    return "my-model"


def reader_folder_is_a_vision_model(folder: Path) -> dict:
    return _rag(folder, utility="lm_reader", reader={"model": {"path": _folder(folder, "vit")}})


def dpo_folder_of_unknown_architecture(folder: Path) -> dict:
    data = _dpo(folder, "prompt,chosen,rejected,owner\nq?,A,B,x\nr?,C,D,y\n")
    data["buyer"]["model"] = {"path": _folder(folder, "evil_lm")}
    return data


def embedding_folder_of_unknown_architecture(folder: Path) -> dict:
    return _rag(folder, embeddings={"model": {"path": _folder(folder, "evil_lm")}})


CASES = {
    replay_unknown_question: ("replay.csv", "question 'q9' is not in the corpus"),
    replay_unknown_document: ("replay.csv", "document 'd7' is not in the corpus"),
    vectors_missing_a_document: ("docs.npz", "document id 'd3' (from the corpus) has no vector"),
    vectors_of_two_dimensions: ("qs.npz", "question vectors have 4 dimensions"),
    query_log_unknown_document: ("log.csv", "'d8'"),
    query_log_pair_twice: ("log.csv", "line 3"),
    query_log_prices_and_costs: ("documents.csv", "remove sellers.costs"),
    preferences_with_three_owners: ("pairs.csv", "3 distinct owners"),
    preferences_missing_rejected: ("pairs.csv", "rejected"),
    reader_folder_is_a_vision_model: ("buyer.reader.model.path", "architecture 'vit' is not a causal language model"),
    dpo_folder_of_unknown_architecture: ("buyer.model.path", "architecture 'evil_lm'"),
    embedding_folder_of_unknown_architecture: ("buyer.embeddings.model.path", "architecture 'evil_lm'"),
}


@pytest.mark.parametrize("make", list(CASES), ids=lambda f: f.__name__)
def test_validate_reads_the_file_and_says_what_run_says(make, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "market"
    folder.mkdir()
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(make(folder)))
    where, what = CASES[make]
    assert main(["validate", str(path)]) == 2
    said = capsys.readouterr().err.strip()
    assert len(said.splitlines()) == 1 and where in said and what in said, said
    assert run_cli(path, tmp_path / "report") == 2
    again = capsys.readouterr().err.strip()
    assert len(again.splitlines()) == 1 and where in again and what in again, again
    assert not (tmp_path / "report").exists()


def test_a_sound_user_market_validates(tmp_path, capsys):
    folder = tmp_path / "market"
    folder.mkdir()
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,d1,0.9\nq2,d2,0.5\n")
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(_rag(folder, utility="replay", replay_file="replay.csv")))
    assert main(["validate", str(path)]) == 0
