"""From a recipe to a finished campaign: build the lab, the planner, the provenance file and
the stations' RunEngines, then run the loop on the chosen executor."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from labflow.campaign import Campaign, CampaignState, Listener, LocalExecutor, StationRunner
from labflow.errors import RecipeError, Problem
from labflow.planners import make_planner
from labflow.recipe import Recipe
from labflow.store.provenance import ProvenanceWriter

ExecutorName = Literal["prefect", "local", "virtual"]


@dataclass
class CampaignOutcome:
    """Where a finished campaign's record is, and its final counters."""

    path: Path
    state: CampaignState
    campaign_id: str
    makespan: float
    utilization: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def provenance_path(out_dir: Path, name: str, started: _dt.datetime) -> Path:
    """``<out>/<campaign>-<YYYYmmdd-HHMMSS>.h5``; a numeric suffix keeps names unique."""
    base = f"{name}-{started:%Y%m%d-%H%M%S}"
    path = out_dir / f"{base}.h5"
    k = 1
    while path.exists():
        k += 1
        path = out_dir / f"{base}-{k}.h5"
    return path


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path = "runs",
    *,
    budget: int | None = None,
    seed: int | None = None,
    executor: ExecutorName | None = None,
    time_scale: float | None = None,
    listeners: Iterable[Listener] = (),
) -> CampaignOutcome:
    """Run a campaign described by ``recipe`` and write its provenance file into ``out_dir``."""
    changes = {k: v for k, v in {"budget": budget, "seed": seed}.items() if v is not None}
    if changes:
        recipe = recipe.replace(**changes)
    kind = executor or recipe.spec.execution.executor
    if kind not in ("prefect", "local", "virtual"):
        raise RecipeError("invalid executor", problems=[Problem("execution.executor", f"unknown executor {kind!r}")])
    out = Path(out_dir)
    started = _dt.datetime.now()
    path = provenance_path(out, recipe.name, started)
    lab = recipe.lab_config.build(seed=recipe.seed, time_scale=0.0 if kind == "virtual" else time_scale)
    space, objectives = recipe.space, recipe.objectives
    planner = make_planner(recipe.spec.planner.kind, space, objectives, seed=recipe.seed, **recipe.spec.planner.options)
    execution = recipe.spec.execution
    writer = ProvenanceWriter(
        path,
        campaign=recipe.name,
        space=space,
        objectives=objectives,
        recipe_text=recipe.text,
        recipe=recipe.to_dict(),
        recipe_hash=recipe.hash,
        lab=recipe.lab_config.model_dump(mode="json"),
        seed=recipe.seed,
        planner=planner.name,
    )
    try:
        runners = [
            StationRunner(st, space, objectives, subscribers=[writer], timeout=execution.timeout_s) for st in lab.stations
        ]
        md = {
            "campaign": recipe.name,
            "campaign_id": writer.campaign_id,
            "recipe_hash": recipe.hash,
            "planner": planner.name,
            "seed": recipe.seed,
        }
        choices = lab.choices if lab.choices() is not None else None

        def make_campaign(ex: Any) -> Campaign:
            return Campaign(
                planner=planner,
                runners=runners,
                executor=ex,
                budget=recipe.budget,
                writer=writer,
                batch=recipe.spec.planner.batch,
                md=md,
                choices=choices,
                listeners=listeners,
            )

        utilization = None
        if kind == "prefect":
            from labflow.flows import PrefectExecutor, run_as_flow

            ex: Any = PrefectExecutor(retries=execution.retries, retry_delay=execution.retry_delay_s)
            campaign = make_campaign(ex)
            run_as_flow(
                campaign.run,
                name=f"labflow-{recipe.name}",
                run_name=f"{recipe.name}-{started:%Y%m%d-%H%M%S}",
                workers=len(runners),
            )
        elif kind == "local":
            ex = LocalExecutor(len(runners), retries=execution.retries, retry_delay=execution.retry_delay_s)
            campaign = make_campaign(ex)
            try:
                campaign.run()
            finally:
                ex.close()
        else:
            from labflow.sim.clock import VirtualTimeExecutor

            ex = VirtualTimeExecutor(retries=execution.retries)
            campaign = make_campaign(ex)
            campaign.run()
            utilization = ex.utilization(len(runners))
        state = campaign.state
        best = planner.best()
        writer.set_summary(
            {
                "completed": state.completed,
                "failed": state.failed,
                "budget": state.budget,
                "executor": kind,
                "makespan_s": ex.now(),
                "utilization": utilization,
                "best_uid": best.uid if best else None,
                "hypervolume": None,
            }
        )
        return CampaignOutcome(path=path, state=state, campaign_id=writer.campaign_id, makespan=ex.now(), utilization=utilization)
    finally:
        writer.close()
        lab.close()
