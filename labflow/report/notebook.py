"""The report's figures for a planner held in a notebook (no campaign file needed).

``planner.plot(kind)`` (:meth:`labflow.planners.base.Planner.plot`) comes here: the planner's
history is laid out as a campaign record in memory, and the report's own figure functions
draw it, so a notebook and ``labflow report`` show the same pictures of the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from labflow.report.data import CampaignView
from labflow.report.figures import figure_best_so_far, figure_model_2d, figure_model_cv, figure_model_slices
from labflow.report.model import ModelView
from labflow.store.provenance import CampaignRecord

__all__ = ["PLOTS", "planner_figure", "planner_views"]

PLOTS = ("slices", "predicted", "progress", "map")
"""``slices``: the model along each parameter through the best point (mean +-2 sd, measured points);
``predicted``: cross-validated prediction against measurement; ``progress``: best so far;
``map``: the model's mean and sd over the two most relevant continuous parameters."""


def planner_views(planner: Any) -> tuple[CampaignView, ModelView | None]:
    """The planner's history as the report sees a campaign, and the model's view (None for a planner without a model)."""
    data = planner.data()
    data["generator"] = ""  # the planner does not keep which rule chose each point
    units = {p.name: p.unit for p in planner.space.parameters}
    units.update({o.name: o.unit for o in planner.objectives})
    record = CampaignRecord(
        path=Path(f"<{type(planner).__name__}>"),
        attrs={"planner": planner.name, "seed": planner.seed},
        recipe_text="",
        recipe={},
        lab={},
        versions={},
        space=planner.space,
        objectives=list(planner.objectives),
        experiments=data,
        suggestions=pd.DataFrame(),
        units=units,
    )
    view = CampaignView(record)
    models = getattr(planner, "_objective_models", None)
    if models is None or not len(planner.completed()):
        return view, None
    return view, ModelView(record, planner, models())


def planner_figure(planner: Any, kind: str = "slices") -> Any:
    """A matplotlib Figure of ``kind`` (one of :data:`PLOTS`) for the planner's data and model."""
    from labflow.errors import PlannerError

    if kind not in PLOTS:
        raise ValueError(f"kind must be one of {list(PLOTS)}, got {kind!r}")
    view, mv = planner_views(planner)
    if kind == "progress":
        return figure_best_so_far(view)
    if mv is None:
        raise PlannerError(f"{type(planner).__name__} has no model to plot", hint="plot(kind='progress') works for every planner")
    if kind == "slices":
        return figure_model_slices(view, mv)
    if kind == "predicted":
        return figure_model_cv(view, mv.cross_validate())
    fig = figure_model_2d(view, mv)
    if fig is None:
        raise PlannerError("a map needs two continuous parameters", hint="use plot(kind='slices')")
    return fig
