"""A persistent coalition cache: ``v(S)`` kept on disk across runs and processes.

A valuation sweep -- the same buyer and sellers valued with other methods, priced under
other payment rules or reserves, re-run after an interruption -- asks for the same
coalitions again. :class:`CoalitionStore` keeps every value computed under a *game key*
(a hash of whatever determines the game: the buyer and seller configuration, the seed and
the package version) in one SQLite file, so the second run computes nothing it has seen.

* Rows are ``(game key, packed coalition bits) -> value``; lookups and inserts go in
  chunks, so a batch of coalitions costs one query per 500 rows.
* Several processes may share a file (WAL journal, busy timeout): local workers and
  Dask/Ray workers on one machine write to the same store.
* The connection opens lazily and is not pickled, so a game wrapping a store can be
  shipped to workers.

Values are trusted as they are: the key must change whenever the game would (the runner
hashes the resolved ``sellers`` and ``buyer`` sections, the replicate seed and the
version).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.models.cache import cache_dir

_CHUNK = 500


def default_store_path() -> Path:
    """``$DATAPRICE_CACHE/coalitions.sqlite`` (default cache: ``~/.cache/dataprice``)."""
    return cache_dir() / "coalitions.sqlite"


class CoalitionStore:
    """Coalition values on disk, by game key (see the module docstring)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._conn: sqlite3.Connection | None = None

    def check(self) -> CoalitionStore:
        """Open the store now (before any work), so an unusable path is a one-line
        :class:`~dataprice.errors.DataError`: a directory, a file that is not SQLite, a
        SQLite database of something else (never modified), an unwritable folder."""
        self._connection()
        return self

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        from dataprice.errors import DataError
        from dataprice.inputs import excerpt, path_problem

        where = f"coalition cache {excerpt(str(self.path), 200)}"
        problem = path_problem(self.path)
        if problem:
            raise DataError(f"coalition cache: {problem}")
        if self.path.is_dir():
            raise DataError(f"{where} is a directory; name a file (e.g. coalitions.sqlite)")
        if self.path.exists() and not self.path.is_file():
            raise DataError(f"{where} is not a regular file")
        existed = self.path.is_file() and self.path.stat().st_size > 0
        if existed:
            with self.path.open("rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise DataError(f"{where} is not a SQLite file; dataprice does not overwrite it, name another file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60.0)
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if existed and tables and "coalition_values" not in tables:
                conn.close()
                raise DataError(
                    f"{where} is a SQLite database of something else (tables: {', '.join(sorted(tables)[:3])}); "
                    "dataprice does not modify it, name another file"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS coalition_values ("
                "game TEXT NOT NULL, coalition BLOB NOT NULL, value REAL NOT NULL, "
                "PRIMARY KEY (game, coalition)) WITHOUT ROWID"
            )
            conn.commit()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{where} cannot be used ({exc})") from None
        except (FileExistsError, NotADirectoryError):
            raise DataError(f"{where} cannot be created: a folder on its path is a file") from None
        except OSError as exc:
            raise DataError(f"{where} cannot be created ({exc.strerror or exc})") from None
        return conn

    def get(self, game: str, coalitions: list[bytes]) -> dict[bytes, float]:
        """The stored values among ``coalitions`` (packed bits), as ``{coalition: value}``."""
        conn = self._connection()
        found: dict[bytes, float] = {}
        for start in range(0, len(coalitions), _CHUNK):
            chunk = coalitions[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT coalition, value FROM coalition_values WHERE game = ? AND coalition IN ({marks})",
                [game, *chunk],
            )
            found.update((bytes(c), float(v)) for c, v in rows)
        return found

    def put(self, game: str, coalitions: list[bytes], values: NDArray[np.float64]) -> None:
        """Store values (a coalition already stored keeps its first value)."""
        conn = self._connection()
        conn.executemany(
            "INSERT OR IGNORE INTO coalition_values (game, coalition, value) VALUES (?, ?, ?)",
            [(game, c, float(v)) for c, v in zip(coalitions, values, strict=True)],
        )
        conn.commit()

    def count(self, game: str | None = None) -> int:
        """Number of stored values (for one game key, or in all)."""
        conn = self._connection()
        if game is None:
            return int(conn.execute("SELECT COUNT(*) FROM coalition_values").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM coalition_values WHERE game = ?", [game]).fetchone()[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_conn": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def pack(coalitions: NDArray[np.bool_]) -> list[bytes]:
    """One ``bytes`` key per row of a boolean coalition matrix."""
    return [row.tobytes() for row in np.packbits(coalitions, axis=1)]
