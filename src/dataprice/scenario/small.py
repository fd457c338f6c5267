"""The small version of a scenario: the same market at a size that runs in seconds."""

from __future__ import annotations

from dataprice.buyers.base import BUYERS
from dataprice.scenario.load import parse_scenario
from dataprice.scenario.schema import Scenario
from dataprice.valuation.methods import METHODS, MonteCarloSpec

#: Monte Carlo budget per method in a small run.
SMALL_MAX_EVALUATIONS = 300
#: Bootstrap draws of the evaluation set in a small run (intervals are rough at this size).
SMALL_RESAMPLES = 20
#: Sellers audited per rule in a small run of a scenario that audits a sample (each costs
#: a settlement per grid point: the 1,000-seller market's smoke test took 57 s at 10, 31 s at
#: 4, 14 s at 2).
SMALL_AUDIT_SAMPLE = 2


def small_scenario(scenario: Scenario) -> Scenario:
    """The same scenario at a size that runs in seconds (``dataprice run --small``, CI).

    Kept: sellers, buyer data, methods, rules and seed, so the report has every section.
    Reduced: at most 2 replicates and 5 rounds; Monte Carlo methods capped at
    :data:`SMALL_MAX_EVALUATIONS` evaluations; a 5-point audit grid (and at most
    :data:`SMALL_AUDIT_SAMPLE` audited sellers where the audit samples); :data:`SMALL_RESAMPLES` resamples for the intervals; the buyer's own small
    version (:meth:`~dataprice.buyers.base.Buyer.small`: language-model buyers use the tiny
    LM and one training epoch, federated training at most 5 rounds, a chosen scikit-learn
    estimator with at most 10 trees or 50 iterations). Figures from a small run are not the
    scenario's: its name ends in ``_small``, ``smoke_test`` says what was reduced (every
    report shows it in a banner on top), and its description is rewritten to the sizes it
    ran, the full scenario's description following as such.
    """
    data = scenario.model_dump(mode="json")
    data["name"] = f"{scenario.name}_small"
    data["replicates"] = min(scenario.replicates, 2)
    data["rounds"] = min(scenario.rounds, 5)
    capped = []
    for spec in data["valuation"]:
        if issubclass(METHODS[spec["method"]].Spec, MonteCarloSpec):
            spec["max_evaluations"] = min(spec.get("max_evaluations") or SMALL_MAX_EVALUATIONS, SMALL_MAX_EVALUATIONS)
            spec["max_seconds"] = None
            spec["stderr"] = None
            capped.append(spec["method"])
    data["audit"]["grid_points"] = min(data["audit"]["grid_points"], 5)
    sampled = data["audit"].get("sample")
    if sampled is not None:
        data["audit"]["sample"] = min(sampled, SMALL_AUDIT_SAMPLE)
    data["uncertainty"]["resamples"] = min(data["uncertainty"]["resamples"], SMALL_RESAMPLES)
    data["buyer"] = BUYERS[data["buyer"]["task"]].small(data["buyer"])
    data["output_dir"] = None
    sizes = [_count(data["replicates"], scenario.replicates, "replicate"), _count(data["rounds"], scenario.rounds, "round")]
    if capped:
        sizes.append(f"Monte Carlo methods ({', '.join(dict.fromkeys(capped))}) at most {SMALL_MAX_EVALUATIONS} evaluations")
    sizes.append(f"an audit grid of {data['audit']['grid_points']} points")
    if sampled is not None and data["audit"]["sample"] < sampled:
        sizes.append(f"an audit of {data['audit']['sample']} sampled sellers per rule")
    if data["uncertainty"]["resamples"] < scenario.uncertainty.resamples:
        sizes.append(f"{data['uncertainty']['resamples']} resamples of the evaluation set for the intervals")
    if data["buyer"] != scenario.model_dump(mode="json")["buyer"]:
        sizes.append("the buyer's smoke-test version (tiny LM, one epoch, fewer training rounds or trees)")
    data["smoke_test"] = (f"Smoke test: `{scenario.name}` ran at the size `--small` gives it: {'; '.join(sizes)}. "
                          "Its figures are not the scenario's; run it without --small for those.")
    full = scenario.description.strip()
    data["description"] = (f"Smoke-test size of `{scenario.name}`: {', '.join(sizes[:2])}."
                           + (f" At full size: {full}" if full else ""))
    return parse_scenario(data, f"{scenario.name} (small)")


def _count(small: int, full: int, noun: str) -> str:
    said = f"{small} {noun}{'s' if small != 1 else ''}"
    return said if small == full else f"{said} (full size: {full})"
