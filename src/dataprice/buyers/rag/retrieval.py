"""Dense retrieval for the RAG buyers: faiss search, per-seller top-k lists, a coalition's top-k.

* :func:`flat_search` is exact inner-product search with faiss (on unit-norm embeddings from
  :class:`~dataprice.models.embedder.Embedder`, the cosine similarity).
* :func:`owner_candidates` is the per-query buyer's candidate list: per query, the best
  document of each of the ``m`` owners most similar to it, in memory that does not grow
  with the number of owners times queries.
* :class:`SellerTopK` precomputes, for every question and seller, the seller's own top-k
  documents (one faiss inner-product index per seller). The top-k of a coalition is a
  subset of the union of its members' top-k lists: with that union ranked once per
  question, it is the first k candidates in rank order whose seller is in the coalition.
  :meth:`SellerTopK.retrieve` finds them for a whole batch of coalitions at once with array
  operations, with no index rebuilt.

Ties are broken by document index (lower first) everywhere, so a coalition's top-k and a
fresh search over its documents agree exactly. Searches run on one thread, so scores do not
depend on the machine's core count or the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataprice.threads import one_blas_thread


@contextmanager
def _one_thread(faiss: Any) -> Iterator[None]:
    """faiss searches on one thread, the thread count restored after. On its BLAS path (from
    ``queries x dimension >= faiss.cvar.distance_compute_blas_threshold``) the float32 inner
    products depend on how many threads split the matrix product, which would make near-ties,
    hence candidates and payments, depend on the machine and the engine (Dask workers run
    one thread each); one thread gives the same numbers everywhere."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


#: Ranked positions a dense bit mask covers per question: sums of distinct powers of two
#: below ``2**52`` are exact in float64, so one BLAS product gives every coalition's mask.
_WORD = 52


def _member_sums(coalitions: NDArray[np.bool_], per_seller: NDArray[np.float64]) -> NDArray[np.uint64]:
    """``sum_s coalitions[b, s] * per_seller[s, c]`` as ``uint64[b, C]``, exact: the columns
    hold non-negative integers whose sum over all sellers is below ``2**53`` (disjoint bit
    masks below ``2**_WORD``, or counts of ranked candidates), so every partial sum is an
    exact integer, whatever order BLAS adds them in. On one BLAS thread: the product is
    small, and a second thread on a busy machine made it 20 to 80 times slower
    (``b = 400..512`` coalitions, 16 sellers, 200 questions)."""
    with one_blas_thread():
        product = coalitions.astype(np.float64) @ per_seller
    return product.astype(np.uint64)


def flat_search(
    doc_embeddings: NDArray[np.float32], query_embeddings: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact inner-product search with faiss; ties by lower document index.

    Returns ``(scores, ids)`` of shape ``(n_queries, k)``; rows are padded with ``-inf``
    and ``-1`` when there are fewer than ``k`` documents.
    """
    import faiss

    n_docs = doc_embeddings.shape[0]
    n_q = query_embeddings.shape[0]
    scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    ids = np.full((n_q, k), -1, dtype=np.int64)
    if n_docs == 0 or n_q == 0:
        return scores, ids
    index = faiss.IndexFlatIP(doc_embeddings.shape[1])
    index.add(np.ascontiguousarray(doc_embeddings, dtype=np.float32))
    # ask for a few more than k so that ties at the boundary can be ordered by index
    extra = min(n_docs, k + 8)
    with _one_thread(faiss):
        found_scores, found_ids = index.search(np.ascontiguousarray(query_embeddings, dtype=np.float32), extra)
    # per row: valid results by (-score, id), invalid ones (-1) last
    valid = found_ids >= 0
    order = np.lexsort((np.where(valid, found_ids, np.iinfo(np.int64).max),
                        np.where(valid, -found_scores, np.float32(0)), ~valid), axis=1)[:, :k]
    kept = np.take_along_axis(valid, order, axis=1)
    width = order.shape[1]
    scores[:, :width] = np.where(kept, np.take_along_axis(found_scores, order, axis=1), -np.inf)
    ids[:, :width] = np.where(kept, np.take_along_axis(found_ids, order, axis=1), -1)
    return scores, ids


def _members_by_owner(owners: NDArray[np.int64], n_owners: int) -> list[NDArray[np.int64]]:
    """The document indices of each owner ``0..n_owners-1``, ascending (one pass over ``owners``)."""
    owners = np.asarray(owners, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(n_owners + 1))
    return [order[bounds[o]:bounds[o + 1]] for o in range(n_owners)]


def owner_candidates(
    doc_embeddings: NDArray[np.float32],
    owners: NDArray[np.int64],
    query_embeddings: NDArray[np.float32],
    n_owners: int,
    m: int,
    *,
    owner_block: int = 256,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Per query, the best document of each of the ``m`` owners most similar to it.

    Owners are ranked per query by their best document's score (inner product), ties by
    lower owner index; an owner's best document is its highest-scoring one, ties by lower
    document index. Owners without documents rank last (``-inf``, document ``-1``), and
    rows are padded with ``-inf`` / ``-1`` when ``m`` exceeds the number of owners.

    The scores are exactly those of :class:`SellerTopK` with ``k = 1`` (one faiss search
    over each owner's documents, all queries at once): the float32 inner products faiss
    returns depend on the shape of the search (its BLAS kernel for a block of database rows),
    so a single search over all documents can differ in the last bits and reorder ties. What
    changes is the memory: owners are folded in blocks of ``owner_block`` into a running
    top-``m``, so no ``(queries, owners)`` array is built; memory is
    ``O(queries x (m + owner_block))``.

    Returns:
        ``(scores, doc_ids)``, each ``(n_queries, m)``: the owners' best scores and their
        global document indices, most similar owner first.
    """
    n_q = query_embeddings.shape[0]
    best_scores = np.empty((n_q, 0), dtype=np.float32)
    best_owner = np.empty((n_q, 0), dtype=np.int64)
    best_doc = np.empty((n_q, 0), dtype=np.int64)
    members = _members_by_owner(owners, n_owners)
    for start in range(0, n_owners, owner_block):
        stop = min(start + owner_block, n_owners)
        scores = np.full((n_q, stop - start), -np.inf, dtype=np.float32)
        docs = np.full((n_q, stop - start), -1, dtype=np.int64)
        for column, owner in enumerate(range(start, stop)):
            mine = members[owner]
            if mine.size == 0:
                continue
            s, local = flat_search(doc_embeddings[mine], query_embeddings, 1)
            scores[:, column] = s[:, 0]
            docs[:, column] = np.where(local[:, 0] >= 0, mine[np.maximum(local[:, 0], 0)], -1)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_owner = np.concatenate([best_owner, np.broadcast_to(np.arange(start, stop), (n_q, stop - start))], axis=1)
        all_doc = np.concatenate([best_doc, docs], axis=1)
        keep = np.lexsort((all_owner, -all_scores.astype(np.float64)), axis=1)[:, :m]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_owner = np.take_along_axis(all_owner, keep, axis=1)
        best_doc = np.take_along_axis(all_doc, keep, axis=1)
    width = best_scores.shape[1]
    if width < m:
        best_scores = np.concatenate([best_scores, np.full((n_q, m - width), -np.inf, dtype=np.float32)], axis=1)
        best_doc = np.concatenate([best_doc, np.full((n_q, m - width), -1, dtype=np.int64)], axis=1)
    return best_scores, best_doc


class SellerTopK:
    """Per-question, per-seller top-k lists, and the top-k of batches of coalitions.

    Each question's candidates (the union of all sellers' top-k lists) are ranked once, by
    score (descending, compared in float64), then document index (ascending); padding
    (``-1``, score ``-inf``) ranks after every document. The top-k of a coalition ``S`` is
    then the first ``k`` candidates in rank order whose seller is in ``S``:

        ``R_S(q) = (c_q[j_1], ..., c_q[j_k])``, ``j_1 < ... < j_k`` the first ``k`` positions
        ``j`` with ``owner_q[j] in S``,

    padded with ``-1`` when fewer exist. This is exactly the top-k of a fresh search over
    ``S``'s documents: a coalition's top-k is a subset of its members' top-k lists.

    Attributes:
        scores: ``(Q, n, k)`` similarity of each seller's k best documents per question.
        doc_ids: ``(Q, n, k)`` their global document indices (``-1`` padding).
        ranked_docs: ``(Q, L)`` each question's candidates in rank order (``-1``: padding);
            ``L <= n k`` drops the padding that ranks after every document of every
            question (it could only ever be retrieved as ``-1``).
        ranked_owners: ``(Q, L)`` the seller of each ranked candidate.
    """

    def __init__(
        self,
        doc_embeddings: NDArray[np.float32],
        owners: NDArray[np.int64],
        query_embeddings: NDArray[np.float32],
        n_sellers: int,
        k: int,
    ) -> None:
        self.k = int(k)
        self.n_sellers = int(n_sellers)
        n_q = query_embeddings.shape[0]
        self.scores = np.full((n_q, n_sellers, k), -np.inf, dtype=np.float32)
        self.doc_ids = np.full((n_q, n_sellers, k), -1, dtype=np.int64)
        for seller, members in enumerate(_members_by_owner(owners, n_sellers)):
            if members.size == 0:  # a seller without documents: padding only
                continue
            s, local = flat_search(doc_embeddings[members], query_embeddings, k)
            self.scores[:, seller] = s
            self.doc_ids[:, seller] = np.where(local >= 0, members[np.maximum(local, 0)], -1)
        flat_scores = self.scores.reshape(n_q, -1)
        flat_ids = self.doc_ids.reshape(n_q, -1)
        sort_ids = np.where(flat_ids >= 0, flat_ids, np.iinfo(np.int64).max)
        order = np.lexsort((sort_ids, -flat_scores.astype(np.float64)), axis=1)
        ranked_docs = np.take_along_axis(flat_ids, order, axis=1)
        real = np.flatnonzero((ranked_docs >= 0).any(axis=0))
        length = int(real[-1]) + 1 if real.size else 0
        self.ranked_docs = np.ascontiguousarray(ranked_docs[:, :length])
        self.ranked_owners = np.ascontiguousarray(order[:, :length] // self.k).astype(np.intp)
        # bit j of masks[s, q]: the candidate at rank j < _WORD of question q is seller s's;
        # then, past _WORD ranks, later[s, q]: how many of the candidates at ranks >= _WORD are
        masks = np.zeros((n_sellers, n_q), dtype=np.float64)
        questions = np.arange(n_q)
        for j in range(min(length, _WORD)):
            masks[self.ranked_owners[:, j], questions] += float(2**j)
        later = np.zeros((n_sellers, n_q), dtype=np.float64)
        if length > _WORD:
            np.add.at(later, (self.ranked_owners[:, _WORD:], questions[:, None]), 1.0)
        self._per_seller = np.concatenate([masks, later], axis=1) if length > _WORD else masks
        # rank of each seller's candidates, (Q, n, k), for the pairs of small coalitions past _WORD
        seller_ranks = np.empty((n_q, n_sellers * self.k), dtype=np.int32)
        np.put_along_axis(seller_ranks, order, np.arange(order.shape[1], dtype=np.int32)[None, :], axis=1)
        self._seller_ranks = seller_ranks.reshape(n_q, n_sellers, self.k)
        # the documents by position after a first -1, flattened: position p of question q
        # (-1: none) is entry q (L + 1) + 1 + p
        self._docs_or_none = np.concatenate([np.full((n_q, 1), -1, dtype=np.int64), self.ranked_docs], axis=1).ravel()
        self._offsets = (np.arange(n_q, dtype=np.intp) * (length + 1) + 1)[:, None]

    @property
    def n_questions(self) -> int:
        return self.scores.shape[0]

    def positions(self, coalitions: NDArray[np.bool_], *, block: int = 1 << 20) -> NDArray[np.intp]:
        """Rank positions of every coalition's top-k, best first: ``ranked_docs[q, p]`` is
        the document retrieved (``-1`` where the coalition has fewer than k documents).

        Coalitions are taken in blocks of about ``block`` (coalition, question, slot)
        entries, so memory is ``O(block)`` besides the result.

        Args:
            coalitions: ``bool[B, n]``.

        Returns:
            ``intp[B, Q, k]``, C-contiguous.
        """
        coalitions = np.asarray(coalitions, dtype=bool)
        b = coalitions.shape[0]
        q_count, k = self.n_questions, self.k
        out = np.full((b, q_count, k), -1, dtype=np.intp)
        rows = max(1, block // max(q_count * k, 1))
        for start in range(0, b, rows):
            self._scan(coalitions[start : start + rows], out[start : start + rows], block)
        return out

    def _scan(self, coalitions: NDArray[np.bool_], out: NDArray[np.intp], block: int) -> None:
        """Fill ``out`` (``(b, Q, k)``, all ``-1``, ``b Q k <= block`` unless ``b = 1``) with
        the positions of the first ``k`` candidates whose owner is in the coalition.

        The first ``_WORD`` ranks by bit masks: ``mask[b, q] = sum_{s in S_b} masks[s, q]``
        (one matrix product; owners' masks are disjoint, so the sum is their union) holds a
        bit per present candidate; slot ``i`` is the lowest set bit left after clearing
        ``i`` of them. The rest, only for (coalition, question) pairs with fewer than ``k``
        candidates among those ranks and some among the later ones (their number is
        ``sum_{s in S_b} later[s, q]``, in the same product), by :meth:`_members_later` for
        coalitions of at most ``sqrt(n)`` sellers, else :meth:`_count_later`.
        """
        length = self.ranked_docs.shape[1]
        if length == 0 or coalitions.shape[0] == 0:
            return
        k = self.k
        sums = _member_sums(coalitions, self._per_seller)  # (b, Q) bit masks, then (b, Q) later counts
        q_count = self.n_questions
        bits = sums[:, :q_count]
        one = np.uint64(1)
        for slot in range(k):
            if not bits.any():
                break
            rest = bits & (bits - one)  # the lowest set bit cleared (0 stays 0)
            lowest = (bits ^ rest).astype(np.float64)  # 2^j, exact, or 0
            # the float64 2^j has exponent field 1023 + j, and 0 has 0: j, or -1 for none
            np.maximum((lowest.view(np.int64) >> 52) - 1023, -1, out=out[:, :, slot])
            bits = rest
        if length <= _WORD:
            return
        short = (out[:, :, k - 1] < 0) & (sums[:, q_count:] > 0)
        sizes = np.count_nonzero(coalitions, axis=1)
        small = sizes * sizes <= self.n_sellers
        pair_b, pair_q = np.nonzero(short & small[:, None])
        self._members_later(coalitions, sizes, out, pair_b, pair_q, block)
        pair_b, pair_q = np.nonzero(short & ~small[:, None])
        self._count_later(coalitions, sums[:, q_count:].astype(np.intp), out, pair_b, pair_q, block)

    def _members_later(self, coalitions: NDArray[np.bool_], sizes: NDArray[np.intp], out: NDArray[np.intp],
                       short_b: NDArray[np.intp], short_q: NDArray[np.intp], block: int) -> None:
        """The pairs' top-k past the first ``_WORD`` ranks from their members' own candidates:
        of the ``|S| k`` ranks of the members' candidates of question ``q``, those in
        ``[_WORD, L)``, ascending, fill the slots left after the first ``_WORD`` ranks' (the
        coalition's top-k is in its members' lists). ``O(|S| k)`` per pair, in chunks of at
        most ``block`` ranks, so for small coalitions."""
        if short_b.size == 0:
            return
        k, length = self.k, self.ranked_docs.shape[1]
        rows, row_of = np.unique(short_b, return_inverse=True)
        width = int(sizes[rows].max())
        members = np.argsort(~coalitions[rows], axis=1, kind="stable")[:, :width]  # members first
        is_member = np.arange(width)[None, :] < sizes[rows][:, None]
        per_chunk = max(1, block // max(width * k, 1))
        for start in range(0, short_b.size, per_chunk):
            b, q, r = (a[start : start + per_chunk] for a in (short_b, short_q, row_of))
            ranks = self._seller_ranks[q[:, None], members[r]]  # (A, width, k)
            usable = is_member[r][:, :, None] & (ranks >= _WORD) & (ranks < length)
            ranks = np.sort(np.where(usable, ranks, length).reshape(len(b), -1), axis=1)[:, :k]
            filled = np.count_nonzero(out[b, q] >= 0, axis=1)
            for i in range(k):
                slot = filled + i
                ok = (slot < k) & (ranks[:, i] < length)
                out[b[ok], q[ok], slot[ok]] = ranks[ok, i]

    def _count_later(self, coalitions: NDArray[np.bool_], later: NDArray[np.intp], out: NDArray[np.intp],
                     short_b: NDArray[np.intp], short_q: NDArray[np.intp], block: int) -> None:
        """The pairs' top-k past the first ``_WORD`` ranks by a cumulative count of present
        candidates over the later ranks, in chunks of ranks, dropping pairs as they reach
        ``k`` or run out of candidates (``later[b, q]`` of them past ``_WORD``): a chunk is at
        least ``k`` ranks and at most ``block`` (pair, rank) entries or ``k`` per pair.
        ``O(ranks walked)`` per pair, so for coalitions dense in the ranking."""
        k, length = self.k, self.ranked_docs.shape[1]
        filled = np.count_nonzero(out[short_b, short_q] >= 0, axis=1)
        remaining = later[short_b, short_q]
        start = _WORD
        while short_b.size and start < length:
            stop = min(start + max(k, block // short_b.size), length)
            present = coalitions[short_b[:, None], self.ranked_owners[short_q, start:stop]]  # (A, c)
            count = filled[:, None] + np.cumsum(present, axis=1)
            kept_a, kept_j = np.nonzero(present & (count <= k))
            out[short_b[kept_a], short_q[kept_a], count[kept_a, kept_j] - 1] = start + kept_j
            filled = np.minimum(count[:, -1], k)
            remaining = remaining - np.count_nonzero(present, axis=1)
            more = (filled < k) & (remaining > 0)
            short_b, short_q, filled, remaining = short_b[more], short_q[more], filled[more], remaining[more]
            start = stop

    def retrieve(self, coalitions: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Top-k document indices for every coalition and question, best first
        (``ranked_docs`` at :meth:`positions`).

        Args:
            coalitions: ``bool[B, n]``.

        Returns:
            ``int64[B, Q, k]``; ``-1`` where the coalition has fewer than k documents.
        """
        return np.take(self._docs_or_none, self.positions(coalitions) + self._offsets)
