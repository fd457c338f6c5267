"""The classifier buyer: it trains a classifier on the sellers' shards of a data set.

``v(S)`` is ``value_per_quality`` times the validation accuracy of the model trained on the
union of the shards in ``S`` (softmax regression, or soft K-nearest neighbours). Sellers
may have noisy labels (``sellers.label_noise``) or resell another seller's shard
(``sellers.copies``). The game offers KNN-Shapley's closed form (``knn``) and, for the
logistic model, unlearning a seller's data from one trained model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.specs import PositiveFloat, within

#: The data sets bundled with scikit-learn that the classifier and federated buyers can use.
Dataset = Literal["breast_cancer", "wine", "iris", "digits"]


def shards_for(scenario: Any, dataset: str, validation_fraction: float, max_points: int | None, seed: int,
               copies: bool = True):
    """The sellers' shards of ``dataset`` for one replicate, as the ``sellers`` section asks
    (partition, label noise, copies)."""
    from dataprice.data.shards import make_shards

    sellers = scenario.sellers
    part = sellers.partition
    return make_shards(
        dataset, sellers.count, seed=seed, validation_fraction=validation_fraction,
        partition=part.kind, sizes=part.sizes, alpha=part.alpha,
        noisy_sellers=sellers.label_noise.sellers, noise_fraction=sellers.label_noise.fraction,
        max_points=max_points, copies=[(c.seller, c.source, c.noise) for c in sellers.copies] if copies else (),
    )


@register_buyer
class ClassifierBuyer(Buyer):
    """A buyer training a classifier on the sellers' shards of a bundled dataset."""

    task: Literal["classifier"]
    value_per_quality: PositiveFloat = 100.0
    dataset: Dataset = "breast_cancer"
    model: Literal["logistic", "knn"] = "logistic"
    k_neighbors: Annotated[int, within(1, 10_000)] = 5
    regularization: PositiveFloat = 1.0
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    max_points: Annotated[int, within(2, 10_000_000)] | None = None

    label: ClassVar[str] = "a classifier trained on the sellers' data shards"
    offers: ClassVar[frozenset[str]] = frozenset({"knn", "copies", "unlearning:newton", "unlearning:gradient_ascent"})

    def capabilities(self) -> frozenset[str]:
        if self.model == "logistic":
            return self.offers
        return frozenset({"knn", "copies"})

    def problems(self, scenario: Any) -> Iterable[str]:
        n = scenario.sellers.count
        if self.max_points is not None and self.max_points < 2 * n:
            yield f"buyer.max_points: {self.max_points} points is too few for {n} sellers; allowed >= {2 * n}"

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.classifier.game import ClassifierGame

        scenario, names = context.scenario, context.names
        shards = shards_for(scenario, self.dataset, self.validation_fraction, self.max_points, context.seed)
        game = ClassifierGame(
            shards, model=self.model, value_per_quality=self.value_per_quality,
            k_neighbors=self.k_neighbors, regularization=self.regularization, player_names=names,
        )
        contributions = pd.DataFrame(
            {"seller": names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
        )
        copied = {c.seller: names[c.source] for c in scenario.sellers.copies}
        if copied:
            contributions["copy_of"] = [copied.get(j, "") for j in range(len(names))]
        return BuiltTask(game, contributions)
