"""How much sellers gain by misreporting in the continuous market, as their costs grow.

In the mean-estimation market (``scenarios/mean_estimation.yaml``) seller ``j``'s utility
under a payment rule is ``u_j(a) = p_j(a) - c_j f_j(W(a))``. Under LOO, at truthful reports,
its derivative in ``j``'s own report is ``sum_{k != j} c_k d f_k / d a_j``: the allocation's
first-order condition cancels ``j``'s own term, not the others' costs, so LOO (and Shapley)
are manipulable to *first* order, and the gain from a misreport grows with the costs.
Myerson and VCG are truthful: their derivative at the truth is 0 and the audit finds no
gain at any scale.

For each cost scale ``s`` (the scenario's costs times ``s``) this prints

* the audit's best misreport gain over sellers and replicates, per rule, from a full run of
  the scenario through the public API (``dp.run``), and that gain relative to the mean
  payment;
* the derivative ``d u_j / d a_j`` at the truth by central differences (``h = 1e-6`` of the
  cost), largest in absolute value over sellers, on the scenario's first replicate market.

    python benchmarks/continuous_manipulation.py [--scales 1 3 10 30 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dataprice as dp
from dataprice.buyers.mean_estimation.task import make_mean_estimation_task
from dataprice.market.kinds import ContinuousMarket
from dataprice.rng import child_seed

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "mean_estimation.yaml"
RULES = ("loo", "shapley", "myerson", "vcg")


def utility_slopes(market: ContinuousMarket, costs: np.ndarray, rule: str, h: float = 1e-6) -> np.ndarray:
    """``d u_j / d a_j`` at ``a = costs`` for every seller, by central differences."""
    slopes = np.zeros(costs.size)
    for j in range(costs.size):
        step = h * max(costs[j], 1e-12)
        up, down = costs.copy(), costs.copy()
        up[j] += step
        down[j] -= step
        u_up = market.settle(up, rule, costs).utilities[j]
        u_down = market.settle(down, rule, costs).utilities[j]
        slopes[j] = (u_up - u_down) / (2 * step)
    return slopes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 3, 10, 30, 50])
    args = parser.parse_args()
    base = dp.load(SCENARIO)
    costs0 = np.asarray(base.sellers.costs, dtype=np.float64)
    buyer = base.buyer
    print(f"{SCENARIO.name}: {base.sellers.count} sellers, costs {costs0.tolist()} times the scale; "
          f"{base.replicates} replicates, audit grid of {base.audit.grid_points} points")
    header = "scale  " + "  ".join(f"{r + ' gain':>14s} {'(rel.)':>8s}" for r in RULES) + "  " + \
        "  ".join(f"{'max |du/da| ' + r:>20s}" for r in RULES)
    print(header)
    started = time.perf_counter()
    for scale in args.scales:
        costs = costs0 * scale
        scenario = dp.load(SCENARIO, sellers={"count": base.sellers.count, "costs": costs.tolist()})
        result = dp.run(scenario, progress=False)
        cells = []
        for rule in RULES:
            gains = np.array([rep.audits[rule].gain for rep in result.replicates])
            paid = np.mean([np.mean(o.payments) for rep in result.replicates for o in rep.outcomes[rule]])
            cells.append(f"{gains.max():14.5f} {gains.max() / abs(paid):8.1e}")
        # the first replicate's market (the task is drawn from the replicate's seed)
        task = make_mean_estimation_task(
            base.sellers.count, buyer.n_buyers, dim=buyer.dim, noise=buyer.noise, correlation=buyer.correlation,
            value_per_quality=buyer.value_per_quality, seed=child_seed(scenario.seed, 0),
        )
        market = ContinuousMarket(task)
        slopes = [np.abs(utility_slopes(market, costs, rule)).max() for rule in RULES]
        print(f"{scale:5g}  " + "  ".join(cells) + "  " + "  ".join(f"{s:20.2e}" for s in slopes), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
