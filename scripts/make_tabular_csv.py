"""Write ``scenarios/data/wine_labs.csv``, the table of ``scenarios/tabular_csv.yaml``.

Built deterministically from scikit-learn's bundled wine data (178 wines, 13 measurements,
3 cultivars; no download): each row gets an owner, ``lab``, one of five labs (the rows
shuffled with seed 0 and dealt in turn); ``color_intensity`` becomes a categorical column
``color_band`` (``pale`` below 3.5, ``medium`` below 6, else ``deep``); the label is the
cultivar's name. ``lab_e`` mislabelled 40% of its rows (another cultivar, drawn with the
same seed), so a market should pay it less. Running the script again gives the same bytes.

    python scripts/make_tabular_csv.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

OUT = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "wine_labs.csv"
LABS = ["lab_a", "lab_b", "lab_c", "lab_d", "lab_e"]
CULTIVARS = np.array(["barolo", "grignolino", "barbera"])
NOISY_LAB, NOISY_FRACTION = "lab_e", 0.4


def main() -> None:
    wine = load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    order = rng.permutation(len(wine))
    table = wine.iloc[order].reset_index(drop=True)
    labels = table.pop("target").to_numpy()
    bands = np.where(table["color_intensity"] < 3.5, "pale", np.where(table["color_intensity"] < 6.0, "medium", "deep"))
    table = table.drop(columns="color_intensity").rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
    table.insert(0, "lab", [LABS[i % len(LABS)] for i in range(len(table))])
    table["color_band"] = bands
    noisy = np.flatnonzero(table["lab"].to_numpy() == NOISY_LAB)
    flipped = rng.choice(noisy, size=int(round(NOISY_FRACTION * noisy.size)), replace=False)
    labels = labels.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 3, size=flipped.size)) % 3
    table["cultivar"] = CULTIVARS[labels]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT, index=False, float_format="%.4g", lineterminator="\n")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {len(table)} rows)")


if __name__ == "__main__":
    main()
