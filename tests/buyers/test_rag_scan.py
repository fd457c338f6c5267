"""The RAG coalition top-k by a rank-ordered scan (:meth:`SellerTopK.positions`), against a
brute-force search over each coalition's documents, ties included, and every scorer of
:class:`RAGGame` against the same scorer on the brute-force documents, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from dataprice.buyers.rag.game import RAGGame, ReplayScorer, RetrievalScorer
from dataprice.buyers.rag.retrieval import SellerTopK
from dataprice.valuation.game import masks_to_coalitions


def instance(seed: int, n: int, k: int, n_q: int = 7):
    """Documents and questions with small integer coordinates, so inner products are exact
    (in faiss's float32 as in float64) and equal scores are common: repeated vectors within
    and across sellers, sellers with fewer than k documents, a seller with none. At most
    ``k + 8`` documents per seller (the ties faiss's per-seller search orders exactly)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(-2, 3, size=(6, 4)).astype(np.float32)  # few distinct vectors: ties
    sizes = rng.integers(0, k + 9, size=n)
    if n > 2:
        sizes[rng.integers(n)] = 0
    owners = np.repeat(np.arange(n), sizes)
    rng.shuffle(owners)  # documents of a seller not contiguous
    docs = palette[rng.integers(0, len(palette), size=owners.size)]
    queries = rng.integers(-2, 3, size=(n_q, 4)).astype(np.float32)
    return docs, owners.astype(np.int64), queries


def brute_force(docs, owners, queries, coalitions, k):
    """``int64[B, Q, k]``: per coalition and question, its members' documents ranked by
    (score descending, document index ascending), the first k, ``-1`` padded."""
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    out = np.full((len(coalitions), len(queries), k), -1, dtype=np.int64)
    for b, row in enumerate(coalitions):
        members = np.flatnonzero(row[owners])
        for q in range(len(queries)):
            ranked = members[np.lexsort((members, -scores[q, members]))][:k]
            out[b, q, : ranked.size] = ranked
    return out


def coalitions_for(n: int, rng: np.random.Generator) -> np.ndarray:
    """All coalitions up to 8 sellers; else the empty, the grand, the singletons and random ones."""
    if n <= 8:
        return masks_to_coalitions(np.arange(2**n), n)
    fixed = np.concatenate([np.zeros((1, n), bool), np.ones((1, n), bool), np.eye(n, dtype=bool)])
    return np.concatenate([fixed, rng.random((150, n)) < rng.uniform(0.05, 0.9, size=(150, 1))])


CASES = [(seed, n, k) for seed, (n, k) in enumerate([(1, 1), (2, 3), (3, 1), (4, 2), (5, 4), (6, 3), (8, 2),
                                                      (7, 8), (9, 6), (12, 5), (14, 9), (20, 3)])]


@pytest.mark.parametrize(("seed", "n", "k"), CASES)
def test_scan_equals_brute_force_with_ties(seed, n, k):
    """The scan's top-k is the brute-force top-k over the coalition's documents, for every
    coalition: empty, fewer than k documents, ties within and across sellers, and more than
    52 ranked candidates (the bit masks' word, then the count over later ranks)."""
    docs, owners, queries = instance(seed, n, k)
    topk = SellerTopK(docs, owners, queries, n, k)
    coalitions = coalitions_for(n, np.random.default_rng(seed))
    expected = brute_force(docs, owners, queries, coalitions, k)
    retrieved = topk.retrieve(coalitions)
    assert retrieved.dtype == np.int64 and retrieved.shape == expected.shape
    np.testing.assert_array_equal(retrieved, expected)
    positions = topk.positions(coalitions)
    assert positions.flags.c_contiguous
    q_index = np.arange(len(queries))[None, :, None]
    padded = np.concatenate([topk.ranked_docs, np.full((len(queries), 1), -1)], axis=1)  # position -1: none
    np.testing.assert_array_equal(padded[q_index, positions], expected)
    # blocks of a few coalitions give the same positions
    np.testing.assert_array_equal(topk.positions(coalitions, block=3 * len(queries) * k), positions)


def test_scan_is_exercised_past_one_word_of_ranks():
    """Some cases rank more candidates than one bit mask holds (52), and single sellers'
    top-k then reach past it (the count over later ranks)."""
    reached = False
    for seed, n, k in CASES:
        docs, owners, queries = instance(seed, n, k)
        topk = SellerTopK(docs, owners, queries, n, k)
        if topk.ranked_docs.shape[1] > 52:
            reached |= bool((topk.positions(np.eye(n, dtype=bool)) >= 52).any())
    assert reached


def scorers(relevance, table):
    yield RetrievalScorer(relevance, "hit")
    yield RetrievalScorer(relevance, "mrr")
    for aggregate in ("max", "top1", "mean"):
        yield ReplayScorer(table, aggregate)


@pytest.mark.parametrize(("seed", "n", "k"), [(0, 4, 3), (1, 6, 9), (2, 9, 12), (3, 14, 5)])
def test_game_scores_equal_the_scorers_on_brute_force_lists_bit_for_bit(seed, n, k):
    """Every scorer RAGGame reads at ranked positions (hit, mrr, replay max/top1/mean, the
    mean's pairwise sum at k >= 8 included) gives the floats the scorer gives on the
    brute-force documents, bit for bit; ties and NaNs in the replayed table included."""
    docs, owners, queries = instance(seed, n, k)
    rng = np.random.default_rng(seed)
    n_docs, n_q = len(docs), len(queries)
    relevance = rng.random((n_q, n_docs)) < 0.3
    table = rng.choice([0.0, 0.25, 0.5, 1.0 / 3.0, 0.1, np.nan, -0.0], size=(n_q, n_docs))
    coalitions = coalitions_for(n, rng)
    expected_docs = brute_force(docs, owners, queries, coalitions, k)
    topk = SellerTopK(docs, owners, queries, n, k)
    for scorer in scorers(relevance, table):
        game = RAGGame(topk, scorer, value_per_quality=2.5, batch_size=17)
        got = game.question_scores(coalitions)
        want = scorer(expected_docs)
        assert got.dtype == want.dtype == np.float64 and got.shape == want.shape == (len(coalitions), n_q)
        assert got.tobytes() == want.tobytes(), (type(scorer).__name__, getattr(scorer, "aggregate", None))
        values = game(coalitions)
        assert values.tobytes() == (2.5 * want.mean(axis=1)).tobytes()
        assert values[~coalitions.any(axis=1)].tolist() == [0.0] * int((~coalitions.any(axis=1)).sum())


def test_no_documents_at_all():
    """Sellers without documents: every coalition retrieves nothing and scores 0."""
    docs = np.zeros((0, 4), dtype=np.float32)
    queries = np.ones((3, 4), dtype=np.float32)
    topk = SellerTopK(docs, np.zeros(0, dtype=np.int64), queries, 3, 2)
    coalitions = masks_to_coalitions(np.arange(8), 3)
    assert topk.ranked_docs.shape == (3, 0)
    assert (topk.retrieve(coalitions) == -1).all()
    game = RAGGame(topk, RetrievalScorer(np.zeros((3, 0), dtype=bool)))
    assert (game(coalitions) == 0).all()


@pytest.mark.parametrize("word", [1, 5])
def test_scan_past_a_narrow_word_equals_brute_force(monkeypatch, word):
    """With the bit masks narrowed to ``word`` ranks, most (coalition, question) pairs go on
    to the count over later ranks, in chunks: the same top-k as brute force."""
    import dataprice.buyers.rag.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_WORD", word)
    for seed, n, k in CASES:
        docs, owners, queries = instance(seed, n, k)
        topk = SellerTopK(docs, owners, queries, n, k)
        coalitions = coalitions_for(n, np.random.default_rng(seed))
        expected = brute_force(docs, owners, queries, coalitions, k)
        np.testing.assert_array_equal(topk.retrieve(coalitions), expected, err_msg=f"case {seed, n, k}")
        # small blocks: a few coalitions at a time, and chunks of as few as k ranks
        positions = topk.positions(coalitions, block=2 * len(queries) * k)
        np.testing.assert_array_equal(positions, topk.positions(coalitions), err_msg=f"case {seed, n, k}")
