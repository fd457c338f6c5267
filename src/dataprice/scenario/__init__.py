"""Scenario files: the schema (assembled from the registered buyers, methods and rules),
loading with one-line errors, and the small (CI-size) version of a scenario.

* :mod:`.schema` -- the sections and :func:`~.schema.scenario_model`;
* :mod:`.load` -- :func:`load_scenario`, :func:`parse_scenario`, :func:`scenario_to_yaml`;
* :mod:`.small` -- :func:`small_scenario`.
"""

from __future__ import annotations

import dataprice.buyers  # noqa: F401 - registers the built-in buyers before any scenario is read
from dataprice.scenario.load import (
    absolute_paths,
    changed_fields,
    check_data_files,
    format_validation_error,
    load_scenario,
    merge_overrides,
    parse_scenario,
    scenario_to_yaml,
)
from dataprice.scenario.schema import (
    MAX_EXACT_SELLERS,
    Audit,
    Bidding,
    Engine,
    Market,
    Scenario,
    Sellers,
    Uncertainty,
    scenario_model,
)
from dataprice.scenario.small import SMALL_MAX_EVALUATIONS, small_scenario

__all__ = [
    "MAX_EXACT_SELLERS", "SMALL_MAX_EVALUATIONS", "Audit", "Bidding", "Engine", "Market", "Scenario", "Sellers",
    "Uncertainty",
    "absolute_paths", "changed_fields", "check_data_files", "format_validation_error", "load_scenario", "merge_overrides",
    "parse_scenario", "scenario_model", "scenario_to_yaml", "small_scenario",
]
