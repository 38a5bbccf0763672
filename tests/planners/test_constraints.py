"""Linear and mixture constraints: written in parameter units, satisfied by every suggestion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labflow.errors import SpaceError
from labflow.objectives import Objective
from labflow.planners import BayesianPlanner, RandomPlanner, SobolPlanner
from labflow.space import Categorical, LinearConstraint, Real, Space, SumConstraint

FAST = {"num_restarts": 2, "raw_samples": 64, "mc_samples": 32}


@pytest.fixture
def mixture() -> Space:
    """Three precursor fractions that make up the whole film, and an anneal temperature."""
    return Space(
        [
            Real("zn", 0, 1),
            Real("sn", 0, 1),
            Real("cu", 0.1, 0.6),
            Real("anneal", 300, 600, "degC"),
            Categorical("atmosphere", ("air", "argon")),
        ],
        [SumConstraint(("zn", "sn", "cu"), total=1.0), LinearConstraint({"cu": 1000, "anneal": 1}, "<=", 1000)],
    )


def test_constraints_are_written_in_parameter_units(mixture):
    ok = {"zn": 0.5, "sn": 0.3, "cu": 0.2, "anneal": 700 - 0.2 * 1000 - 100, "atmosphere": "air"}
    assert mixture.feasible(ok).all()
    assert mixture.violations({**ok, "zn": 0.6}) == ["zn + sn + cu == 1 (left-hand side 1.1)"]
    assert not mixture.feasible({**ok, "anneal": 900}).any()


def test_percentages_summing_to_100():
    space = Space([Real(n, 0, 100, "percent") for n in ("a", "b", "c")], [SumConstraint(("a", "b", "c"), 100)])
    df = space.sample(50, seed=0)
    np.testing.assert_allclose(df.sum(axis=1), 100, atol=1e-9)


def test_sampling_fills_the_feasible_region(mixture):
    df = mixture.sample(400, seed=1)
    assert mixture.feasible(df).all()
    # roughly uniform on the constrained simplex: every fraction takes low and high values
    for name, high in (("zn", 0.8), ("sn", 0.8), ("cu", 0.5)):
        assert df[name].min() < 0.15 and df[name].max() > high


def test_repair_moves_a_point_to_the_nearest_feasible_one(mixture):
    U = mixture.encode([{"zn": 0.5, "sn": 0.5, "cu": 0.3, "anneal": 650 - 300, "atmosphere": "argon"}])
    fixed = mixture.decode(mixture.repair(U)).iloc[0]
    assert mixture.feasible(fixed.to_dict()).all()
    assert fixed["zn"] == pytest.approx(fixed["sn"])  # symmetric excess removed symmetrically
    assert fixed["atmosphere"] == "argon"


def test_unit_cube_form_for_botorch(mixture):
    rows = mixture.unit_constraints()
    assert [kind for *_, kind in rows] == ["eq", "ineq"]
    cols, coef, rhs, _ = rows[0]
    assert cols == [0, 1, 2]
    U = mixture.encode(mixture.sample(5, seed=2))
    np.testing.assert_allclose(U[:, cols] @ np.array(coef), rhs, atol=1e-12)


def test_impossible_or_unsupported_constraints_are_refused():
    with pytest.raises(SpaceError, match="no feasible point"):
        Space([Real("a", 0, 0.3), Real("b", 0, 0.3)], [SumConstraint(("a", "b"), 1.0)])
    with pytest.raises(SpaceError, match="linear scale"):
        Space([Real("a", 0.1, 1, log=True), Real("b", 0, 1)], [SumConstraint(("a", "b"), 1.0)])
    with pytest.raises(SpaceError, match="unknown parameter"):
        Space([Real("a", 0, 1), Real("b", 0, 1)], [LinearConstraint({"a": 1, "z": 1}, "<=", 1)])


def test_constraints_round_trip_through_dicts(mixture):
    again = Space.from_dict(mixture.to_dict(), mixture.constraints_to_dict())
    assert again == mixture


@pytest.mark.parametrize("cls", [RandomPlanner, SobolPlanner])
def test_baselines_satisfy_constraints(mixture, cls):
    planner = cls(mixture, Objective("band_gap", "minimize", "eV"))
    assert mixture.feasible(planner.suggest(16)).all()


def test_bayesian_planner_optimizes_under_a_mixture_constraint(mixture):
    planner = BayesianPlanner(mixture, Objective("efficiency", "maximize", "percent"), seed=0, **FAST)

    def efficiency(df: pd.DataFrame) -> np.ndarray:
        return 20 - 40 * (df["zn"] - 0.5) ** 2 - 40 * (df["cu"] - 0.25) ** 2 - ((df["anneal"] - 450) / 100) ** 2

    for _ in range(5):
        batch = planner.suggest(2)
        assert mixture.feasible(batch).all()
        batch["efficiency"] = efficiency(batch)
        planner.observe(batch)
    assert planner.last_generator == "qLogNEI"
    sums = planner.data()[["zn", "sn", "cu"]].sum(axis=1)
    assert np.abs(sums - 1).max() < 1e-6


def test_pool_mode_skips_infeasible_rows(mixture):
    pool = mixture.sample(20, seed=3)
    pool.loc[0:9, "zn"] += 0.05  # ten rows no longer sum to one
    planner = RandomPlanner(mixture, Objective("y"), seed=1)
    picks = pd.DataFrame([c.params for c in planner.ask(10, choices=pool)])
    assert mixture.feasible(picks).all()
