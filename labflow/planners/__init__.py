"""Planners: propose the next experiments from what has been measured.

Usable alone in a notebook (``suggest``/``observe`` on DataFrames) or by the campaign loop
(``ask``/``tell`` on :class:`~labflow.records.Candidate` and :class:`~labflow.records.Observation`).
"""

from __future__ import annotations

from typing import Any

from labflow.planners.base import Planner
from labflow.planners.baselines import (
    BASELINES,
    GridPlanner,
    LatinHypercubePlanner,
    OneFactorAtATimePlanner,
    RandomPlanner,
    SobolPlanner,
)
from labflow.planners.registry import make_planner, planner_class, planner_names

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
    "planner_class",
    "planner_names",
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


PLANNERS = planner_names()  # the names known at import (plug-ins included); planner_names() re-reads
