"""The planner registry: labflow's planners and those installed packages declare in the
``labflow.planners`` entry-point group (a :class:`~labflow.planners.base.Planner` subclass,
built as ``cls(space, objectives, seed=..., **options)``). See ``docs/how-to/write-a-planner-plugin.md``."""

from __future__ import annotations

from typing import Any

from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.planners.baselines import BASELINES
from labflow.plugins import Registry
from labflow.space import Space

__all__ = ["PLANNER_REGISTRY", "make_planner", "planner_class", "planner_names"]

# BoTorch is imported only when a Bayesian planner is asked for: the baselines stay light.
PLANNER_REGISTRY: Registry[type[Planner]] = Registry(
    "labflow.planners",
    {
        "bayesian": "labflow.planners.bayesian:BayesianPlanner",
        "multifidelity": "labflow.planners.multifidelity:MultiFidelityPlanner",
        **BASELINES,
    },
    what="planner",
)


def planner_names() -> list[str]:
    """Every planner a recipe may name: the built-ins, then installed plug-ins."""
    return PLANNER_REGISTRY.names()


def planner_class(kind: str) -> type[Planner]:
    """The planner class registered as ``kind``; :class:`ValueError` when unknown."""
    try:
        return PLANNER_REGISTRY.get(kind)
    except LookupError:
        raise ValueError(f"unknown planner {kind!r}; expected one of {planner_names()}") from None


def make_planner(kind: str, space: Space, objectives: list[Objective], seed: int = 0, **options: Any) -> Planner:
    """Build a planner by its registered name ("bayesian", "multifidelity", "random", "sobol", "lhs",
    "grid", "ofat", or an installed plug-in's).

    "multifidelity" needs ``fidelities=[Fidelity(name, cost), ...]`` among the options.
    """
    return planner_class(kind)(space, objectives, seed=seed, **options)
