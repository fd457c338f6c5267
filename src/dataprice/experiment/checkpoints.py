"""Finished replicates kept on disk, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

from dataprice import __version__
from dataprice.experiment.results import ReplicateResult
from dataprice.scenario import Scenario


def scenario_key(scenario: Scenario) -> str:
    """sha256 of the resolved scenario and the package version: what a checkpoint is valid for."""
    from dataprice.scenario import scenario_to_yaml

    return hashlib.sha256(f"{__version__}\n{scenario_to_yaml(scenario)}".encode()).hexdigest()


class ReplicateCheckpoints:
    """Finished replicates on disk, ``<folder>/<scenario key>/replicate_<r>/``.

    A run that is interrupted and started again loads the replicates it already finished
    (same scenario, same version) and computes only the rest, so it ends with the same
    result as an uninterrupted run. Each replicate is a sealed folder of data files
    (:mod:`dataprice.persist`: JSON and Parquet, sizes and hashes in its manifest, written
    atomically); nothing is unpickled. A checkpoint that does not verify is ignored with a
    warning and its replicate computed again.
    """

    def __init__(self, folder: str | Path, scenario: Scenario) -> None:
        self.root = Path(folder)
        self.key = scenario_key(scenario)
        self.folder = self.root / self.key

    def path(self, replicate: int) -> Path:
        return self.folder / f"replicate_{replicate}"

    def load(self, replicate: int) -> ReplicateResult | None:
        from dataprice.errors import DatapriceError
        from dataprice.experiment.persist import read_replicate_dir

        path = self.path(replicate)
        if not path.is_dir() or path.is_symlink() or self.root.is_symlink():
            return None
        try:
            result = read_replicate_dir(path)
        except DatapriceError as exc:
            warnings.warn(f"ignoring checkpoint {path}: {exc}", stacklevel=2)
            return None
        return result if result.replicate == replicate else None

    def save(self, result: ReplicateResult) -> None:
        from dataprice.experiment.persist import REPLICATE_FORMAT, SCHEMA, write_replicate
        from dataprice.safedir import write_directory

        if self.root.is_symlink():
            return  # not a folder dataprice made: keep no checkpoints there
        self.folder.mkdir(parents=True, exist_ok=True)
        write_directory(
            self.path(result.replicate), lambda folder: write_replicate(result, folder),
            fmt=REPLICATE_FORMAT, schema=SCHEMA, what="checkpoint", scenario_key=self.key,
        )

    def clear(self) -> None:
        """Remove the checkpoints this run wrote (only sealed replicate folders), then the
        scenario's folder and the checkpoint folder when nothing else is left in them."""
        from dataprice.experiment.persist import REPLICATE_FORMAT
        from dataprice.safedir import clean_stale, remove_directory

        if not self.folder.is_dir() or self.folder.is_symlink() or self.root.is_symlink():
            return
        for entry in list(self.folder.iterdir()):
            match = re.match(r"^\.?(replicate_\d+)", entry.name)
            if match:  # a replicate folder, or what an interrupted write of one left
                target = self.folder / match.group(1)
                remove_directory(target, REPLICATE_FORMAT)
                clean_stale(target)
        for folder in (self.folder, self.root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
