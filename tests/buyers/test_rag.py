"""RAG buyer: corpora, real embeddings and faiss, coalition merges, utilities, per-query market."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataprice.buyers.rag.game import RAGGame, ReplayScorer, RetrievalScorer
from dataprice.buyers.rag.retrieval import SellerTopK, flat_search
from dataprice.buyers.single_winner.game import SingleWinnerGame
from dataprice.data.corpus import icd10_corpus, load_corpus
from dataprice.errors import DataError
from dataprice.market import SubsetMarket, settle
from dataprice.market.kinds import PerQueryMarket
from dataprice.models.embedder import Embedder
from dataprice.valuation.game import masks_to_coalitions, tabulate
from dataprice.valuation.methods import ExactShapley, LeaveOneOut


@pytest.fixture(scope="module")
def cache(request, tmp_path_factory):
    """Embeddings cached across test runs in pytest's cache folder (fresh in CI)."""
    folder = request.config.cache.mkdir("dataprice-embeddings")
    mp = pytest.MonkeyPatch()
    mp.setenv("DATAPRICE_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def medical(cache):
    corpus = icd10_corpus(6, n_categories=120, n_questions=60, duplicate_sellers=[4], corrupted_sellers=[5], seed=3)
    embedder = Embedder()
    return corpus, embedder.encode(corpus.texts), embedder.encode(corpus.questions)


def test_icd10_corpus_structure():
    corpus = icd10_corpus(5, n_categories=50, n_questions=30, duplicate_sellers=[3], corrupted_sellers=[4], seed=0)
    kinds = pd.Series(corpus.doc_kind)
    assert (kinds == "original").sum() == 50 and (kinds == "duplicate").sum() == 10 == (kinds == "corrupted").sum()
    assert set(corpus.owners[kinds == "duplicate"]) == {3} and set(corpus.owners[kinds == "corrupted"]) == {4}
    rel = corpus.relevance()
    assert rel.any(axis=1).all(), "every question has a document that answers it"
    assert not rel[:, (kinds == "corrupted").to_numpy()].any(), "scrambled copies never answer"
    gold = [corpus.doc_ids.index(g) for g in corpus.gold_doc_ids]
    assert rel[np.arange(len(gold)), gold].all()
    assert icd10_corpus(5, n_categories=50, n_questions=30, seed=0).texts == icd10_corpus(5, n_categories=50, n_questions=30, seed=0).texts


def test_embeddings_are_real_unit_vectors_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path))
    texts = ["Cholera due to Vibrio cholerae", "Cholera, unspecified", "Fracture of the left femur"]
    embedder = Embedder()
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # semantics, not noise
    again = Embedder()
    np.testing.assert_array_equal(again.encode(texts), vectors)
    assert again.n_encoded == 0 and len(list((tmp_path / "embeddings").glob("*.npy"))) == 1


def test_retrieval_finds_the_gold_document(medical):
    corpus, docs, queries = medical
    _, ids = flat_search(docs, queries, 3)
    rel = corpus.relevance()
    hit = np.array([rel[q, ids[q]].any() for q in range(len(ids))])
    assert hit.mean() > 0.8


def test_merged_topk_equals_a_fresh_faiss_search(medical):
    corpus, docs, queries = medical
    topk = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, k=4)
    coalitions = masks_to_coalitions(np.arange(2**corpus.n_sellers), corpus.n_sellers)
    merged = topk.retrieve(coalitions)
    for mask in range(2**corpus.n_sellers):
        members = np.flatnonzero(np.isin(corpus.owners, np.flatnonzero(coalitions[mask])))
        _, local = flat_search(docs[members], queries, 4)
        fresh = np.where(local >= 0, members[np.maximum(local, 0)], -1) if members.size else local
        np.testing.assert_array_equal(merged[mask], fresh, err_msg=f"coalition {mask}")


def test_utility_is_monotone_when_gold_documents_rank_first(medical):
    """Constructed case: keep only questions whose gold document is the nearest of all
    documents and drop the corrupted seller; then adding documents can only help."""
    corpus, docs, queries = medical
    keep_docs = np.flatnonzero(np.array(corpus.doc_kind) != "corrupted")
    _, nearest = flat_search(docs[keep_docs], queries, 1)
    gold = np.array([corpus.doc_ids.index(g) for g in corpus.gold_doc_ids])
    first = np.flatnonzero(keep_docs[nearest[:, 0]] == gold)
    assert first.size >= 20
    sub = corpus.subset_questions(first)
    owners = corpus.owners.copy()
    n = corpus.n_sellers - 1  # seller 5 (corrupted) removed
    topk = SellerTopK(docs[keep_docs], owners[keep_docs], queries[first], n, k=1)
    game = RAGGame(topk, RetrievalScorer(sub.relevance()[:, keep_docs]), value_per_quality=1.0)
    table = tabulate(game)
    masks = np.arange(2**n)
    for j in range(n):
        without = masks[(masks & (1 << j)) == 0]
        assert np.all(table.values[without | (1 << j)] >= table.values[without] - 1e-12)


def test_corrupted_sellers_get_lower_values_than_clean_ones(medical):
    corpus, docs, queries = medical
    topk = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, k=3)
    game = RAGGame(topk, RetrievalScorer(corpus.relevance()), value_per_quality=100)
    for method in (ExactShapley(), LeaveOneOut()):
        values = method.fit(game).result.values
        assert values[5] < values[:4].min(), (method.name, values)
        assert values[5] <= 0.0
    shapley = ExactShapley().fit(game).result.values
    loo = LeaveOneOut().fit(game).result.values
    # the reseller's copies are redundant: LOO sees nothing, Shapley shares the credit
    assert loo[4] <= 0.0 < shapley[4]


def test_replay_scorer_aggregations(tmp_path, medical):
    corpus, docs, queries = medical
    rows = [{"question_id": corpus.question_ids[0], "doc_id": corpus.doc_ids[d], "score": s} for d, s in [(0, 0.2), (1, 0.9)]]
    path = tmp_path / "judge.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    retrieved = np.full((1, corpus.n_questions, 2), -1)
    retrieved[0, 0] = [0, 1]
    for aggregate, expected in [("max", 0.9), ("top1", 0.2), ("mean", 0.55)]:
        scorer = ReplayScorer.from_file(path, corpus, aggregate=aggregate)
        out = scorer(retrieved)
        assert out[0, 0] == pytest.approx(expected) and np.all(out[0, 1:] == 0)
    pd.DataFrame([{"question_id": "nope", "doc_id": corpus.doc_ids[0], "score": 1}]).to_csv(path, index=False)
    with pytest.raises(DataError, match="question 'nope' is not in the corpus"):
        ReplayScorer.from_file(path, corpus)


def _write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + ("\n" if rows else ""))
    else:
        pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_user_corpus_loader(tmp_path, fmt):
    docs = tmp_path / f"docs.{fmt}"
    qs = tmp_path / f"qs.{fmt}"
    _write(docs, [{"doc_id": "d1", "owner": "clinic_a", "text": "Aspirin treats pain."},
                  {"doc_id": "d2", "owner": "clinic_b", "text": "Insulin treats diabetes."}], fmt)
    _write(qs, [{"question_id": "q1", "question": "What treats diabetes?", "gold_doc_id": "d2", "answer": "Insulin"}], fmt)
    corpus = load_corpus(docs, qs)
    assert corpus.seller_names == ["clinic_a", "clinic_b"] and corpus.owners.tolist() == [0, 1]
    assert corpus.relevance().tolist() == [[False, True]]


def test_user_corpus_errors_name_the_file_and_column(tmp_path):
    docs, qs = tmp_path / "docs.csv", tmp_path / "qs.csv"
    pd.DataFrame([{"doc_id": "d1", "text": "x"}]).to_csv(docs, index=False)
    pd.DataFrame([{"question_id": "q1", "question": "?", "gold_doc_id": "d1"}]).to_csv(qs, index=False)
    with pytest.raises(DataError, match=r"docs.csv: documents column 'owner' is missing; columns found: doc_id, text"):
        load_corpus(docs, qs)
    pd.DataFrame([{"doc_id": "d1", "owner": "a", "text": "x"}]).to_csv(docs, index=False)
    pd.DataFrame([{"question_id": "q1", "question": "?", "gold_doc_id": "d9"}]).to_csv(qs, index=False)
    with pytest.raises(DataError, match="gold document 'd9' is not in"):
        load_corpus(docs, qs)
    pd.DataFrame([{"question_id": "q1", "question": "?"}]).to_csv(qs, index=False)
    with pytest.raises(DataError, match="need a 'gold_doc_id' or an 'answer' column"):
        load_corpus(docs, qs)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_corpus(tmp_path / "empty.csv", qs)
    with pytest.raises(DataError, match="documents file not found"):
        load_corpus(tmp_path / "missing.csv", qs)
    with pytest.raises(DataError, match="unsupported documents format"):
        load_corpus(tmp_path / "docs.xlsx", qs) if (tmp_path / "docs.xlsx").write_text("x") else None


def test_per_query_market_pays_the_winner_its_critical_price():
    """Against brute force: each query solved as a subset market over its candidates."""
    rng = np.random.default_rng(0)
    n_owners, n_q, m = 6, 40, 4
    owners = np.array([rng.choice(n_owners, size=m, replace=False) for _ in range(n_q)])
    values = rng.uniform(0, 1, (n_q, m))
    bids = rng.uniform(0, 0.6, n_owners)
    market = PerQueryMarket(values, owners, n_owners)
    # value_bought is LOO (and Shapley) on the selected set: the subset market's LOO
    for rule, subset_rule in (("myerson", "myerson"), ("vcg", "vcg"), ("value_bought", "loo"),
                              ("shapley", "shapley"), ("pay_as_bid", "pay_as_bid")):
        outcome = market.settle(bids, rule, bids)
        expected = np.zeros(n_owners)
        for q in range(n_q):
            sub = SubsetMarket(tabulate(SingleWinnerGame(values[q])))
            o = settle(sub, bids[owners[q]], subset_rule)
            np.add.at(expected, owners[q], o.payments)
        np.testing.assert_allclose(outcome.payments, expected, atol=1e-9, err_msg=rule)
    # and by hand: winner w pays value_w - max(0, best other net value)
    net = values - bids[owners]
    q = int(np.argmax(net.max(axis=1)))
    w = int(np.argmax(net[q]))
    single = PerQueryMarket(values[q : q + 1], owners[q : q + 1], n_owners)
    runner_up = max(0.0, float(np.delete(net[q], w).max()))
    assert single.settle(bids, "myerson").payments[owners[q, w]] == pytest.approx(values[q, w] - runner_up)


def test_per_query_market_is_truthful_under_myerson():
    from dataprice.market.metrics import truthfulness_audit

    rng = np.random.default_rng(1)
    owners = np.array([rng.choice(5, size=3, replace=False) for _ in range(30)])
    values = rng.uniform(0, 1, (30, 3))
    costs = rng.uniform(0, 0.5, 5)
    market = PerQueryMarket(values, owners, 5)
    for rule, truthful in (("myerson", True), ("vcg", True), ("pay_as_bid", False), ("loo", False)):
        gain = truthfulness_audit(market.settle, rule, costs, span=market.value_span(), n_linear=41).gain
        assert (gain.max() <= 1e-9) == truthful, (rule, gain)


def test_lm_reader_utility_scores_each_retrieved_list_once(medical):
    """The reader runs once per distinct (question, retrieved list), whatever the number of
    coalitions that retrieve it; values equal the reader's gain on the concatenated context."""
    from dataprice.buyers.rag.game import ReaderScorer
    from dataprice.buyers.rag.reader import LMReader, ReaderConfig
    from dataprice.models.lm import tiny_causal_lm

    corpus, docs, queries = medical
    sub = corpus.subset_questions(range(6))
    model, tokenizer = tiny_causal_lm()
    reader = LMReader(model, tokenizer, ReaderConfig(max_context_tokens=64, batch_size=16))
    scorer = ReaderScorer(reader, sub)
    topk = SellerTopK(docs, corpus.owners, queries[:6], corpus.n_sellers, k=2)
    game = RAGGame(topk, scorer, value_per_quality=10.0)
    coalitions = masks_to_coalitions(np.arange(2**corpus.n_sellers), corpus.n_sellers)
    values = game(coalitions)
    retrieved = topk.retrieve(coalitions)
    distinct = {(q, tuple(r[r >= 0])) for b in range(len(coalitions)) for q, r in enumerate(retrieved[b]) if (r >= 0).any()}
    assert scorer.n_unique == len(distinct) < len(coalitions) * 6
    forward = reader.n_forward_items
    game(coalitions)  # everything cached now
    assert reader.n_forward_items == forward
    assert values[0] == 0.0
    b, q = 37, 2
    docs_q = [d for d in retrieved[b, q] if d >= 0]
    expected = reader.gain([("\n\n".join(corpus.texts[d] for d in docs_q), sub.questions[q], sub.answers[q])])[0]
    assert scorer(retrieved[b : b + 1])[0, q] == pytest.approx(expected)


def test_user_corpus_scenario_with_replay_and_reader_runs_from_the_cli(tmp_path, cache):
    """A user's files, relative paths, a replayed judge table, and the per-query market with
    LM-reader values (tiny LM): every path from scenario file to report."""
    import yaml

    from dataprice.cli import main

    data = tmp_path / "data"
    data.mkdir()
    docs = [
        ("d1", "north", "Metformin is the first-line drug for type 2 diabetes."),
        ("d2", "north", "Aspirin relieves mild pain and reduces fever."),
        ("d3", "south", "Insulin lowers blood glucose in type 1 diabetes."),
        ("d4", "south", "Amoxicillin is an antibiotic for bacterial infections."),
        ("d5", "east", "Metformin is the first-line drug for type 2 diabetes."),
        ("d6", "east", "Salbutamol relieves asthma attacks."),
    ]
    pd.DataFrame(docs, columns=["doc_id", "owner", "text"]).to_csv(data / "docs.csv", index=False)
    qs = [("q1", "Which drug is first-line for type 2 diabetes?", "d1", "Metformin"),
          ("q2", "What treats bacterial infections?", "d4", "Amoxicillin"),
          ("q3", "What relieves asthma attacks?", "d6", "Salbutamol")]
    pd.DataFrame(qs, columns=["question_id", "question", "gold_doc_id", "answer"]).to_csv(data / "questions.csv", index=False)
    judge = [("q1", "d1", 0.9), ("q1", "d5", 0.8), ("q2", "d4", 1.0), ("q3", "d6", 0.7)]
    pd.DataFrame(judge, columns=["question_id", "doc_id", "score"]).to_csv(data / "judge.csv", index=False)
    corpus = {"source": "files", "documents": "data/docs.csv", "questions": "data/questions.csv"}
    coalition = {
        "name": "clinics", "sellers": {"count": 3, "costs": [0.1, 0.1, 0.1]},
        "buyer": {"task": "rag", "corpus": corpus, "top_k": 1, "utility": "replay",
                  "replay_file": "data/judge.csv", "value_per_quality": 10},
        "valuation": [{"method": "exact_shapley"}], "audit": {"enabled": False},
    }
    (tmp_path / "clinics.yaml").write_text(yaml.safe_dump(coalition))
    assert main(["run", str(tmp_path / "clinics.yaml"), "--out", str(tmp_path / "r1"), "--quiet"]) == 0
    sellers = pd.read_csv(tmp_path / "r1" / "sellers.csv").set_index("seller")
    assert list(sellers.index) == ["north", "south", "east"]
    # v(N) = 10 * (0.9 + 1.0 + 0.7) / 3; south answers q2 alone, east q3 alone, q1 is shared
    assert sellers["value[exact_shapley]"].sum() == pytest.approx(10 * 2.6 / 3)
    assert sellers.loc["south", "value[exact_shapley]"] == pytest.approx(10 / 3)

    per_query = {
        "name": "clinics_pq", "sellers": {"count": 3, "costs": [0.0, 0.0, 0.0]},
        "buyer": {"task": "rag_single_document", "corpus": corpus, "candidates": 3,
                  "value_source": "lm_reader", "reader": {"model": "tiny", "max_context_tokens": 32}},
        "valuation": [{"method": "loo"}], "audit": {"grid_points": 5},
    }
    (tmp_path / "pq.yaml").write_text(yaml.safe_dump(per_query))
    assert main(["run", str(tmp_path / "pq.yaml"), "--out", str(tmp_path / "r2"), "--quiet"]) == 0
    mech = pd.read_csv(tmp_path / "r2" / "mechanisms.csv").set_index("rule")
    assert mech.loc["myerson", "total_paid"] == pytest.approx(mech.loc["vcg", "total_paid"])

    wrong = {**coalition, "sellers": {"count": 4, "costs": [0.1] * 4}}
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    assert main(["run", str(tmp_path / "wrong.yaml"), "--out", str(tmp_path / "r3"), "--quiet"]) == 2
    assert not (tmp_path / "r3").exists()


def test_relevance_with_both_gold_ids_and_answers_must_be_chosen(tmp_path, capsys):
    """A questions file with both `gold_doc_id` and `answer` defines relevance two ways (the
    gold document only, or every document containing the answer): valued by retrieval, the
    scenario must say which (`validate` and `run` refuse it in one line, no report); each
    choice gives its own relevance. Scored by replay, relevance is unused and both may stay."""
    import yaml

    from dataprice.buyers.rag.corpus import build_corpus
    from dataprice.cli import main
    from dataprice.scenario import load_scenario

    pd.DataFrame([("d1", "north", "Metformin treats type 2 diabetes."),
                  ("d2", "south", "Metformin is also studied for ageing."),
                  ("d3", "south", "Salbutamol relieves asthma.")],
                 columns=["doc_id", "owner", "text"]).to_csv(tmp_path / "docs.csv", index=False)
    pd.DataFrame([("q1", "What treats diabetes?", "d1", "Metformin")],
                 columns=["question_id", "question", "gold_doc_id", "answer"]).to_csv(tmp_path / "qs.csv", index=False)
    data = {
        "name": "both", "sellers": {"count": 2, "costs": {"north": 0.1, "south": 0.1}},
        "buyer": {"task": "rag", "corpus": {"source": "files", "documents": "docs.csv", "questions": "qs.csv"},
                  "top_k": 1, "utility": "retrieval"},
        "valuation": [{"method": "loo"}], "audit": {"enabled": False},
    }
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "question 'q1' has both a gold document" in err and "buyer.corpus.relevance" in err
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "set buyer.corpus.relevance to 'gold' or 'answer'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    relevant = {}
    for choice in ("gold", "answer"):
        data["buyer"]["corpus"]["relevance"] = choice
        path.write_text(yaml.safe_dump(data))
        assert main(["validate", str(path)]) == 0
        scenario = load_scenario(path)
        relevant[choice] = build_corpus(scenario.buyer.corpus, 2, 0).relevance()[0].tolist()
    assert relevant == {"gold": [True, False, False], "answer": [True, True, False]}

    (tmp_path / "judge.csv").write_text("question_id,doc_id,score\nq1,d1,0.9\n")
    del data["buyer"]["corpus"]["relevance"]
    data["buyer"].update(utility="replay", replay_file="judge.csv")
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 0


def test_the_lm_reader_game_offers_retrieval_on_the_same_ranking_as_its_proxy(medical):
    """A control variate for sampling: the reader's game offers hit@k of the same top-k (no
    reader pass), the retrieval game offers nothing."""
    from dataprice.buyers.rag.game import ReaderScorer, RetrievalScorer
    from dataprice.buyers.rag.reader import LMReader, ReaderConfig
    from dataprice.models.lm import tiny_causal_lm
    from dataprice.valuation.game import CachedGame

    corpus, docs, queries = medical
    sub = corpus.subset_questions(range(6))
    model, tokenizer = tiny_causal_lm()
    reader = LMReader(model, tokenizer, ReaderConfig(max_context_tokens=64, batch_size=16))
    topk = SellerTopK(docs, corpus.owners, queries[:6], corpus.n_sellers, k=2)
    game = RAGGame(topk, ReaderScorer(reader, sub), value_per_quality=10.0)
    proxy = CachedGame(game).proxy_game()
    retrieval = RAGGame(topk, RetrievalScorer(sub.relevance(), "hit"), value_per_quality=10.0)
    coalitions = masks_to_coalitions(np.arange(2**corpus.n_sellers), corpus.n_sellers)
    np.testing.assert_array_equal(proxy(coalitions), retrieval(coalitions))
    assert proxy.player_names == game.player_names and reader.n_forward_items == 0
    assert retrieval.proxy_game() is None


def test_retrieval_offers_hit_and_mrr_for_utility_robustness(medical):
    """The retrieval game under each metric, the declared one first and itself; MRR never
    exceeds hit@k for any coalition; the utility comparison of the two rankings is finite."""
    from dataprice.valuation.game import tabulate
    from dataprice.valuation.robustness import compare_utilities

    corpus, docs, queries = medical
    topk = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, k=3)
    game = RAGGame(topk, RetrievalScorer(corpus.relevance(), "mrr"), value_per_quality=100)
    variants = game.utility_variants()
    assert list(variants) == ["mrr", "hit"] and variants["mrr"] is game
    fresh = RAGGame(topk, RetrievalScorer(corpus.relevance(), "hit"), value_per_quality=100)
    hit, mrr = tabulate(variants["hit"]).values, tabulate(game).values
    np.testing.assert_array_equal(hit, tabulate(fresh).values)
    assert np.all(mrr <= hit + 1e-12) and np.any(mrr < hit)
    values = {name: ExactShapley().fit(tabulate(g)).result.values for name, g in variants.items()}
    (comparison,) = compare_utilities(values, "mrr")
    assert np.isfinite(comparison.spearman) and 0.0 <= comparison.swapped <= 1.0
