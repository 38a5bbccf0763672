"""Every labflow planner passes the conformance suite that users can run on their own planners."""

from __future__ import annotations

import pytest

from labflow.planners import BASELINES, BayesianPlanner, Fidelity, MultiFidelityPlanner
from labflow.testing import check_planner, planner_checks

FAST = {"num_restarts": 2, "raw_samples": 64, "mc_samples": 32, "maxiter": 50}
LIGHT = {"num_restarts": 1, "raw_samples": 32, "mc_samples": 32, "maxiter": 30}  # one search per fidelity: keep it short

FACTORIES = {
    **{name: (lambda cls: lambda space, objectives, seed: cls(space, objectives, seed=seed))(cls) for name, cls in BASELINES.items()},
    "bayesian": lambda space, objectives, seed: BayesianPlanner(space, objectives, seed=seed, **FAST),
    "multifidelity": lambda space, objectives, seed: MultiFidelityPlanner(
        space, objectives, seed=seed, fidelities=[Fidelity("simulation", 1.0), Fidelity("experiment", 10.0)], **LIGHT
    ),
}


@pytest.mark.parametrize("check", planner_checks(), ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("planner", list(FACTORIES))
def test_planner_conforms(planner, check):
    check(FACTORIES[planner])


def test_check_planner_catches_a_planner_that_ignores_pending():
    from labflow.planners import RandomPlanner

    class Stubborn(RandomPlanner):
        """Always suggests the same point: the centre of the space."""

        def _propose(self, n, X_pending):
            import numpy as np

            return np.tile(self.space.encode([self.space.center()])[0], (n, 1))

    with pytest.raises(AssertionError, match="repeated point|pending"):
        check_planner(lambda space, objectives, seed: Stubborn(space, objectives, seed=seed))
