"""Directories dataprice writes: it replaces only what it wrote itself, and never half of it.

A report directory (or a checkpoint of one replicate) is written into a hidden sibling
folder, sealed with ``manifest.json`` -- the format, the schema version, the package
version and the size and sha256 of every file -- and only then swapped in for the target.
The target is replaced only when it is

* absent or empty, or
* a directory dataprice wrote: its ``manifest.json`` names every file it holds (a directory
  holding anything else -- a user's notes, a thesis -- is refused, not deleted), or a
  report of an older version of dataprice (no manifest, only the file names it wrote);

anything else is a one-line :class:`~dataprice.errors.OutputError` naming the path, raised
before any work is done (:func:`check_output_dir`) and checked again at the swap. The
folder you are in and its parents are never replaced.

The swap is one ``renameat2(RENAME_EXCHANGE)`` on Linux, so at every instant the target is
either the old complete directory or the new one; elsewhere two renames. A run killed
while writing leaves a hidden ``.NAME.tmp-*`` folder marked with its process id; the next
write beside it removes such folders once their writer is gone (:func:`clean_stale`).
Folders are deleted by first moving them aside and marking them, the mark removed last,
so a deletion cut short by a kill is recognised and finished next time.

Readers verify what they read (:func:`read_manifest`, :func:`verified_bytes`): the size
and hash of each file against the manifest, so a truncated or edited file is a one-line
error, not a wrong number. (A hash protects against corruption, not against someone who
rewrites the manifest too; safety against hostile files comes from reading only data --
JSON, YAML, Parquet -- never code.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dataprice.errors import DataError, OutputError
from dataprice.inputs import checked_file, excerpt, max_data_bytes, path_problem

MANIFEST = "manifest.json"
#: Present in a folder while it is being written (pid and host of the writer).
PARTIAL_MARKER = ".dataprice-partial"
#: Present in a folder while dataprice deletes it (written first, removed last).
DISCARD_MARKER = ".dataprice-discard"
#: Written into a directory but not hashed (differ between identical runs).
UNHASHED = frozenset({"timings.json"})
#: Largest manifest read.
MAX_MANIFEST_BYTES = 16 * 2**20
#: A finished but not swapped-in folder older than this (seconds) is left over.
STALE_FINISHED_SECONDS = 60.0

# What versions of dataprice before manifests wrote into a report directory.
_LEGACY_FILES = frozenset({"report.html", "report.md", "scenario.yaml", "results.pkl", "valuations.json",
                           "provenance.json", "timings.json"})
_LEGACY_STEMS = frozenset({"sellers", "mechanisms", "values", "outcomes", "dynamics", "transactions",
                           "comparison", "per_seed", "aggregators", "payments_by_rule", "value_vs_cost",
                           "bids_over_rounds", "welfare_over_rounds"})
_LEGACY_SUFFIXES = frozenset({".csv", ".parquet", ".png"})


# --- is this directory ours? ---------------------------------------------------------------------


def _listed_files(manifest: dict) -> set[str]:
    files = manifest.get("files")
    return set(files) if isinstance(files, dict) else set()


def _manifest_of(directory: Path) -> dict | None:
    """The parsed manifest of ``directory`` when it has a plausible one, else None."""
    path = directory / MANIFEST
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or not str(manifest.get("format", "")).startswith("dataprice-"):
        return None
    return manifest


def foreign_entries(directory: Path) -> list[str] | None:
    """Entries of ``directory`` that dataprice did not write (relative paths), or None when
    dataprice does not recognise the directory as its own at all (no manifest, not a
    legacy report). ``[]`` means it is entirely dataprice's."""
    manifest = _manifest_of(directory)
    if manifest is None:
        return _legacy_foreign(directory)
    listed = _listed_files(manifest) | {MANIFEST, PARTIAL_MARKER, DISCARD_MARKER} | set(UNHASHED)
    folders = {str(Path(p).parent) for p in listed}
    foreign = []
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        for name in dirs + files:
            rel = str(rel_root / name) if str(rel_root) != "." else name
            full = Path(root) / name
            if full.is_symlink():
                foreign.append(rel)  # dataprice never writes links
            elif name in dirs:
                if not any(f == rel or f.startswith(rel + os.sep) for f in folders):
                    foreign.append(rel)
            elif rel not in listed:
                foreign.append(rel)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return sorted(foreign)


def _legacy_foreign(directory: Path) -> list[str] | None:
    """A report of a version without manifests: only the plain files it wrote, including
    ``report.html`` and ``scenario.yaml``. Anything else makes it unrecognised (None)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    names = set()
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            return None
        name = entry.name
        path = Path(name)
        if name not in _LEGACY_FILES and not (path.suffix in _LEGACY_SUFFIXES and path.stem in _LEGACY_STEMS):
            return None
        names.add(name)
    return [] if {"report.html", "scenario.yaml"} <= names else None


def _replace_problem(directory: Path) -> str | None:
    """Why ``directory`` (which exists) may not be replaced, or None."""
    if directory.is_symlink():
        return "is a symbolic link; give the real directory"
    if not directory.is_dir():
        return "is a file, not a directory"
    try:
        with os.scandir(directory) as it:
            if next(it, None) is None:
                return None  # empty
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    foreign = foreign_entries(directory)
    if foreign is None:
        return "exists and was not written by dataprice (no manifest.json); choose another directory or empty it"
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"holds files dataprice did not write ({shown}); move them or choose another directory"
    return None


def check_output_dir(path: Any, what: str = "output directory") -> Path:
    """``path`` as a directory dataprice may (re)write, checked before any work is done.

    Raises :class:`OutputError` (one line) for an unusable path, the folder you are in or one
    of its parents, or an existing directory that is not empty and not dataprice's own.
    """
    problem = path_problem(path)
    if problem:
        raise OutputError(f"{what}: {problem} (got {excerpt(path)})")
    target = Path(path)
    if target.name in {"", ".", ".."}:
        raise OutputError(f"{what} {excerpt(str(path))}: name a folder to write, not '.' or '..'")
    resolved = target.resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise OutputError(f"{what} {excerpt(str(path))} is the current folder or one of its parents; name a new folder")
    parent = resolved.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise OutputError(f"{what} {excerpt(str(path))}: {excerpt(str(ancestor))} is a file, not a folder")
            break
    if target.exists() or target.is_symlink():
        reason = _replace_problem(target)
        if reason:
            raise OutputError(f"{what} {excerpt(str(path), 200)} {reason}")
    return target


# --- writing -------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, fmt: str, schema: int, **fields: Any) -> dict:
    """Seal ``directory``: ``manifest.json`` with the size and sha256 of every file in it
    (except :data:`UNHASHED` and the partial marker), keys sorted, so equal content gives
    equal bytes."""
    from dataprice import __version__

    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            full = Path(root) / name
            rel = full.relative_to(directory).as_posix()
            if rel in UNHASHED or rel in {MANIFEST, PARTIAL_MARKER}:
                continue
            files[rel] = {"bytes": full.stat().st_size, "sha256": file_digest(full)}
    manifest = {"format": fmt, "schema": schema, "dataprice": __version__, **fields,
                "files": dict(sorted(files.items()))}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has finished: its folder is abandoned
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def _age(folder: Path) -> float:
    try:
        return time.time() - folder.stat().st_mtime
    except OSError:
        return 0.0


def _abandoned(folder: Path) -> bool:
    """A temporary folder whose writer is gone (see :func:`clean_stale`)."""
    marker = folder / PARTIAL_MARKER
    age = _age(folder)
    if marker.is_file():
        try:
            owner = json.loads(marker.read_text())
            pid, host = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return age > STALE_FINISHED_SECONDS  # the writer died while writing the marker
        if host == socket.gethostname():
            return not _pid_alive(pid)
        return age > 86_400  # another machine's, on a shared disk: give it a day
    try:
        empty = next(os.scandir(folder), None) is None
    except OSError:
        return False
    # made but not yet marked, or finished and sealed but never swapped in
    return (empty or _manifest_of(folder) is not None) and age > STALE_FINISHED_SECONDS


def _discard(folder: Path) -> None:
    """Delete a folder of dataprice's so that an interruption leaves it recognisable: the
    discard marker is written first and removed last, and :func:`clean_stale` finishes
    the job next time."""
    marker = folder / DISCARD_MARKER
    try:
        marker.touch()
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name == DISCARD_MARKER:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        marker.unlink()
        folder.rmdir()
    except OSError:
        pass


def _set_aside(folder: Path) -> Path:
    """Rename ``folder`` to a hidden ``.NAME.old-*`` sibling (one atomic step), so that it is
    gone from its place at once and deleted (:func:`_discard`) from there."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    os.replace(folder, aside)  # onto the empty folder just made
    return aside


def clean_stale(target: Path) -> list[Path]:
    """Remove what interrupted writes of ``target`` left beside it: ``.NAME.tmp-*`` folders
    whose writer is gone, ``.NAME.old-*`` copies of a replaced directory that are
    dataprice's, and any such folder whose deletion was interrupted. Returns the folders
    removed."""
    parent = target.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-[A-Za-z0-9_]+$")
    removed = []
    for entry in parent.iterdir():
        match = pattern.match(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        if (entry / DISCARD_MARKER).is_file():
            ours = True  # a deletion that was interrupted
        elif match.group(1) == "tmp":
            ours = _abandoned(entry)
        else:
            ours = _replace_problem(entry) is None or (next(os.scandir(entry), None) is None and _age(entry) > STALE_FINISHED_SECONDS)
        if ours:
            _discard(entry)
            removed.append(entry)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP}:
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, target: Path, what: str) -> None:
    """Put the finished folder ``new`` at ``target`` (replacing a replaceable directory)."""
    if target.exists() or target.is_symlink():
        reason = _replace_problem(target)
        if reason:  # changed since the check before the run
            raise OutputError(f"{what} {excerpt(str(target), 200)} {reason}")
        if _exchange(new, target):
            _discard(new)  # now holds the old directory
            return
        old = _set_aside(target)
        os.replace(new, target)
        _discard(old)
        return
    os.replace(new, target)


def write_directory(
    target: str | Path,
    fill: Callable[[Path], None],
    *,
    fmt: str,
    schema: int,
    what: str = "output directory",
    **manifest_fields: Any,
) -> Path:
    """Write a sealed directory at ``target``: ``fill(folder)`` writes the files into a
    hidden sibling folder, which gets its manifest and is then swapped in (see the module
    docstring). On any failure, including Ctrl-C, nothing at ``target`` changes."""
    target = check_output_dir(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)  # mkdtemp makes it private; a report is an ordinary folder
    try:
        (folder / PARTIAL_MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        fill(folder)
        write_manifest(folder, fmt, schema, **manifest_fields)
        (folder / PARTIAL_MARKER).unlink()
        _swap_in(folder, target, what)
    except BaseException:
        _discard(folder)
        raise
    return target


def remove_directory(target: Path, fmt: str) -> bool:
    """Delete ``target`` if it is a sealed dataprice directory of format ``fmt`` holding
    nothing else (used for checkpoints once a report is complete). Returns whether it did."""
    manifest = _manifest_of(target)
    if target.is_symlink() or manifest is None or manifest.get("format") != fmt or foreign_entries(target):
        return False
    _discard(_set_aside(target))
    return True


# --- reading -------------------------------------------------------------------------------------

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def read_manifest(directory: str | Path, formats: Iterable[str], max_schema: int, what: str) -> dict:
    """The verified-shape manifest of a dataprice directory, or a one-line DataError."""
    directory = Path(directory)
    path = checked_file(directory / MANIFEST, f"{what} manifest", limit=MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataError(f"{path}: not valid JSON; the directory is damaged") from None
    formats = tuple(formats)
    if not isinstance(manifest, dict) or manifest.get("format") not in formats:
        raise DataError(f"{path}: not a {what} manifest (format {excerpt(manifest.get('format') if isinstance(manifest, dict) else manifest)}; expected {' or '.join(formats)})")
    schema = manifest.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise DataError(f"{path}: schema must be a positive integer (got {excerpt(schema)})")
    if schema > max_schema:
        raise DataError(
            f"{path}: written by dataprice {excerpt(manifest.get('dataprice'))} in schema {schema}; "
            f"this version reads up to schema {max_schema}: upgrade dataprice"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError(f"{path}: 'files' must be a mapping of file names to sizes and hashes")
    for name, entry in files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or "\\" in name or not name or "\x00" in name:
            raise DataError(f"{path}: file name {excerpt(name)} leaves the directory")
        if (not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or entry["bytes"] < 0
                or not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"])):
            raise DataError(f"{path}: the entry of {excerpt(name)} needs 'bytes' (an integer) and 'sha256' (64 hex digits)")
    return manifest


def verified_bytes(directory: str | Path, name: str, manifest: dict) -> bytes:
    """The content of ``name`` in ``directory``, checked against the manifest's size and hash."""
    directory = Path(directory)
    entry = manifest["files"].get(name)
    if entry is None:
        raise DataError(f"{directory}: {name} is missing from {MANIFEST}; the directory is incomplete")
    if entry["bytes"] > max_data_bytes():
        raise DataError(
            f"{directory / name}: {entry['bytes']:,} bytes is over the limit of {max_data_bytes():,} "
            "(raise it with DATAPRICE_MAX_INPUT_MB)"
        )
    path = checked_file(directory / name, "file")
    if path.stat().st_size != entry["bytes"]:
        raise DataError(f"{path}: size differs from {MANIFEST} (damaged or edited); re-run the scenario")
    data = path.read_bytes()
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise DataError(f"{path}: content differs from {MANIFEST} (damaged or edited); re-run the scenario")
    return data
