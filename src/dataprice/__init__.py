"""dataprice: simulate data markets and compute incentive-aware compensation.

Layers, from the bottom: :mod:`dataprice.valuation` (games, valuation methods),
:mod:`dataprice.market` (market kinds, payment rules, metrics), :mod:`dataprice.buyers`
(one plugin per buyer: its settings and its game), :mod:`dataprice.agents` (the repeated
market), :mod:`dataprice.scenario` (scenario files, validated from the registries),
:mod:`dataprice.experiment` (running a scenario: replicates, results, checkpoints) and
:mod:`dataprice.report` (formatting a run). :mod:`dataprice.plugins` loads your own
buyers, methods and rules.

For notebooks, :mod:`dataprice.api` is re-exported here: ``dp.load``, ``dp.run``,
``dp.comparison``, ``dp.write``, ``dp.open_report``, ``dp.diff`` (imported on first use, so
``import dataprice`` stays light).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("load", "run", "comparison", "write", "open_report", "diff", "use_plugin")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from dataprice import api

        return getattr(api, name)
    raise AttributeError(f"module 'dataprice' has no attribute {name!r}")
