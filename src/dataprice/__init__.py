"""dataprice: simulate data markets and compute incentive-aware compensation.

Three layers: :mod:`dataprice.valuation` (games and valuation methods),
:mod:`dataprice.market` (allocation, payment rules, metrics) and
:mod:`dataprice.agents` (the repeated market). :mod:`dataprice.scenario` validates
scenario files and :mod:`dataprice.runner` ties a scenario to a report.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
