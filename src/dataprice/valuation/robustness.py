"""How much values depend on the utility the buyer declared (utility robustness).

A buyer measures quality one way (preference accuracy, hit@k), but another measure would be
as defensible (mean ``log sigma`` of the margin, MRR). Values, and the payments built on
them, can move with that choice. This module says how far.

**Spatial signature.** A semivalue is linear in the utility: for two utilities ``u`` and
``w`` and numbers ``a, b``, ``phi_j(a u + b w) = a phi_j(u) + b phi_j(w)``. Following
Tamine, Heymann, Loiseau & Vono ("On the Impact of the Utility in Semivalue-based Data
Valuation", ICLR 2026), each seller ``j`` is a point ``psi_j = (phi_j(u) / |phi(u)|,
phi_j(w) / |phi(w)|)`` of the plane of the two utilities (each utility's values scaled to
unit norm, so that neither's units decide), and the utility ``u_theta = cos(theta) u +
sin(theta) w`` ranks the sellers by the projections ``<psi_j, (cos theta, sin theta)>``.
``theta = 0`` is the declared utility, ``theta = 90`` degrees the other one, and the angles in
between are their mixtures.

**Swap angles.** Two sellers ``i, j`` ordered one way at ``theta = 0`` change order at the
angle where ``<psi_i - psi_j, (cos theta, sin theta)> = 0``; turning the utility towards
``w`` by ``theta`` swaps exactly the pairs whose angle is below ``theta`` (each pair once in
``(0, 180)`` degrees). The *p-swap angle* is the ``p``-th smallest of them: how far the
utility must turn before ``p`` pairs of sellers change order (larger: more robust). It is our
reading of the paper's ``p``-swap robustness ``R_p``, whose exact formula and normalisation
were not available to us offline; we quote it in degrees, and the share of pairs swapped at
``w`` itself (the Kendall distance between the two rankings), which it must agree with
(tested). Pairs tied under the declared utility have no order to lose and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Values this close (relative to the largest) count as tied.
TIE_TOLERANCE = 1e-12


def spatial_signature(declared: NDArray[np.float64], other: NDArray[np.float64]) -> NDArray[np.float64]:
    """``psi[j] = (phi_j(u) / |phi(u)|, phi_j(w) / |phi(w)|)``, shape ``(n, 2)`` (NaN where a
    utility gives every seller 0: it has no direction)."""
    columns = []
    for values in (np.asarray(declared, dtype=np.float64), np.asarray(other, dtype=np.float64)):
        norm = float(np.linalg.norm(values))
        columns.append(values / norm if norm > 0 else np.full(values.shape, np.nan))
    return np.stack(columns, axis=1)


def swap_angles(declared: NDArray[np.float64], other: NDArray[np.float64]) -> NDArray[np.float64]:
    """For every pair of sellers ordered (not tied) under ``declared``, the angle in degrees,
    in ``(0, 180)``, by which the utility must turn from ``declared`` towards ``other`` for
    the pair to change order (sorted ascending)."""
    psi = spatial_signature(declared, other)
    i, j = np.triu_indices(psi.shape[0], k=1)
    a, b = psi[i, 0] - psi[j, 0], psi[i, 1] - psi[j, 1]
    ordered = np.abs(a) > TIE_TOLERANCE * max(1.0, float(np.nanmax(np.abs(psi[:, 0]), initial=0.0)))
    a, b = a[ordered], b[ordered]
    # a cos(t) + b sin(t) = 0  <=>  t = atan2(-a, b) (mod 180 degrees)
    angles = np.degrees(np.mod(np.arctan2(-a, b), np.pi))
    return np.sort(angles)


def p_swap_angle(angles: NDArray[np.float64], p: int) -> float:
    """The ``p``-th smallest swap angle (NaN when fewer than ``p`` pairs are ordered)."""
    return float(angles[p - 1]) if 0 < p <= angles.size else math.nan


@dataclass(frozen=True)
class UtilityComparison:
    """The declared utility against another, for one semivalue.

    Attributes:
        declared, other: the utilities' names; semivalue: ``shapley`` or ``banzhaf``.
        spearman, kendall: rank correlations of the sellers' values under the two.
        swapped: share of the ordered pairs of sellers whose order differs under ``other``.
        first_swap: the 1-swap angle in degrees (how far the utility turns before any pair
            of sellers changes order).
        tenth_swap: the angle at which a tenth of the ordered pairs have changed order.
    """

    declared: str
    other: str
    semivalue: str
    spearman: float
    kendall: float
    swapped: float
    first_swap: float
    tenth_swap: float

    def sentence(self) -> str:
        """The comparison in one line of the report."""
        if not np.isfinite(self.first_swap):
            turn = "no two sellers are ordered under the declared utility"
        elif self.first_swap > 90.0:
            turn = (f"no mix of the two changes the order of any pair: the first swap is at {self.first_swap:.1f} "
                    f"degrees, past {self.other} (90), a tenth of the pairs by {self.tenth_swap:.1f}")
        else:
            turn = (f"turning the utility {self.first_swap:.1f} degrees towards {self.other} (90 is {self.other} "
                    f"itself) changes the order of a first pair of sellers, {self.tenth_swap:.1f} degrees a tenth "
                    "of them")
        return (f"{self.semivalue.capitalize()} values under {self.declared} and {self.other}: Spearman "
                f"{self.spearman:.2f}, Kendall {self.kendall:.2f}; {self.swapped:.0%} of the pairs of sellers are "
                f"ordered differently; {turn}.")


def compare_utilities(values: Mapping[str, NDArray[np.float64]], declared: str,
                      semivalue: str = "shapley") -> list[UtilityComparison]:
    """The declared utility's values against each other utility's (``values``: utility name
    -> one value per seller)."""
    from scipy.stats import kendalltau, spearmanr  # (scipy.stats is slow to import: only when used)

    base = np.asarray(values[declared], dtype=np.float64)
    out = []
    for name, other in values.items():
        if name == declared:
            continue
        other = np.asarray(other, dtype=np.float64)
        constant = np.ptp(base) == 0 or np.ptp(other) == 0  # a utility that tells no seller apart
        angles = np.empty(0) if constant else swap_angles(base, other)
        pairs = angles.size
        out.append(UtilityComparison(
            declared=declared, other=name, semivalue=semivalue,
            spearman=math.nan if constant else float(spearmanr(base, other).statistic),
            kendall=math.nan if constant else float(kendalltau(base, other).statistic),
            swapped=float(np.mean(angles < 90.0)) if pairs else math.nan,
            first_swap=p_swap_angle(angles, 1),
            tenth_swap=p_swap_angle(angles, max(1, math.ceil(0.1 * pairs))),
        ))
    return out
