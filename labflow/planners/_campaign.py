"""Rebuild a campaign's planner from its provenance file, to continue the campaign in a notebook.

The provenance file holds what is needed: the resolved recipe (planner kind and options), the
planner's state summary beside every decision (space with constraints, settings, model
hyperparameters, how many candidates were asked), and every experiment with its status.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd

from labflow.errors import PlannerError
from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.records import Observation, Status
from labflow.space import Space, space_from_dict

__all__ = ["planner_from_campaign"]


def planner_from_campaign(path: str | os.PathLike) -> Planner:
    """The planner that ran the campaign recorded at ``path``, holding every recorded observation.

    Prior data come first, then the experiments in the order they finished (the order the
    campaign told them), so the planner's history is the campaign's. The model starts from the
    hyperparameters last recorded (a warm start), and the count of candidates asked continues.
    """
    from labflow.planners.registry import make_planner
    from labflow.store.provenance import read_campaign

    record = read_campaign(path)
    states = [json.loads(s) for s in record.suggestions.get("state", pd.Series(dtype=object)) if s]
    last = states[-1] if states else {}
    recipe_planner = dict(record.recipe.get("planner") or {})
    kind = str(recipe_planner.get("kind") or record.attrs.get("planner") or last.get("planner") or "")
    if not kind:
        raise PlannerError(f"{path}: the file does not say which planner ran the campaign")
    options: dict[str, Any] = dict(recipe_planner.get("options") or {})
    objectives = [Objective(**o) for o in last["objectives"]] if "objectives" in last else list(record.objectives)
    full_space = _recorded_space(record.space, last)
    fidelity = record.fidelity_parameter
    space = full_space
    if fidelity is not None and fidelity in full_space:
        settings = last.get("settings") or {}
        options["fidelities"] = settings.get("fidelities") or [
            {"name": f["name"], "cost": _number(f["cost"])} for f in record.recipe.get("fidelities", [])
        ]
        options["fidelity_parameter"] = fidelity
        space = Space([p for p in full_space.parameters if p.name != fidelity], full_space.constraints)
        if getattr(full_space, "nonlinear", ()):
            space = space.with_nonlinear(full_space.nonlinear)
    planner = make_planner(kind, space, objectives, seed=int(record.attrs.get("seed", 0) or 0), **options)
    names = planner.space.names
    observations = [_observation(row, names, objectives) for row in _rows(record.prior)]
    observations += [_observation(row, names, objectives) for row in _rows(record.experiments)]
    state = planner.state_dict()
    state["observations"] = [
        {"uid": o.uid, "params": o.params, "outcomes": o.outcomes, "status": o.status.value, "reason": o.reason, "sample_fault": o.sample_fault}
        for o in observations if o is not None
    ]
    state["asked"] = int(sum(len(json.loads(c)) for c in record.suggestions.get("candidates", [])))
    if "model" in last and "model" in state:
        state["model"] = {**last["model"], "fit_key": None}  # a warm start, not a restored fit
    planner.load_state_dict(state)
    return planner


def _recorded_space(space: Space, state: dict[str, Any]) -> Space:
    """The campaign's space with its constraints (the file's header keeps the parameters only)."""
    if "space" not in state:
        return space
    return space_from_dict({"parameters": state["space"], "constraints": state.get("constraints", []),
                            "nonlinear": state.get("nonlinear", [])})


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if len(frame) else []


def _observation(row: dict[str, Any], names: list[str], objectives: list[Objective]) -> Observation | None:
    status_text = str(row.get("status", "completed"))
    status = Status(status_text) if status_text in {s.value for s in Status} else Status.FAILED
    if any(n not in row for n in names):
        return None
    params = {n: _plain(row[n]) for n in names}
    outcomes = {}
    for o in objectives:
        v = row.get(o.name)
        if v is not None and isinstance(v, (int, float)) and math.isfinite(float(v)):
            outcomes[o.name] = float(v)
    if status is Status.COMPLETED and len(outcomes) < len(objectives):
        status = Status.INVALID
    return Observation(str(row.get("uid", "")), params, outcomes, status, str(row.get("reason", "") or ""),
                       bool(int(row.get("sample_fault", 0) or 0) > 0))


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _number(v: Any) -> float:
    from labflow.units import parse_quantity

    q = parse_quantity(v)
    return float(getattr(q, "magnitude", q))
