"""dataprice: simulate data markets and compute incentive-aware compensation.

Three layers: :mod:`dataprice.valuation` (games and valuation methods),
:mod:`dataprice.market` (allocation, payment rules, metrics) and
:mod:`dataprice.agents` (the repeated market). :mod:`dataprice.scenario` validates
scenario files and :mod:`dataprice.runner` ties a scenario to a report.

For notebooks, :mod:`dataprice.api` is re-exported here: ``dp.load``, ``dp.run``,
``dp.comparison``, ``dp.write``, ``dp.open_report``, ``dp.diff`` (imported on first use, so
``import dataprice`` stays light).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("load", "run", "comparison", "write", "open_report", "diff")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from dataprice import api

        return getattr(api, name)
    raise AttributeError(f"module 'dataprice' has no attribute {name!r}")
