"""Exceptions with messages meant for the person running a scenario."""

from __future__ import annotations


class DatapriceError(Exception):
    """Base class of every error the platform raises on purpose."""


class ScenarioError(DatapriceError):
    """A scenario file is missing, malformed or asks for something impossible.

    ``str(error)`` is one or more lines, each ``field: what was wrong; what is allowed``.
    """

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class DataError(DatapriceError):
    """User data (a corpus, a table) cannot be loaded or is empty."""


class EngineError(DatapriceError):
    """An engine cannot start: its package is missing, or its cluster cannot be reached."""


class OutputError(DatapriceError):
    """An output path cannot be written safely: it is not a directory dataprice wrote, it is
    the folder the user is in, or it is not a usable path. Raised before any work is done."""


class PluginError(DatapriceError):
    """A plugin (an installed entry point or a ``--plugin`` module) cannot be loaded."""
