"""Plugins: buyers, valuation methods and payment rules from your own code.

Three ways in -- never from a scenario file (scenario files do not import code):

* an installed package declares entry points in the groups ``dataprice.buyers``,
  ``dataprice.methods`` or ``dataprice.rules`` (``[project.entry-points."dataprice.rules"]
  bonus = "mypkg.rules"``); the entry point's module is imported the first time a scenario
  is read, and its decorators (:func:`~dataprice.buyers.base.register_buyer`,
  :func:`~dataprice.valuation.methods.base.register_method`,
  :func:`~dataprice.market.rules.base.register_rule`) register what it defines;
* ``dataprice --plugin mypkg.rules run FILE`` imports the module named (repeatable);
* in Python, :func:`load_plugins` (``dp.use_plugin``), or import the module yourself.

Modules loaded by name are remembered (:func:`loaded_plugins`) and shipped with every
replicate to engine workers, which import them before reading the scenario.
See ``docs/extending.md`` for a worked buyer and a worked payment rule.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

from dataprice.errors import PluginError
from dataprice.inputs import excerpt

#: The entry-point groups dataprice reads.
GROUPS = ("dataprice.buyers", "dataprice.methods", "dataprice.rules")

_by_name: list[str] = []
_entry_points_loaded = False


def load_entry_points() -> None:
    """Import every module installed packages declare in :data:`GROUPS` (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for group in GROUPS:
        for entry in importlib.metadata.entry_points(group=group):
            try:
                entry.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, not a traceback
                raise PluginError(
                    f"plugin {entry.name!r} ({group} = {entry.value}) failed to load: {type(exc).__name__}: "
                    f"{str(exc)[:200]}; fix or uninstall the package that declares it"
                ) from None


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Load the installed entry points, then import each module of ``modules`` by name."""
    load_entry_points()
    for name in modules:
        if name in _by_name:
            continue
        if not isinstance(name, str) or not name.replace(".", "").replace("_", "").isalnum():
            raise PluginError(f"--plugin: {excerpt(name)} is not a module name (e.g. mypkg.rules)")
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing or broken module is one line
            raise PluginError(f"--plugin {name}: cannot import it ({type(exc).__name__}: {str(exc)[:200]})") from None
        _by_name.append(name)


def loaded_plugins() -> tuple[str, ...]:
    """The modules loaded by name so far, in order (engine workers import them too)."""
    return tuple(_by_name)
