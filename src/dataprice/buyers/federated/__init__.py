"""The federated buyer: a classifier trained by federated learning over the sellers (clients).

Sellers keep their shards (split by ``sellers.partition``, e.g. ``dirichlet``, or the owners
of the user's table, ``table``); the server
aggregates with ``aggregator``, or ``fedrandom``: a rule drawn from ``pool`` each round.
Contributions come from reconstructing coalition models from the stored client updates
(``one_round`` or ``multi_round``), never from retraining. With ``compare_aggregators`` the
run also measures every pool rule and FedRandom over the seeds
(:mod:`dataprice.buyers.federated.stability`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, register_buyer
from dataprice.buyers.classifier import DEFAULT_VALIDATION_FRACTION, Dataset, ShardsBuyer
from dataprice.specs import PositiveFloat, within

AggregatorName = Literal["fedavg", "fedavgm", "fedadam", "fedprox"]
POOL_DEFAULT: tuple[AggregatorName, ...] = ("fedavg", "fedavgm", "fedadam", "fedprox")
#: Retraining Shapley needs 2^n - 1 federated runs per seed: allowed for at most this many clients.
MAX_GROUND_TRUTH_SELLERS = 10
#: Contributions are exact over 2^n reconstructed coalition models.
MAX_FEDERATED_SELLERS = 22


@register_buyer
class FederatedBuyer(ShardsBuyer):
    """A buyer training a classifier by federated learning over the sellers (clients).

    The data is a bundled data set split among the sellers (``dataset``) or the user's table
    (``table``, as for the classifier buyer; categorical features are encoded, so every
    feature the softmax regression sees is a number).
    """

    task: Literal["federated"]
    value_per_quality: PositiveFloat = 100.0
    dataset: Dataset = "breast_cancer"
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = DEFAULT_VALIDATION_FRACTION
    max_points: Annotated[int, within(2, 10_000_000)] | None = None
    aggregator: Literal["fedavg", "fedavgm", "fedadam", "fedprox", "fedrandom"] = "fedrandom"
    pool: list[AggregatorName] = Field(default_factory=lambda: list(POOL_DEFAULT), min_length=1)
    rounds: Annotated[int, Field(ge=1, le=1000)] = 20
    local_epochs: Annotated[int, within(1, 1000)] = 1
    client_lr: Annotated[float, Field(gt=0.0, le=100.0)] = 0.1
    batch_size: Annotated[int, within(1, 100_000)] = 16
    mu: Annotated[float, Field(ge=0.0, le=1000.0)] = 0.1
    reconstruction: Literal["one_round", "multi_round"] = "multi_round"
    compare_aggregators: bool = False  # the run also compares every pool rule and FedRandom over the seeds
    ground_truth: bool = False  # with compare_aggregators: retraining Shapley (2^n - 1 runs per seed)

    label: ClassVar[str] = "a buyer training a classifier by federated learning over the sellers' shards"
    #: in-run values split each round's server step among the clients (from the stored run)
    offers: ClassVar[frozenset[str]] = frozenset({"inrun", "inrun:second_order", "inrun:similarity"})

    def problems(self, scenario: Any) -> Iterable[str]:
        yield from super().problems(scenario)
        n = scenario.sellers.count
        if self.ground_truth and n > MAX_GROUND_TRUTH_SELLERS:
            yield (f"buyer.ground_truth: retraining needs 2^n - 1 federated runs per seed; allowed for at most "
                   f"{MAX_GROUND_TRUTH_SELLERS} sellers (got {n})")
        if n > MAX_FEDERATED_SELLERS:
            yield (f"sellers.count: federated contributions are exact over 2^n coalitions; at most "
                   f"{MAX_FEDERATED_SELLERS} sellers")

    @classmethod
    def small(cls, section: dict) -> dict:
        return {**section, "rounds": min(section.get("rounds", 20), 5)}

    def config(self):
        from dataprice.buyers.federated.training import FederatedConfig

        return FederatedConfig(rounds=self.rounds, local_epochs=self.local_epochs, client_lr=self.client_lr,
                               batch_size=self.batch_size, mu=self.mu)

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.federated.training import FederatedGame, train_federated

        shards = self.shards(context.scenario, context.seed, copies=False)
        run = train_federated(shards, self.aggregator, self.config(), pool=self.pool, seed=context.seed)
        game = FederatedGame(shards, run, reconstruction=self.reconstruction,
                             value_per_quality=self.value_per_quality, player_names=context.names, seed=context.seed)
        contributions = pd.DataFrame(
            {"seller": context.names, "data_points": shards.shard_sizes(), "noisy_label_fraction": shards.noisy_fraction()}
        )
        return BuiltTask(game, contributions)

    def run_tables(self, run: Any) -> dict[str, pd.DataFrame]:
        """With ``compare_aggregators``: every rule of the pool and FedRandom, on the first
        replicate's data split, over the scenario's replicate seeds (three seeds from the
        first replicate's when there is one replicate)."""
        if not self.compare_aggregators:
            return {}
        from dataprice.buyers.federated.stability import aggregator_stability

        first = run.replicates[0]
        shards = self.shards(run.scenario, first.seed, copies=False)
        seeds = [rep.seed for rep in run.replicates] if len(run.replicates) > 1 else [first.seed + k for k in range(3)]
        table = aggregator_stability(
            shards, self.config(), aggregators=[*self.pool, "fedrandom"], seeds=seeds, costs=run.costs,
            pool=self.pool, reconstruction=self.reconstruction, value_per_quality=self.value_per_quality,
            ground_truth=self.ground_truth,
        )
        return {"aggregators": table}
