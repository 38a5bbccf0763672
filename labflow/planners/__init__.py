"""Planners: propose the next experiments from what has been measured.

Usable alone in a notebook (``suggest``/``observe`` on DataFrames) or by the campaign loop
(``ask``/``tell`` on :class:`~labflow.records.Candidate` and :class:`~labflow.records.Observation`).
"""

from __future__ import annotations

from typing import Any

from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.planners.baselines import (
    BASELINES,
    GridPlanner,
    LatinHypercubePlanner,
    OneFactorAtATimePlanner,
    RandomPlanner,
    SobolPlanner,
)
from labflow.space import Space

__all__ = [
    "Planner",
    "BayesianPlanner",
    "MultiFidelityPlanner",
    "Fidelity",
    "RandomPlanner",
    "SobolPlanner",
    "LatinHypercubePlanner",
    "GridPlanner",
    "OneFactorAtATimePlanner",
    "PLANNERS",
    "make_planner",
]


def __getattr__(name: str) -> Any:
    # BoTorch is imported only when the Bayesian planner is asked for: baselines stay light.
    if name == "BayesianPlanner":
        from labflow.planners.bayesian import BayesianPlanner

        return BayesianPlanner
    if name in ("MultiFidelityPlanner", "Fidelity"):
        from labflow.planners import multifidelity

        return getattr(multifidelity, name)
    raise AttributeError(name)


def planner_names() -> list[str]:
    return ["bayesian", "multifidelity", *BASELINES]


def make_planner(kind: str, space: Space, objectives: list[Objective], seed: int = 0, **options: Any) -> Planner:
    """Build a planner by its registered name ("bayesian", "multifidelity", "random", "sobol", "lhs", "grid", "ofat").

    "multifidelity" needs ``fidelities=[Fidelity(name, cost), ...]`` among the options.
    """
    if kind == "bayesian":
        from labflow.planners.bayesian import BayesianPlanner

        return BayesianPlanner(space, objectives, seed=seed, **options)
    if kind == "multifidelity":
        from labflow.planners.multifidelity import MultiFidelityPlanner

        return MultiFidelityPlanner(space, objectives, seed=seed, **options)
    try:
        cls = BASELINES[kind]
    except KeyError:
        raise ValueError(f"unknown planner {kind!r}; expected one of {planner_names()}") from None
    return cls(space, objectives, seed=seed, **options)


PLANNERS = planner_names()
