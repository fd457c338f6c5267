"""The small version of a scenario: the same market at a size that runs in seconds."""

from __future__ import annotations

from dataprice.buyers.base import BUYERS
from dataprice.scenario.load import parse_scenario
from dataprice.scenario.schema import Scenario
from dataprice.valuation.methods import METHODS, MonteCarloSpec

#: Monte Carlo budget per method in a small run.
SMALL_MAX_EVALUATIONS = 300


def small_scenario(scenario: Scenario) -> Scenario:
    """The same scenario at a size that runs in seconds (``dataprice run --small``, CI).

    Kept: sellers, buyer data, methods, rules and seed, so the report has every section.
    Reduced: at most 2 replicates and 5 rounds; Monte Carlo methods capped at
    :data:`SMALL_MAX_EVALUATIONS` evaluations; a 5-point audit grid; the buyer's own small
    version (:meth:`~dataprice.buyers.base.Buyer.small`: language-model buyers use the tiny
    LM and one training epoch, federated training at most 5 rounds, a chosen scikit-learn
    estimator with at most 10 trees or 50 iterations). Figures from a small
    run are not the scenario's, and its name ends in ``_small`` so reports say so.
    """
    data = scenario.model_dump(mode="json")
    data["name"] = f"{scenario.name}_small"
    data["replicates"] = min(scenario.replicates, 2)
    data["rounds"] = min(scenario.rounds, 5)
    for spec in data["valuation"]:
        if issubclass(METHODS[spec["method"]].Spec, MonteCarloSpec):
            spec["max_evaluations"] = min(spec.get("max_evaluations") or SMALL_MAX_EVALUATIONS, SMALL_MAX_EVALUATIONS)
            spec["max_seconds"] = None
            spec["stderr"] = None
    data["audit"]["grid_points"] = min(data["audit"]["grid_points"], 5)
    data["buyer"] = BUYERS[data["buyer"]["task"]].small(data["buyer"])
    data["output_dir"] = None
    return parse_scenario(data, f"{scenario.name} (small)")
