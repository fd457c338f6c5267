"""Running a scenario: replicates, results and their tables, checkpoints, saved runs.

* :mod:`.run` -- :func:`run_scenario` (every replicate, on any engine);
* :mod:`.replicate` -- one replicate: game, values, the repeated market, the audit;
* :mod:`.environment` -- the market a replicate settles in, round after round;
* :mod:`.results`, :mod:`.tables` -- :class:`RunResult` and the tables a report shows;
* :mod:`.compare` -- the payment rules side by side over seeds;
* :mod:`.checkpoints`, :mod:`.persist` -- finished replicates and whole runs as data.
"""

from __future__ import annotations

from dataprice.experiment.checkpoints import ReplicateCheckpoints, scenario_key
from dataprice.experiment.replicate import game_key, run_replicate
from dataprice.experiment.results import ReplicateResult, RunResult
from dataprice.experiment.run import run_scenario

__all__ = ["ReplicateCheckpoints", "ReplicateResult", "RunResult", "game_key", "run_replicate", "run_scenario",
           "scenario_key"]
