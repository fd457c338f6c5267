"""The classifier buyer: it trains a classifier on the sellers' shards of a data set.

``v(S)`` is ``value_per_quality`` times the validation accuracy of the model trained on the
union of the shards in ``S``, minus the accuracy without data (chance, ``1/K``; 0 for the
soft-KNN utility). The data is one of scikit-learn's bundled data sets split among
``sellers.count`` sellers (``dataset``), or the user's own table (``table``: CSV, TSV, JSON
lines or Parquet with an owner, a label and feature columns; the sellers are its owners;
:mod:`dataprice.data.tabular`). The model is the project's softmax regression
(``model: logistic``) or soft K-nearest neighbours (``model: knn``), or a scikit-learn
estimator from an allow-list (``estimator``; :mod:`dataprice.models.estimators`). Sellers
may have noisy labels (``sellers.label_noise``) or resell another seller's shard
(``sellers.copies``). The game offers KNN-Shapley's closed form (``knn``, on the encoded
features with any model) and, for the project's logistic model only, unlearning a seller's
data from one trained model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, model_validator

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.models.estimators import EstimatorSpec
from dataprice.specs import Column, FilePath, PositiveFloat, StrictModel, within

#: The share of the data the buyer holds out for validation when no validation file is given.
DEFAULT_VALIDATION_FRACTION = 0.3
#: The data sets bundled with scikit-learn that the classifier and federated buyers can use.
Dataset = Literal["breast_cancer", "wine", "iris", "digits"]


class TableSpec(StrictModel):
    """The buyer's data from the user's own file (CSV, TSV, JSON lines or Parquet).

    ``file`` has one row per data point: ``owner_column`` (the seller), ``label_column`` and
    feature columns (``features``, default every other column). ``categorical`` lists the
    columns holding categories (default: the feature columns with a cell that is not a
    number); they are encoded from the training rows only, by ``encoding``: ``onehot`` (a
    0/1 column per category) or ``ordinal`` (codes in sorted order). The buyer validates on
    ``validation_file`` (same label and feature columns) if given, else on a stratified
    split of ``file`` (the buyer's ``validation_fraction``, drawn from the replicate's seed).
    Relative paths are taken from the scenario file's folder.
    """

    file: FilePath
    validation_file: FilePath | None = None
    owner_column: Column = "owner"
    label_column: Column = "label"
    features: Annotated[list[Column], Field(min_length=1, max_length=100_000)] | None = None
    categorical: Annotated[list[Column], Field(max_length=100_000)] | None = None
    encoding: Literal["onehot", "ordinal"] = "onehot"

    @model_validator(mode="after")
    def _distinct_columns(self) -> TableSpec:
        if self.owner_column == self.label_column:
            raise ValueError(f"owner_column and label_column are both {self.owner_column!r}; name two columns")
        for listed in (self.features or []):
            if listed in {self.owner_column, self.label_column}:
                raise ValueError(f"features: {listed!r} is the owner or label column; list feature columns only")
        return self

    def columns(self):
        """The column settings as :class:`dataprice.data.tabular.TableColumns`."""
        from dataprice.data.tabular import TableColumns

        return TableColumns(
            owner=self.owner_column, label=self.label_column,
            features=tuple(self.features) if self.features is not None else None,
            categorical=tuple(self.categorical) if self.categorical is not None else None,
            encoding=self.encoding,
        )


class ShardsBuyer(Buyer):
    """What the classifier and federated buyers share: their data (a bundled data set split
    among the sellers, or the user's table) and its validation split."""

    dataset: Dataset = "breast_cancer"
    table: TableSpec | None = None
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = DEFAULT_VALIDATION_FRACTION
    max_points: Annotated[int, within(2, 10_000_000)] | None = None

    path_fields: ClassVar[tuple[str, ...]] = ("table.file", "table.validation_file")

    @model_validator(mode="after")
    def _one_source(self) -> ShardsBuyer:
        # settings of the bundled data sets must keep their defaults next to a table (a
        # scenario dumped and read again, as --small and engine workers do, sets every field)
        if self.table is not None:
            if self.dataset != "breast_cancer":
                raise ValueError("dataset names a bundled data set; with a table, remove dataset")
            if self.max_points is not None:
                raise ValueError("max_points subsamples a bundled data set; with a table, remove max_points")
            if self.table.validation_file is not None and self.validation_fraction != DEFAULT_VALIDATION_FRACTION:
                raise ValueError("validation_fraction splits the table; with table.validation_file, remove it")
        return self

    def problems(self, scenario: Any) -> Iterable[str]:
        n = scenario.sellers.count
        if self.max_points is not None and self.max_points < 2 * n:
            yield f"buyer.max_points: {self.max_points} points is too few for {n} sellers; allowed >= {2 * n}"
        if self.table is not None:
            part = scenario.sellers.partition
            if part.kind != "iid" or part.sizes is not None:
                yield ("sellers.partition: the table's owner column says who holds each row; "
                       "remove partition when the buyer has a table")
            if scenario.sellers.names is not None:
                yield "sellers.names: the sellers are the owners in buyer.table.file; remove sellers.names"

    def seller_names(self, sellers: Any) -> list[str]:
        """The owners in the table (in order of first appearance), else the scenario's names."""
        if self.table is None:
            return sellers.player_names()
        from dataprice.data.tabular import table_seller_names
        from dataprice.errors import DataError

        names = table_seller_names(self.table.file, self.table.columns())
        if len(names) != sellers.count:
            raise DataError(
                f"{self.table.file}: {len(names)} distinct owners in column {self.table.owner_column!r}, "
                f"but sellers.count is {sellers.count}; set sellers.count to {len(names)}"
            )
        return names

    def data_problems(self, scenario: Any) -> Iterable[str]:
        """The table's problems (columns, cells, classes, owners vs ``sellers.count``), and
        the validation file's, read without training anything."""
        if self.table is None:
            return
        from dataprice.data.tabular import load_tables
        from dataprice.errors import DataError

        try:
            load_tables(self.table.file, self.table.validation_file, self.table.columns())
            self.seller_names(scenario.sellers)
        except DataError as exc:
            yield f"buyer.table: {exc}"

    def shards(self, scenario: Any, seed: int, copies: bool = True):
        """The sellers' shards for one replicate, as the ``sellers`` section asks (partition
        for a bundled data set; label noise; copies)."""
        sellers = scenario.sellers
        copied = [(c.seller, c.source, c.noise) for c in sellers.copies] if copies else []
        if self.table is not None:
            from dataprice.data.tabular import tabular_shards

            shards, _, _ = tabular_shards(
                self.table.file, columns=self.table.columns(), validation=self.table.validation_file,
                validation_fraction=self.validation_fraction, n_sellers=sellers.count, seed=seed,
                noisy_sellers=sellers.label_noise.sellers, noise_fraction=sellers.label_noise.fraction,
                copies=copied,
            )
            return shards
        return shards_for(scenario, self.dataset, self.validation_fraction, self.max_points, seed, copies=copies)


def shards_for(scenario: Any, dataset: str, validation_fraction: float, max_points: int | None, seed: int,
               copies: bool = True):
    """The sellers' shards of a bundled ``dataset`` for one replicate, as the ``sellers``
    section asks (partition, label noise, copies)."""
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
class ClassifierBuyer(ShardsBuyer):
    """A buyer training a classifier on the sellers' shards (bundled data set or own table).

    ``model`` picks the project's own models (``logistic``: softmax regression with L2
    ``1/regularization``; ``knn``: the soft-KNN utility with ``k_neighbors``); ``estimator``
    replaces them by a scikit-learn estimator from the allow-list
    (:data:`dataprice.models.estimators.ESTIMATORS`). Valuation methods that read more than
    ``v(S)``: ``knn_shapley`` works with every model (its closed form is the soft-KNN
    utility on the same encoded features, with ``k_neighbors``); ``unlearning_shapley``
    needs ``model: logistic`` and no estimator.
    """

    task: Literal["classifier"]
    value_per_quality: PositiveFloat = 100.0
    dataset: Dataset = "breast_cancer"
    model: Literal["logistic", "knn"] = "logistic"
    estimator: EstimatorSpec | None = None
    k_neighbors: Annotated[int, within(1, 10_000)] = 5
    regularization: PositiveFloat = 1.0
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = DEFAULT_VALIDATION_FRACTION
    max_points: Annotated[int, within(2, 10_000_000)] | None = None

    label: ClassVar[str] = "a classifier trained on the sellers' data shards"
    offers: ClassVar[frozenset[str]] = frozenset(
        {"knn", "copies", "unlearning:newton", "unlearning:gradient_ascent", "inrun", "inrun:second_order",
         "inrun:similarity", "inrun:settings", "inrun:projection"}
    )

    @model_validator(mode="after")
    def _one_model(self) -> ClassifierBuyer:
        if self.estimator is not None and (self.model != "logistic" or self.regularization != 1.0):
            name = "model" if self.model != "logistic" else "regularization"
            raise ValueError(f"{name} sets the project's own model; with an estimator, remove {name}")
        return self

    @classmethod
    def small(cls, section: dict) -> dict:
        """A chosen estimator at smoke-test size (fewer trees and iterations, smaller layers)."""
        from dataprice.models.estimators import small_estimator

        return {**section, "estimator": small_estimator(section["estimator"])} if "estimator" in section else section

    def capabilities(self) -> frozenset[str]:
        if self.model == "logistic" and self.estimator is None:
            return self.offers
        return frozenset({"knn", "copies"})

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.classifier.game import ClassifierGame
        from dataprice.rng import Stream, child_seed

        scenario, names = context.scenario, context.names
        shards = self.shards(scenario, context.seed)
        game = ClassifierGame(
            shards, model=self.model, value_per_quality=self.value_per_quality,
            k_neighbors=self.k_neighbors, regularization=self.regularization, player_names=names,
            estimator=self.estimator,
            random_state=child_seed(context.seed, Stream.ESTIMATOR) if self.estimator is not None else 0,
        )
        contributions = pd.DataFrame(
            {"seller": names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
        )
        copied = {c.seller: names[c.source] for c in scenario.sellers.copies}
        if copied:
            contributions["copy_of"] = [copied.get(j, "") for j in range(len(names))]
        return BuiltTask(game, contributions)
