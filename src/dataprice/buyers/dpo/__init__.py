"""The DPO buyer: it fine-tunes a language model with DPO on the sellers' preference pairs.

One policy per owner (SmolLM2-135M with LoRA, a tiny random LM for tests, or the user's own
causal LM: ``model: {path: folder}``, a local Hugging Face folder or GGUF file), trained with
a shared reference model and ``beta``; a coalition's policy is its owners' log-probability
arithmetic (weights by data size), so on a preference-margin utility every coalition's value
is arithmetic on ``n + 1`` scoring passes (DPO Shapley). ``utility``: held-out preference
``accuracy``, mean ``logsigmoid`` of the reward margin, or ``generation`` (greedy answers of
the composed policy, for at most 6 sellers). The game can unlearn owners' pairs by
gradient ascent (Unlearning Shapley).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, model_validator

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, costs_given, register_buyer
from dataprice.errors import DataError
from dataprice.models.folder import ModelFolder, folder_problem
from dataprice.specs import Column, FilePath, Index, PositiveFloat, StrictModel, within

#: ``generation`` runs the composed model for every coalition: allowed for at most this many sellers.
MAX_GENERATION_SELLERS = 6


class PreferenceSpec(StrictModel):
    """Preference pairs: built from ICD-10-CM (``medical``) or read from user files.

    ``medical``: owner ``j`` holds ``sizes[j]`` pairs (default ``pairs_per_seller`` each);
    ``flipped_sellers`` prefer the wrong code, ``duplicate_sellers`` copy others' pairs.
    ``files``: ``file`` holds the sold pairs (prompt, chosen, rejected, owner, and optionally
    price), ``heldout_file`` the buyer's evaluation pairs (prompt, chosen, rejected); relative
    paths are taken from the scenario file's folder. With a ``price_column`` in ``file``, each
    pair has its own list price and an owner's cost is the sum over its pairs (it sells them
    together and makes one report for all); ``sellers.costs`` must then be left out.
    """

    source: Literal["medical", "files"] = "medical"
    sizes: list[Annotated[int, within(1, 100_000)]] | None = None
    pairs_per_seller: Annotated[int, within(1, 100_000)] = 24
    n_heldout: Annotated[int, within(1, 100_000)] = 48
    n_categories: Annotated[int, within(2, 10_000)] = 12
    flipped_sellers: list[Index] = Field(default_factory=list)
    duplicate_sellers: list[Index] = Field(default_factory=list)
    file: FilePath | None = None
    heldout_file: FilePath | None = None
    owner_column: Column = "owner"
    price_column: Column = "price"

    @model_validator(mode="after")
    def _files_given(self) -> PreferenceSpec:
        if self.source == "files" and (not self.file or not self.heldout_file):
            raise ValueError("source 'files' needs 'file' (sold pairs) and 'heldout_file' (evaluation pairs)")
        return self

    def paths(self) -> tuple[str, str]:
        """``(file, heldout_file)`` of a ``files`` source."""
        if self.file is None or self.heldout_file is None:
            raise ValueError("preferences.source is not 'files': there are no preference files")
        return self.file, self.heldout_file


class DPOTraining(StrictModel):
    """DPO settings shared by every owner's run (``lora_r: 0`` = full fine-tuning)."""

    beta: Annotated[float, Field(gt=0.0, le=1000.0)] = 0.1
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 5e-4
    epochs: Annotated[int, within(1, 1000)] = 2
    batch_size: Annotated[int, within(1, 4096)] = 8
    lora_r: Annotated[int, within(0, 1024)] = 8
    lora_alpha: Annotated[int, within(1, 10_000)] = 16
    max_prompt_tokens: Annotated[int, within(8, 8192)] = 96


@register_buyer
class DPOBuyer(Buyer):
    """A buyer fine-tuning a language model with DPO on sellers' preference pairs."""

    task: Literal["dpo"]
    value_per_quality: PositiveFloat = 100.0
    preferences: PreferenceSpec = Field(default_factory=PreferenceSpec)
    #: ``smollm2``, ``tiny`` (tests) or ``{path: ...}``: a local Hugging Face causal-LM folder
    #: (config.json, safetensors weights, tokenizer) or a ``.gguf`` file, relative to the scenario.
    model: Literal["smollm2", "tiny"] | ModelFolder = "smollm2"
    training: DPOTraining = Field(default_factory=DPOTraining)
    utility: Literal["accuracy", "logsigmoid", "generation"] = "accuracy"

    label: ClassVar[str] = "a buyer fine-tuning a language model with DPO on their preference pairs"
    offers: ClassVar[frozenset[str]] = frozenset({"unlearning:gradient_ascent"})
    path_fields: ClassVar[tuple[str, ...]] = ("preferences.file", "preferences.heldout_file")
    model_path_fields: ClassVar[tuple[str, ...]] = ("model.path",)

    def extras(self) -> frozenset[str]:
        return frozenset({"llm"})

    def capabilities(self) -> frozenset[str]:
        if self.utility == "generation":
            return frozenset()
        inrun = {"inrun", "inrun:second_order", "inrun:similarity", "inrun:settings", "inrun:projection"}
        return self.offers | (inrun if self.training.lora_r > 0 else set())

    def problems(self, scenario: Any) -> Iterable[str]:
        n = scenario.sellers.count
        prefs = self.preferences
        if prefs.sizes is not None and len(prefs.sizes) != n:
            yield f"buyer.preferences.sizes: {len(prefs.sizes)} sizes for {n} sellers; give one pair count per seller"
        for field_name in ("flipped_sellers", "duplicate_sellers"):
            bad = [j for j in getattr(prefs, field_name) if j >= n]
            if bad:
                yield f"buyer.preferences.{field_name}: seller index {bad[0]} out of range; allowed 0..{n - 1}"
        if isinstance(self.model, ModelFolder):
            problem = folder_problem(self.model.path)
            if problem:
                yield f"buyer.model.path: {problem}"
        if self.utility == "generation" and n > MAX_GENERATION_SELLERS:
            yield (f"buyer.utility: 'generation' runs the composed model for every coalition; allowed for at most "
                   f"{MAX_GENERATION_SELLERS} sellers (got {n})")

    def data_problems(self, scenario: Any) -> Iterable[str]:
        """The model folder's architecture, and the preference files read (columns, blank
        cells, owners against ``sellers.count``), without loading a model."""
        if isinstance(self.model, ModelFolder):
            from dataprice.models.folder import architecture_problem

            problem = architecture_problem(self.model.path, "causal")
            if problem:
                yield f"buyer.model.path: {problem}"
        if self.preferences.source == "files":
            try:
                sold, _ = build_preferences(self.preferences, scenario.sellers.count, scenario.seed)
                self.seller_costs(scenario, sold.seller_names)
            except DataError as exc:
                yield str(exc)

    @classmethod
    def small(cls, section: dict) -> dict:
        training = section.get("training")
        return {**section, "model": "tiny", "training": {**(training if isinstance(training, dict) else {}), "epochs": 1}}

    def data_files(self) -> dict[str, str]:
        return super().data_files() if self.preferences.source == "files" else {}

    def seller_costs(self, scenario: Any, names: list[str]) -> Any:
        """With priced pairs (a price column in the pairs file), each owner's cost is the sum
        of its pairs' prices, in the order of ``names``; else ``None`` (``sellers.costs``).

        Raises:
            DataError: priced pairs and ``sellers.costs`` both given.
        """
        if self.preferences.source != "files":
            return None
        sold = self._sold()
        prices = sold.owner_prices()
        if prices is None:
            return None
        if costs_given(scenario.sellers):
            raise DataError(
                f"{self.preferences.file}: column {self.preferences.price_column!r} prices every pair, and an owner's "
                "cost is the sum of its pairs' prices; remove sellers.costs, or remove the column"
            )
        index = {name: o for o, name in enumerate(sold.seller_names)}
        return prices[[index[name] for name in names]]

    def _sold(self):
        from dataprice.data.preferences import load_preferences

        return load_preferences(self.preferences.paths()[0], owner_column=self.preferences.owner_column,
                                price_column=self.preferences.price_column)

    def seller_names(self, sellers: Any) -> list[str]:
        """The owners in the preference file (user pairs), else the scenario's names."""
        if self.preferences.source == "files":
            return self._sold().seller_names
        return sellers.player_names()

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.dpo.game import (
            DPOContext,
            DPOGenerationGame,
            DPOShapleyGame,
            score_owners,
        )
        from dataprice.buyers.dpo.training import DPOConfig
        from dataprice.models.cache import PolicyCache
        from dataprice.progress import progress as progress_display

        names = context.names
        sold, heldout = build_preferences(self.preferences, len(names), context.seed)
        base, tokenizer, base_id = dpo_base_model(self.model, progress=context.progress)
        config = DPOConfig(**self.training.model_dump(), seed=context.seed % (2**31))
        cache = PolicyCache(base_id)
        contributions = sold.describe_sellers().drop(columns="seller").assign(seller=names)
        game: DPOGenerationGame | DPOShapleyGame
        if not context.scenario.needs_coalition_values:
            # only in-run values, paid on: the one in-run training is all there is to train
            game = DPOShapleyGame(None, sold.sizes(), utility=self.utility, value_per_quality=self.value_per_quality,
                                  player_names=names)
            game.context = DPOContext(base, tokenizer, sold, heldout, config, cache)
            contributions["trainings_run"] = 0
            return BuiltTask(game, pd.DataFrame(contributions))
        policies = [
            cache.policy(base, tokenizer, sold.of_owner(j), config)
            for j in progress_display(range(sold.n_sellers), desc="DPO per owner", leave=False,
                                      enabled=context.progress)
        ]
        scores = score_owners(base, tokenizer, policies, heldout, config)
        margins = scores.margins()
        if self.utility == "generation":
            game = DPOGenerationGame(base, tokenizer, policies, sold.sizes(), heldout,
                                     value_per_quality=self.value_per_quality, player_names=names)
        else:
            game = DPOShapleyGame(margins, sold.sizes(), utility=self.utility,
                                  value_per_quality=self.value_per_quality, player_names=names)
            game.context = DPOContext(base, tokenizer, sold, heldout, config, cache)
        contributions["heldout_accuracy_alone"] = (margins > 0).mean(axis=1)
        if sold.prices is not None:
            contributions["list_price"] = sold.owner_prices()
        contributions["trainings_run"] = cache.trainings
        return BuiltTask(game, pd.DataFrame(contributions))


def build_preferences(spec: PreferenceSpec, n_sellers: int, seed: int):
    """The sold pairs and the buyer's held-out pairs."""
    from dataprice.data.preferences import load_preferences, medical_preferences

    if spec.source == "files":
        sold_file, heldout_file = spec.paths()
        sold = load_preferences(sold_file, owner_column=spec.owner_column, price_column=spec.price_column)
        if sold.n_sellers != n_sellers:
            raise DataError(
                f"{sold_file}: {sold.n_sellers} distinct owners in column {spec.owner_column!r}, "
                f"but sellers.count is {n_sellers}; set sellers.count to {sold.n_sellers}"
            )
        return sold, load_preferences(heldout_file, owner_column=None)
    sizes = spec.sizes or [spec.pairs_per_seller] * n_sellers
    return medical_preferences(
        sizes, n_heldout=spec.n_heldout, n_categories=spec.n_categories,
        flipped_sellers=spec.flipped_sellers, duplicate_sellers=spec.duplicate_sellers, seed=seed,
    )


def dpo_base_model(model: str | ModelFolder, *, progress: bool = False):
    """``(model, tokenizer, cache id)`` of the DPO base/reference model: a preset, or the
    user's folder loaded from disk (the id is a sha256 of its files, so policies trained on
    one folder are never reused for another); ``progress`` announces a long load."""
    from dataprice.models.lm import causal_lm

    return causal_lm(model, field="buyer.model", progress=progress)
