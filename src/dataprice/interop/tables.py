"""A tabulated game as a file any tool can read, and back.

Two formats, each one self-describing file with a manifest inside:

* ``.parquet``: one row per coalition, columns ``coalition`` (the bitmask
  ``sum_{j in S} 2^j``, int64) and ``value`` (float64), the manifest in the schema's
  key-value metadata under ``dataprice``;
* ``.npz``: arrays ``values`` (``values[mask] = v(S)``), ``player_names`` and ``manifest``
  (the manifest as a JSON string); read with ``allow_pickle=False``.

The manifest says ``format: dataprice-game``, its ``version``, ``n_players``,
``player_names`` and the sha256 of the float64 values in bitmask order, which
:func:`import_game` checks. A file that is not such a game (wrong or missing manifest,
missing or repeated coalitions, a value that is not a finite number, a changed value, too
large) is refused in one line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataprice.errors import DataError, OutputError
from dataprice.inputs import checked_file, excerpt, max_data_bytes, path_problem
from dataprice.valuation.game import MAX_TABULATION_PLAYERS, Game, TabulatedGame, tabulate

FORMAT = "dataprice-game"
VERSION = 1
SUFFIXES = (".parquet", ".npz")


def _manifest(table: TabulatedGame) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "n_players": table.n_players,
            "player_names": list(table.player_names), "values_sha256": _digest(table.values)}


def _digest(values: NDArray[np.float64]) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f8").tobytes()).hexdigest()


def export_game(game: Game, path: str | Path) -> Path:
    """Write ``game``'s table (tabulated first if it is not, up to
    ``MAX_TABULATION_PLAYERS`` players) to ``path`` (``.parquet`` or ``.npz``). An existing
    file is never replaced."""
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise OutputError(f"export_game: {problem} (got {excerpt(str(path))})")
    if path.suffix not in SUFFIXES:
        raise OutputError(f"export_game: {excerpt(str(path), 200)}: the file must end in .parquet or .npz")
    if path.exists() or path.is_symlink():
        raise OutputError(f"export_game: {excerpt(str(path), 200)} exists; choose another name")
    if not isinstance(game, TabulatedGame):
        if game.n_players > MAX_TABULATION_PLAYERS:
            raise OutputError(f"export_game: a game of {game.n_players} players has 2^{game.n_players} coalitions; "
                              f"at most {MAX_TABULATION_PLAYERS} players can be exported")
        game = tabulate(game)
    manifest = _manifest(game)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    if path.suffix == ".npz":
        with tmp.open("xb") as fh:
            np.savez_compressed(fh, values=game.values, player_names=np.array(game.player_names, dtype=str),
                                manifest=np.array(json.dumps(manifest)))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"coalition": np.arange(game.values.shape[0], dtype=np.int64), "value": game.values})
        table = table.replace_schema_metadata({"dataprice": json.dumps(manifest)})
        pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def import_game(path: str | Path) -> TabulatedGame:
    """The table written by :func:`export_game` (or any file in that format), checked."""
    p = checked_file(path, "game file", limit=4 * max_data_bytes())
    where = excerpt(str(p), 200)
    if p.suffix not in SUFFIXES:
        raise DataError(f"game file {where}: expected .parquet or .npz")
    values, manifest = _read_npz(p, where) if p.suffix == ".npz" else _read_parquet(p, where)
    return _checked(values, manifest, where)


def _read_npz(p: Path, where: str) -> tuple[NDArray, Any]:
    try:
        with np.load(p, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"game file {where}: not a .npz archive of arrays")
            missing = [k for k in ("values", "manifest") if k not in npz.files]
            if missing:
                raise DataError(f"game file {where}: array {missing[0]!r} is missing (found {', '.join(npz.files)})")
            values, text = np.asarray(npz["values"]), str(npz["manifest"])
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"game file {where}: not a readable .npz archive ({excerpt(str(exc), 80)})") from None
    return values, _parse_manifest(text, where)


def _read_parquet(p: Path, where: str) -> tuple[NDArray, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(p)
        meta = (schema.metadata or {}).get(b"dataprice")
        if meta is None:
            raise DataError(f"game file {where}: no dataprice manifest in the Parquet metadata")
        missing = [c for c in ("coalition", "value") if c not in schema.names]
        if missing:
            raise DataError(f"game file {where}: column {missing[0]!r} is missing (found {', '.join(schema.names)})")
        table = pq.read_table(p, columns=["coalition", "value"])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"game file {where}: not a readable Parquet file ({excerpt(str(exc), 80)})") from None
    manifest = _parse_manifest(meta.decode("utf-8", errors="replace"), where)
    try:
        masks = table.column("coalition").to_numpy().astype(np.int64)
        values = table.column("value").to_numpy().astype(np.float64)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"game file {where}: columns coalition and value must be numbers ({excerpt(str(exc), 80)})") \
            from None
    n = manifest.get("n_players") if isinstance(manifest, dict) else None
    size = 2 ** n if isinstance(n, int) and 1 <= n <= MAX_TABULATION_PLAYERS else None
    if size is not None:
        if masks.shape[0] != size or np.any((masks < 0) | (masks >= size)) or np.unique(masks).shape[0] != size:
            raise DataError(f"game file {where}: needs each of the 2^{n} coalitions 0..{size - 1} exactly once "
                            f"(got {masks.shape[0]} rows)")
        ordered = np.empty(size)
        ordered[masks] = values
        values = ordered
    return values, manifest


def _parse_manifest(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise DataError(f"game file {where}: the manifest is not JSON") from None


def _checked(values: NDArray, manifest: Any, where: str) -> TabulatedGame:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"game file {where}: not a dataprice game (manifest format must be {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise DataError(f"game file {where}: manifest version {excerpt(manifest.get('version'))}; this dataprice "
                        f"reads version {VERSION}")
    n = manifest.get("n_players")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_TABULATION_PLAYERS:
        raise DataError(f"game file {where}: n_players must be an integer in 1..{MAX_TABULATION_PLAYERS} "
                        f"(got {excerpt(n)})")
    names = manifest.get("player_names")
    if not isinstance(names, list) or len(names) != n or not all(isinstance(x, str) and x for x in names) \
            or len(set(names)) != n:
        raise DataError(f"game file {where}: player_names must be {n} distinct non-empty names")
    if values.dtype.kind not in "fiu" or values.shape != (2**n,):
        raise DataError(f"game file {where}: expected 2^{n} = {2**n} numeric values, got shape {values.shape} "
                        f"of {values.dtype}")
    values = values.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"game file {where}: the value of coalition {int(bad[0])} is {values[bad[0]]}; every value "
                        "must be a finite number")
    if manifest.get("values_sha256") != _digest(values):
        raise DataError(f"game file {where}: the values do not match the manifest's sha256 (the file was changed "
                        "after it was written)")
    return TabulatedGame(values, names)
