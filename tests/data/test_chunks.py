"""Long documents split into overlapping chunks (chunk -> document -> owner), never cut silently.

The token windows are checked as arithmetic (hypothesis); the split of real texts with
MiniLM's own tokenizer; and a user corpus whose one long document holds its answer after
the 256 tokens MiniLM reads runs through ``dataprice run`` as a user would: chunked, the
document is found and its owner paid; truncated, it is not. Either way the report says how
many documents were split or cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.buyers.rag import EmbeddingSpec
from dataprice.buyers.rag.corpus import embed
from dataprice.buyers.rag.game import ReplayScorer
from dataprice.cli import main
from dataprice.data.chunks import ChunkPlan, plan_chunks, windows
from dataprice.data.corpus import load_corpus
from dataprice.models.embedder import Embedder

from ..conftest import fails, run_cli

FILLER = " ".join(
    f"Section {i}: the garden committee discussed watering schedules, compost bins and the spring plant sale."
    for i in range(30)
)
NOTE = (" Clinical note on cholera. Cholera due to Vibrio cholerae 01, biovar cholerae, is coded A00.0. "
        "Cholera due to Vibrio cholerae 01, biovar eltor, is coded A00.1. Cholera, unspecified, is coded A00.9.")
DOCS = [
    ("long", "clinic_a", FILLER + NOTE, 4.0),
    ("d2", "clinic_b", "Acute appendicitis without perforation: code K35.80.", 1.0),
    ("d3", "clinic_c", "Essential (primary) hypertension is coded I10.", 2.0),
    ("d4", "clinic_b", "Type 2 diabetes mellitus without complications: code E11.9.", 1.5),
]
QUESTIONS = [
    ("q1", "What is the code for cholera due to Vibrio cholerae?", "long"),
    ("q2", "Which code is essential hypertension?", "d3"),
    ("q3", "Code for type 2 diabetes without complications?", "d4"),
]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))


# --- token windows -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 2000), window=st.integers(1, 300), data=st.data())
def test_windows_cover_every_token_within_the_window_with_the_overlap(n, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    spans = windows(n, window, overlap)
    if n <= window:
        assert spans == [(0, n)]
        return
    assert spans[0][0] == 0 and spans[-1][1] == n
    for a, b in spans:
        assert b - a == window  # every chunk of a long text is a full window
    for (a1, b1), (a2, b2) in zip(spans, spans[1:], strict=False):
        assert a1 < a2 and b1 < b2  # moving forward: no chunk repeats another
        assert b1 - a2 >= overlap  # neighbours share at least the overlap: nothing falls between
    assert len(spans) == max(1, -(-(n - overlap) // (window - overlap)))


def test_windows_refuse_an_overlap_as_large_as_the_window():
    with pytest.raises(ValueError, match="overlap"):
        windows(10, 4, 4)


def test_minilm_chunks_are_spans_of_the_text_each_within_the_window():
    embedder = Embedder(cache=False)
    texts = [FILLER + NOTE, "short text", "", "  padded  "]
    plan = embedder.chunk_plan(texts, 100, 20)
    assert plan.chunks_per_text().tolist()[1:] == [1, 1, 1]
    assert plan.texts(texts)[-3:] == texts[1:]  # a text that fits is one chunk: itself, unchanged
    chunks = [c for c, i in zip(plan.texts(texts), plan.text_index.tolist(), strict=True) if i == 0]
    assert len(chunks) == int(plan.chunks_per_text()[0]) > 1
    assert plan.tokens[0] > 100 and plan.long_texts().tolist() == [True, False, False, False]
    for chunk in chunks:
        assert chunk in texts[0]
        assert 90 <= embedder.token_counts([chunk])[0] <= 100  # retokenised, a chunk stays in its window
    assert chunks[0].startswith("Section 0:") and chunks[-1].endswith("is coded A00.9.")
    # consecutive chunks overlap in the text: nothing between them is lost
    starts, ends = plan.starts[plan.text_index == 0], plan.ends[plan.text_index == 0]
    assert (starts[1:] < ends[:-1]).all()


def test_a_plan_from_a_damaged_cache_is_not_used():
    good = plan_chunks([np.array([[0, 1], [2, 3]])], ["a b"], 1, 0)
    again = ChunkPlan.from_arrays(good.to_arrays(), 1)
    assert again is not None and (again.window, again.overlap) == (1, 0)
    assert all((getattr(again, k) == getattr(good, k)).all() for k in ("text_index", "starts", "ends", "tokens"))
    assert ChunkPlan.from_arrays(good.to_arrays(), 2) is None  # a plan for another number of texts
    broken = {**good.to_arrays(), "text_index": np.array([0, 5])}
    assert ChunkPlan.from_arrays(broken, 1) is None
    assert ChunkPlan.from_arrays({"starts": np.array([0])}, 1) is None


# --- a user's corpus, through the loader and the command line ----------------------------------------


def write_corpus(folder: Path, prices: bool = False) -> None:
    columns = ["doc_id", "owner", "text", "price"]
    frame = pd.DataFrame(DOCS, columns=columns)
    (frame if prices else frame.drop(columns="price")).to_csv(folder / "documents.csv", index=False)
    pd.DataFrame(QUESTIONS, columns=["question_id", "question", "gold_doc_id"]).to_csv(
        folder / "questions.csv", index=False)


def scenario(folder: Path, embeddings: dict | None = None, task: str = "rag", name: str = "scenario") -> Path:
    buyer: dict = {"task": task, "corpus": {"source": "files", "documents": "documents.csv",
                                            "questions": "questions.csv"}}
    if task == "rag":
        buyer["top_k"] = 1
    if embeddings is not None:
        buyer["embeddings"] = embeddings
    data = {
        "name": name, "seed": 1,
        "sellers": {"count": 3} if task != "rag" else {"count": 3, "costs": [1.0, 1.0, 1.0]},
        "buyer": buyer,
        "valuation": [{"method": "exact_shapley"}],
        "market": {"payment_rules": ["shapley", "vcg"]},
        "audit": {"grid_points": 3},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "market"
    out.mkdir()
    write_corpus(out)
    return out


def test_the_loader_chunks_only_long_documents_and_keeps_their_owner_and_gold_id(folder):
    corpus = load_corpus(folder / "documents.csv", folder / "questions.csv")
    embedded = embed(corpus, EmbeddingSpec())
    chunked = embedded.corpus
    assert chunked.doc_ids[:3] == ["long#1", "long#2", "long#3"] and chunked.doc_ids[3:] == ["d2", "d3", "d4"]
    assert chunked.texts[3:] == corpus.texts[1:]  # documents that fit are unchanged
    assert chunked.owners.tolist() == [0, 0, 0, 1, 2, 1]
    assert chunked.documents_per_seller().tolist() == [1, 2, 1]
    rel = chunked.relevance()
    assert rel[0, :3].all() and not rel[0, 3:].any()  # every chunk of the gold document counts as it
    table = chunked.describe_sellers()
    assert table["documents"].tolist() == [1, 2, 1] and table["chunks"].tolist() == [3, 2, 1]
    assert embedded.documents.shape == (6, 384)
    assert "1 of 4 documents are longer than 254 tokens" in embedded.notes[0]
    assert "split into 3 overlapping chunks" in embedded.notes[0]


def test_replayed_scores_name_documents_and_count_for_each_chunk(folder):
    corpus = load_corpus(folder / "documents.csv", folder / "questions.csv")
    chunked = embed(corpus, EmbeddingSpec()).corpus
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,long,0.9\nq2,d3,0.7\n")
    scores = ReplayScorer.from_file(folder / "replay.csv", chunked).scores
    assert scores[0, :3].tolist() == [0.9, 0.9, 0.9] and scores[1, 4] == 0.7 and scores.sum() == pytest.approx(3.4)
    (folder / "replay.csv").write_text("question_id,doc_id,score\nq1,long#2,0.9\n")  # rows are not ids
    fails(lambda: ReplayScorer.from_file(folder / "replay.csv", chunked), "replay.csv", "long#2", "not in the corpus")


def test_a_long_document_is_found_when_chunked_and_missed_when_cut(folder, tmp_path):
    assert run_cli(scenario(folder, name="chunked"), tmp_path / "chunked") == 0
    assert run_cli(scenario(folder, {"long_texts": "truncate"}, name="cut"), tmp_path / "cut") == 0
    values = {m: pd.read_csv(tmp_path / m / "values.csv") for m in ("chunked", "cut")}
    grand = {m: v["value"].sum() for m, v in values.items()}  # exact Shapley sums to v(N)
    assert grand["chunked"] == pytest.approx(100.0)  # all three questions answered by top-1 retrieval
    assert grand["cut"] == pytest.approx(200 / 3)  # the cholera note lies past MiniLM's 256 tokens
    paid = {m: pd.read_csv(tmp_path / m / "outcomes.csv").groupby(["rule", "seller"])["payment"].mean()
            for m in ("chunked", "cut")}
    assert paid["chunked"][("vcg", "clinic_a")] == pytest.approx(100 / 3)  # its document is found and bought
    assert paid["cut"][("vcg", "clinic_a")] == 0.0 and paid["cut"][("shapley", "clinic_a")] == 0.0
    sellers = pd.read_csv(tmp_path / "chunked" / "sellers.csv")
    assert sellers.set_index("seller").loc["clinic_a", "chunks"] == 3
    report = (tmp_path / "chunked" / "report.md").read_text()
    assert "How the data was read:** 1 of 4 documents are longer than 254 tokens" in report
    cut = (tmp_path / "cut" / "report.md").read_text()
    assert "1 of 4 documents are longer than the 254 tokens all-MiniLM-L6-v2 reads at once and were cut" in cut


def test_the_per_query_market_sells_a_chunk_as_its_document_at_the_documents_price(tmp_path):
    folder = tmp_path / "priced"
    folder.mkdir()
    write_corpus(folder, prices=True)
    assert run_cli(scenario(folder, task="rag_single_document"), tmp_path / "out") == 0
    sellers = pd.read_csv(tmp_path / "out" / "sellers.csv").set_index("seller")
    assert sellers.loc["clinic_a", "mean_list_price"] == 4.0 and sellers.loc["clinic_a", "chunks"] == 3
    outcomes = pd.read_csv(tmp_path / "out" / "outcomes.csv")
    assert "How the data was read:** 1 of 4 documents" in (tmp_path / "out" / "report.md").read_text()
    assert not outcomes.empty


def test_chunk_settings_are_checked_in_one_line(folder, capsys):
    too_long = scenario(folder, {"chunk_tokens": 400}, name="too_long")
    assert main(["validate", str(too_long)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "buyer.embeddings.chunk_tokens: 400" in err and "8..254" in err, err
    overlap = scenario(folder, {"chunk_tokens": 64, "chunk_overlap": 64}, name="overlap")
    assert main(["validate", str(overlap)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chunk_overlap (64) must be less than chunk_tokens (64)" in err, err
    vectors = scenario(folder, {"documents": "d.npz", "questions": "q.npz", "long_texts": "truncate"}, name="vec")
    assert main(["validate", str(vectors)]) == 2
    assert "not to precomputed vectors" in capsys.readouterr().err
    fine = scenario(folder, {"chunk_tokens": 128, "chunk_overlap": 16}, name="fine")
    assert main(["validate", str(fine)]) == 0
