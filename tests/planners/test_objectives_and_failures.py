"""Several objectives (Pareto front, hypervolume), failed samples, and prior data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from labflow.errors import ObservationError
from labflow.objectives import Objective
from labflow.planners import BayesianPlanner, RandomPlanner
from labflow.planners.pareto import hypervolume, infer_reference_point, pareto_mask
from labflow.records import Observation, Status
from labflow.space import Real, Space

FAST = {"num_restarts": 2, "raw_samples": 64, "mc_samples": 32, "maxiter": 50}


@pytest.fixture
def square() -> Space:
    return Space([Real("x1", 0, 1), Real("x2", 0, 1)])


def two_objectives(df: pd.DataFrame) -> pd.DataFrame:
    """A trade-off: cost rises as defects fall (both minimized), measured with 1 % noise."""
    x1, x2 = df["x1"], df["x2"]
    noise = np.random.default_rng(len(df) + int(1000 * x1.sum())).normal(0, 0.01, (2, len(df)))
    out = df.copy()
    out["cost"] = x1 + 0.05 * np.sin(6 * x2) + noise[0]
    out["defects"] = (1 + x2) * (1 - np.sqrt(x1 / (1 + x2))) + noise[1]
    return out


# -- Pareto fronts and hypervolumes -----------------------------------------------------------


def test_pareto_mask_keeps_undominated_points():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [1.0, 0.0]])
    assert pareto_mask(Y).tolist() == [True, True, True, False, True]


def test_hypervolume_matches_botorch():
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    Y = np.random.default_rng(0).random((40, 3))
    ref = np.array([0.1, 0.0, 0.2])
    expected = Hypervolume(torch.tensor(ref)).compute(torch.tensor(Y[(Y > ref).all(axis=1)]))
    assert hypervolume(Y, ref) == pytest.approx(expected, rel=1e-12)
    assert hypervolume(np.array([[2.0, 3.0]]), np.array([0.0, 0.0])) == 6.0


def test_reference_point_is_just_beyond_the_worst_pareto_value():
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(infer_reference_point(Y), [-0.1, -0.1])


def test_any_planner_reports_its_pareto_front_and_hypervolume(square):
    objectives = [Objective("cost", "minimize", threshold=1.0), Objective("defects", "minimize", threshold=2.0)]
    planner = RandomPlanner(square, objectives, seed=0)
    planner.observe(two_objectives(planner.suggest(20)))
    front = planner.pareto_front()
    assert list(front.columns) == ["x1", "x2", "cost", "defects", "uid"]
    assert front["cost"].is_monotonic_increasing and front["defects"].is_monotonic_decreasing
    assert planner.reference_point() == {"cost": 1.0, "defects": 2.0}
    assert 0 < planner.hypervolume() < 2.0


def test_two_objective_campaign_grows_the_hypervolume(square):
    objectives = [Objective("cost", "minimize", threshold=1.1), Objective("defects", "minimize", threshold=1.1)]
    planner = BayesianPlanner(square, objectives, seed=0, **FAST)
    assert planner.settings()["acquisition"] == "qLogNEHVI"
    planner.observe(two_objectives(planner.suggest(4)))
    start = planner.hypervolume()
    for _ in range(3):
        planner.observe(two_objectives(planner.suggest(2)))
    assert planner.last_generator == "qLogNEHVI"
    assert planner.last_decision["ref_point"] == {"cost": 1.1, "defects": 1.1}
    assert planner.hypervolume() > start
    assert len(planner.pareto_front()) >= 3


# -- failed experiments -------------------------------------------------------------------------


def run_with_a_brittle_region(planner: BayesianPlanner, n: int, sample_fault: bool) -> int:
    """Films with x1 > 0.6 crack; the yield rises towards x1 = 0.6. Returns failures after the initial design."""
    failures = 0
    for i in range(n):
        (c,) = planner.ask(1)
        if c.params["x1"] > 0.6:
            failures += i >= planner.n_initial
            planner.tell(Observation(c.uid, c.params, status=Status.FAILED, reason="film cracked", sample_fault=sample_fault))
        else:
            planner.tell(Observation(c.uid, c.params, {"y": c.params["x1"] + 0.3 * c.params["x2"]}))
    return failures


def test_sample_faults_teach_the_planner_where_samples_fail(square):
    aware = BayesianPlanner(square, Objective("y"), seed=0, **FAST)
    blind = BayesianPlanner(square, Objective("y"), seed=0, feasibility=False, **FAST)
    assert run_with_a_brittle_region(aware, 12, True) < run_with_a_brittle_region(blind, 12, True)
    assert "feasibility" in aware.last_decision["model"]


def test_instrument_faults_do_not_count_against_the_sample(square):
    planner = BayesianPlanner(square, Objective("y"), seed=0, **FAST)
    run_with_a_brittle_region(planner, 7, sample_fault=False)
    assert "feasibility" not in planner.last_decision["model"]


def test_a_sample_fault_column_in_a_dataframe(square):
    planner = BayesianPlanner(square, Objective("y"), seed=0, **FAST)
    df = pd.DataFrame(
        {"x1": [0.1, 0.9, 0.5], "x2": [0.2, 0.8, 0.5], "y": [1.0, None, 2.0], "status": ["completed", "failed", "completed"],
         "sample_fault": [False, True, False]}
    )
    planner.observe(df)
    assert [o.sample_fault for o in planner.observations] == [False, True, False]


# -- prior data -----------------------------------------------------------------------------------


def test_warm_start_from_a_csv_of_past_measurements(square, tmp_path):
    past = pd.DataFrame({"x1": [0.1, 0.4, 0.7, 0.9, 0.3], "x2": [0.2, 0.5, 0.1, 0.8, 0.9]})
    past["y"] = past["x1"] + past["x2"]
    path = tmp_path / "past.csv"
    past.to_csv(path, index=False)
    planner = BayesianPlanner(square, Objective("y"), seed=0, **FAST)
    assert planner.observe_prior(path) == 5
    assert planner.observations[0].uid.startswith("prior-")  # a digest of the row: reading the file again adds nothing
    planner.suggest(1)
    assert planner.last_generator == "qLogNEI"  # the prior data replaced the initial design


def test_prior_data_with_units_and_rows_outside_the_space(tmp_path):
    space = Space([Real("temperature", 20, 200, "degC"), Real("time", 1, 60, "min")])
    past = pd.DataFrame({"temperature": ["100 degC", "400 K", "250 degC"], "time": ["0.5 h", "10 min", "5 min"], "y": [1.0, 2.0, 3.0]})
    planner = RandomPlanner(space, Objective("y"))
    with pytest.raises(ObservationError, match="temperature"):
        planner.observe_prior(past)
    assert planner.observe_prior(past, outside="skip") == 2
    assert planner.observations[1].params["temperature"] == pytest.approx(126.85)
    assert planner.observations[0].params["time"] == pytest.approx(30.0)
