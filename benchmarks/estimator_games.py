"""The games of ``benchmarks/estimators.py``, their exact Shapley values, and how they are stored.

Four games from the project's buyers (small bundled data, no download):

* ``classifier``: 12 sellers hold shards of scikit-learn's breast-cancer data, two of them
  with half their labels flipped; ``v(S)`` is the validation accuracy of the project's L2
  logistic regression trained on S's points (minus chance): a noisy, non-monotone utility.
* ``knn``: 18 sellers of the same data (three noisy); ``v(S)`` is the soft-KNN utility
  (K = 5) of the classifier buyer's ``model: knn``.
* ``rag``: 20 sellers of the built-in ICD-10-CM corpus (one resells another's documents,
  one holds corrupted copies); ``v(S)`` is hit@3 over 200 questions of retrieval over S's
  documents with the real all-MiniLM-L6-v2 embeddings (``RAGGame`` with ``RetrievalScorer``).
* ``coverage``: 40 sellers of the coverage buyer (``random_coverage_market``, 50 needs).

Exact values: games of at most 22 players are tabulated (all ``2^n`` coalitions) and
valued by dataprice's ``ExactShapley``; the coverage game has the closed form of
:func:`coverage_shapley`, checked against exact Shapley on a 12-seller market when built.

Each game is stored once in ``benchmarks/results/estimator_games/<name>.npz`` with its
exact values: tabulated games as their full value table (bit ``j`` of the index is player
``j``), the coverage game as its coverage matrix and need weights, so that the side
environments evaluate them with numpy alone. A stored game is rebuilt when the settings it
was built with differ from this file's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game, coalitions_to_masks, tabulate
from dataprice.valuation.methods import ExactShapley

ROOT = Path(__file__).resolve().parent.parent
GAMES_DIR = ROOT / "benchmarks" / "results" / "estimator_games"

#: Settings of each game (a stored game built with other settings is rebuilt).
SETTINGS: dict[str, dict[str, Any]] = {
    "classifier": {"dataset": "breast_cancer", "sellers": 12, "noisy_sellers": [0, 1], "noise_fraction": 0.5,
                   "model": "logistic", "seed": 0},
    "knn": {"dataset": "breast_cancer", "sellers": 18, "noisy_sellers": [0, 1, 2], "noise_fraction": 0.5,
            "model": "knn", "k_neighbors": 5, "seed": 0},
    "rag": {"sellers": 20, "categories": 800, "questions": 200, "top_k": 3, "metric": "hit",
            "duplicate_sellers": [18], "corrupted_sellers": [19], "seed": 0},
    "coverage": {"sellers": 40, "needs": 50, "seed": 0, "check_sellers": 12},
}
GAME_NAMES = tuple(SETTINGS)


class LookupGame(Game):
    """A game read from its table of ``2^n`` values (bit ``j`` of the index: player ``j``).

    Deliberately not a :class:`~dataprice.valuation.game.TabulatedGame`: an estimator
    given it cannot tell that the whole table is at hand, and pays for every coalition it
    asks for (``n_evaluations``)."""

    def __init__(self, values: NDArray[np.float64]) -> None:
        n = int(round(np.log2(values.shape[0])))
        super().__init__(n)
        self.values = np.asarray(values, dtype=np.float64)

    def value_function(self, coalitions) -> NDArray[np.float64]:
        return self.values[coalitions_to_masks(coalitions)]


def coverage_shapley(coverage: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact Shapley values of ``v(S) = sum_t w_t (1 - prod_{j in S} (1 - p_jt))``.

    Owen's formula: ``phi_i = int_0^1 d/dx_i f(x, ..., x) dx`` with ``f`` the multilinear
    extension, here ``f(x) = sum_t w_t (1 - prod_j (1 - x_j p_jt))``, so

        ``phi_i = sum_t w_t p_it int_0^1 prod_{j != i} (1 - x p_jt) dx``,

    a polynomial of degree ``n - 1`` in ``x``, integrated exactly by Gauss-Legendre
    quadrature with ``ceil(n / 2) + 1`` nodes. With 0/1 coverage it is the equal split:
    each need's weight shared equally among the sellers covering it.
    """
    p = np.asarray(coverage, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = p.shape[0]
    nodes, node_weights = np.polynomial.legendre.leggauss(n // 2 + 2)
    x, dx = (nodes + 1.0) / 2.0, node_weights / 2.0  # mapped from [-1, 1] to [0, 1]
    phi = np.zeros(n)
    for xk, wk in zip(x, dx, strict=True):
        factors = 1.0 - xk * p  # (n, T); at p = 1 and x = 1 a factor is 0: use products, not logs
        for i in range(n):
            others = np.prod(np.delete(factors, i, axis=0), axis=0)
            phi[i] += wk * np.dot(w * p[i], others)
    return phi


def equal_split_shapley(incidence: NDArray[np.bool_], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Shapley values of deterministic weighted coverage (``p`` in {0, 1}): every need's
    weight split equally among the sellers that cover it."""
    incidence = np.asarray(incidence, dtype=bool)
    coverers = incidence.sum(axis=0)
    share = np.divide(weights, coverers, out=np.zeros(len(weights)), where=coverers > 0)
    return incidence @ share


@dataclass
class StoredGame:
    """A benchmark game: its description, exact Shapley values and how to evaluate it."""

    name: str
    kind: str  # "table" or "coverage"
    exact: NDArray[np.float64]
    settings: dict[str, Any]
    description: str
    values: NDArray[np.float64] | None = None  # kind "table"
    coverage: NDArray[np.float64] | None = None  # kind "coverage"
    weights: NDArray[np.float64] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # build times, checks

    @property
    def n_players(self) -> int:
        return int(self.exact.shape[0])

    @property
    def tabulated(self) -> bool:
        return self.kind == "table"

    def game(self) -> Game:
        """A fresh dataprice game (its own evaluation counter)."""
        if self.kind == "table":
            assert self.values is not None
            return LookupGame(self.values)
        from dataprice.buyers.coverage.game import CoverageGame

        assert self.coverage is not None and self.weights is not None
        return CoverageGame(self.coverage, self.weights)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"values": self.values} if self.kind == "table" else {"coverage": self.coverage, "weights": self.weights}
        np.savez_compressed(
            path, kind=np.array(self.kind), exact=self.exact, settings=np.array(json.dumps(self.settings)),
            description=np.array(self.description), info=np.array(json.dumps(self.info)), **arrays,
        )

    @classmethod
    def load(cls, name: str, path: Path) -> StoredGame:
        with np.load(path, allow_pickle=False) as data:
            kind = str(data["kind"])
            return cls(
                name=name, kind=kind, exact=data["exact"], settings=json.loads(str(data["settings"])),
                description=str(data["description"]), info=json.loads(str(data["info"])),
                values=data["values"] if kind == "table" else None,
                coverage=data["coverage"] if kind == "coverage" else None,
                weights=data["weights"] if kind == "coverage" else None,
            )


def _tabulated(name: str, game: Game, settings: dict, description: str, **info: Any) -> StoredGame:
    started = time.perf_counter()
    table = tabulate(game, batch_size=2048)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    exact = ExactShapley().fit(table).result.values
    return StoredGame(
        name, "table", exact, settings, description, values=table.values,
        info={**info, "tabulation_seconds": round(seconds, 2), "exact_seconds": round(time.perf_counter() - started, 2),
              "exact_source": f"dataprice ExactShapley over the 2^{game.n_players} table"},
    )


def classifier_shards(settings: dict):
    from dataprice.data.shards import make_shards

    return make_shards(settings["dataset"], settings["sellers"], seed=settings["seed"],
                       noisy_sellers=settings["noisy_sellers"], noise_fraction=settings["noise_fraction"])


def build_classifier(settings: dict) -> StoredGame:
    from dataprice.buyers.classifier.game import ClassifierGame

    game = ClassifierGame(classifier_shards(settings), model="logistic")
    description = (f"logistic regression on {settings['dataset']} shards, {settings['sellers']} sellers "
                   f"({len(settings['noisy_sellers'])} with {settings['noise_fraction']:.0%} flipped labels); "
                   "v = validation accuracy - chance")
    return _tabulated("classifier", game, settings, description, empty_quality=game.empty_quality,
                      regularization=game.regularization)


def build_knn(settings: dict) -> StoredGame:
    from dataprice.buyers.classifier.game import ClassifierGame

    game = ClassifierGame(classifier_shards(settings), model="knn", k_neighbors=settings["k_neighbors"])
    description = (f"soft-KNN (K={settings['k_neighbors']}) on {settings['dataset']} shards, {settings['sellers']} "
                   f"sellers ({len(settings['noisy_sellers'])} with {settings['noise_fraction']:.0%} flipped labels)")
    return _tabulated("knn", game, settings, description)


def build_rag(settings: dict) -> StoredGame:
    from dataprice.buyers.rag.game import RAGGame, RetrievalScorer
    from dataprice.buyers.rag.retrieval import SellerTopK
    from dataprice.data.corpus import icd10_corpus
    from dataprice.models.embedder import Embedder

    n = settings["sellers"]
    corpus = icd10_corpus(n, n_categories=settings["categories"], n_questions=settings["questions"],
                          duplicate_sellers=settings["duplicate_sellers"],
                          corrupted_sellers=settings["corrupted_sellers"], seed=settings["seed"])
    embedder = Embedder()
    docs, questions = embedder.encode(corpus.texts), embedder.encode(corpus.questions)
    topk = SellerTopK(docs, corpus.owners, questions, n, settings["top_k"])
    game = RAGGame(topk, RetrievalScorer(corpus.relevance(), settings["metric"]), batch_size=512)
    description = (f"RAG {settings['metric']}@{settings['top_k']}, ICD-10-CM corpus ({corpus.n_documents} documents, "
                   f"{corpus.n_questions} questions, MiniLM embeddings), {n} sellers (seller "
                   f"{settings['duplicate_sellers']} resells, {settings['corrupted_sellers']} corrupted)")
    return _tabulated("rag", game, settings, description)


def coverage_check(n_sellers: int, needs: int, seed: int) -> float:
    """Largest gap between :func:`coverage_shapley` and exact Shapley over the table, on a
    ``random_coverage_market`` of ``n_sellers`` sellers."""
    from dataprice.buyers.coverage.game import random_coverage_market

    game, _ = random_coverage_market(n_sellers, needs, seed=seed)
    exact = ExactShapley().fit(tabulate(game)).result.values
    return float(np.max(np.abs(coverage_shapley(game.coverage, game.weights) - exact)))


def build_coverage(settings: dict) -> StoredGame:
    from dataprice.buyers.coverage.game import random_coverage_market

    game, _ = random_coverage_market(settings["sellers"], settings["needs"], seed=settings["seed"])
    started = time.perf_counter()
    exact = coverage_shapley(game.coverage, game.weights)
    seconds = time.perf_counter() - started
    gap = coverage_check(settings["check_sellers"], settings["needs"], settings["seed"])
    if gap > 1e-9 * max(1.0, float(np.abs(exact).max())):
        raise AssertionError(f"coverage closed form differs from exact Shapley by {gap:.2e}")
    v_full = float(game(np.ones((1, game.n_players), dtype=bool))[0])
    if abs(exact.sum() - v_full) > 1e-9 * v_full:
        raise AssertionError("coverage closed form is not efficient")
    description = (f"probabilistic coverage, {settings['sellers']} sellers, {settings['needs']} needs "
                   "(random_coverage_market)")
    return StoredGame(
        "coverage", "coverage", exact, settings, description, coverage=game.coverage, weights=game.weights,
        info={"exact_seconds": round(seconds, 3),
              "exact_source": "closed form (Owen's integral, Gauss-Legendre)",
              "check": f"closed form vs ExactShapley at {settings['check_sellers']} sellers: max gap {gap:.1e}"},
    )


BUILDERS = {"classifier": build_classifier, "knn": build_knn, "rag": build_rag, "coverage": build_coverage}


def load_or_build(name: str, folder: Path = GAMES_DIR, *, rebuild: bool = False, log=print) -> StoredGame:
    """The stored game ``name``, built (and stored) first if missing, stale or ``rebuild``."""
    path = folder / f"{name}.npz"
    settings = SETTINGS[name]
    if path.is_file() and not rebuild:
        stored = StoredGame.load(name, path)
        if stored.settings == settings:
            return stored
        log(f"{name}: stored with other settings, rebuilding")
    started = time.perf_counter()
    log(f"{name}: building the game and its exact Shapley values (once; stored in {path.relative_to(ROOT)})")
    stored = BUILDERS[name](settings)
    stored.info["build_seconds"] = round(time.perf_counter() - started, 1)
    stored.save(path)
    return stored
