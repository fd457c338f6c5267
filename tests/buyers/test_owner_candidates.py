"""The per-query buyer's candidates (:func:`owner_candidates`) equal the ones built from
:class:`SellerTopK` over all sellers (the code they replace), ties included."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.buyers.rag.retrieval import SellerTopK, flat_search, owner_candidates


def candidates_from_topk(best: SellerTopK, m: int):
    """The previous computation: every seller's best document, owners sorted by score (stable)."""
    order = np.argsort(-best.scores[:, :, 0].astype(np.float64), axis=1, kind="stable")[:, :m]
    return (np.take_along_axis(best.scores[:, :, 0], order, axis=1),
            np.take_along_axis(best.doc_ids[:, :, 0], order, axis=1))


def random_corpus(rng, n_owners, n_docs, n_queries, dim, duplicates):
    """Unit vectors with exact duplicates (within and across owners), a few empty owners,
    and queries that repeat documents (so that ties sit at the top)."""
    docs = rng.standard_normal((n_docs, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    owners = rng.integers(0, n_owners, n_docs)
    owners[owners == n_owners - 1] = 0  # the last owner has no documents
    copies = rng.choice(n_docs, size=min(duplicates, n_docs), replace=True)
    docs[rng.choice(n_docs, size=copies.size, replace=False)] = docs[copies]
    queries = rng.standard_normal((n_queries, dim)).astype(np.float32)
    queries[: n_queries // 3] = docs[rng.choice(n_docs, n_queries // 3)]  # a query equal to a document
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return docs, owners, queries


@pytest.mark.parametrize("seed", range(6))
def test_same_candidates_as_seller_topk(seed):
    rng = np.random.default_rng(seed)
    n_owners = int(rng.integers(3, 40))
    # faiss computes inner products sequentially below 128,000 query numbers (queries x dims), by BLAS above
    n_queries, dim = [(7, 8), (60, 32), (400, 384)][seed % 3]
    docs, owners, queries = random_corpus(rng, n_owners, int(rng.integers(n_owners, 300)), n_queries,
                                          dim, duplicates=40)
    best = SellerTopK(docs, owners, queries, n_owners, 1)
    for m, block in ((1, 256), (3, 5), (n_owners, 7), (n_owners + 2, 256)):
        scores, ids = owner_candidates(docs, owners, queries, n_owners, m, owner_block=block)
        want_scores, want_ids = candidates_from_topk(best, min(m, n_owners))
        np.testing.assert_array_equal(ids[:, :n_owners], want_ids)
        np.testing.assert_array_equal(scores[:, :n_owners], want_scores)
        assert (ids[:, n_owners:] == -1).all()


def test_ties_break_by_owner_then_document():
    """Two owners hold the same vector twice: the lower owner index ranks first, and each
    owner's best is its lower document index."""
    base = np.eye(4, dtype=np.float32)
    docs = np.stack([base[1], base[0], base[0], base[0], base[0], base[2]])
    owners = np.array([1, 1, 1, 0, 0, 2])
    scores, ids = owner_candidates(docs, owners, base[:1], 4, 4)
    assert ids.tolist() == [[3, 1, 5, -1]]
    assert scores.tolist() == [[1.0, 1.0, 0.0, -np.inf]]


def test_flat_search_pads_and_orders_ties():
    docs = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    scores, ids = flat_search(docs, np.array([[1, 0]], dtype=np.float32), 5)
    assert ids.tolist() == [[0, 2, 1, -1, -1]]
    assert scores[0, :3].tolist() == [1.0, 1.0, 0.0] and np.isneginf(scores[0, 3:]).all()


@pytest.mark.parametrize("relevance_from", ["auto", "gold", "answer"])
def test_relevance_at_candidates_is_relevance(relevance_from):
    """The candidates' relevance equals the full (questions x documents) table's, by
    evidence passage (built-in corpus), gold id or answer."""
    from dataclasses import replace

    from dataprice.data.corpus import icd10_corpus

    corpus = icd10_corpus(5, n_categories=40, n_questions=30, duplicate_sellers=[3], corrupted_sellers=[4], seed=1)
    rng = np.random.default_rng(0)
    answers = [None if q % 4 == 0 else corpus.texts[rng.integers(corpus.n_documents)].split()[1]
               for q in range(corpus.n_questions)]
    for variant in (corpus, replace(corpus, answers=answers, evidence=[], relevance_from=relevance_from)):
        rows = rng.integers(-1, variant.n_documents, (variant.n_questions, 6))
        full = variant.relevance()
        want = np.where(rows >= 0, full[np.arange(variant.n_questions)[:, None], np.maximum(rows, 0)], False)
        np.testing.assert_array_equal(variant.relevance_at(rows), want)
        assert want.any()


def test_candidates_do_not_depend_on_the_thread_count():
    """On faiss's BLAS path (400 queries x 384 dims) the scores would depend on how many
    threads split the product; searches run on one thread, and the setting is restored."""
    import faiss

    rng = np.random.default_rng(7)
    docs, owners, queries = random_corpus(rng, 30, 600, 400, 384, duplicates=20)
    before = faiss.omp_get_max_threads()
    try:
        found = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            found.append(owner_candidates(docs, owners, queries, 30, 10))
            assert faiss.omp_get_max_threads() == threads
    finally:
        faiss.omp_set_num_threads(before)
    np.testing.assert_array_equal(found[0][0], found[1][0])
    np.testing.assert_array_equal(found[0][1], found[1][1])
