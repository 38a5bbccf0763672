"""Outcome constraints: "maximize yield subject to purity >= 95 %", as a notebook user writes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labflow import Objective, OutcomeConstraint
from labflow.errors import ObservationError
from labflow.planners import BayesianPlanner
from labflow.space import Real, Space

SPACE = Space([Real("temperature", 100, 300, "degC"), Real("time", 1, 60, "min")])
PURE = OutcomeConstraint("purity", ">=", 95, "percent")


def lab(batch: pd.DataFrame) -> pd.DataFrame:
    """Yield rises with temperature; purity falls above about 220 degC (the best yield is impure)."""
    t, m = batch["temperature"], batch["time"]
    return batch.assign(
        yield_=20 + 0.25 * (t - 100) - 0.01 * (m - 30) ** 2,
        purity=99 - 0.12 * np.maximum(t - 190, 0),
    )


def campaign(seed: int, constraints=(PURE,), rounds: int = 7) -> BayesianPlanner:
    p = BayesianPlanner(SPACE, Objective("yield_", "maximize", "percent"), seed=seed, num_restarts=2, raw_samples=64,
                        mc_samples=64, outcome_constraints=constraints)
    for _ in range(rounds):
        p.observe(lab(p.suggest(2)))
    return p


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_suggestions_respect_the_purity_constraint_after_the_initial_design(seed):
    p = campaign(seed)
    model_based = p.data().iloc[p.n_initial :]
    feasible = model_based["purity"] >= 95
    assert feasible.mean() >= 0.7, model_based[["temperature", "purity"]]
    best = p.best()
    assert best.outcomes["purity"] >= 95 and best.outcomes["yield_"] > 40  # near the edge of the pure region
    assert p.settings()["outcome_constraints"] == [PURE.to_dict()] and p.acquisition_name == "qLogNEI(constrained)"


def test_without_the_constraint_the_planner_goes_where_purity_fails():
    p = campaign(0, constraints=())
    model_based = lab(p.data().iloc[p.n_initial :])
    assert (model_based["purity"] < 95).mean() >= 0.5  # so the test above could fail


def test_observations_must_carry_the_constrained_quantity():
    p = BayesianPlanner(SPACE, Objective("yield_"), outcome_constraints=[PURE])
    with pytest.raises(ObservationError, match="'purity' is missing"):
        p.observe(lab(p.suggest(1)).drop(columns=["purity"]))
