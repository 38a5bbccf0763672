"""Campaigns as deployable Prefect flows: ``labflow.flows:campaign``.

:func:`campaign` is a module-level flow, so a Prefect deployment can name it by module path
(``labflow.flows.campaign``) and any machine that has labflow installed and runs
``prefect worker start --pool NAME`` can run it (``labflow deploy`` makes the deployment;
``docs/how-to/deploy-a-campaign.md``). It takes the recipe as a path the worker can read, or as
its YAML text with the lab config beside it (what ``labflow deploy`` ships, so that workers need
no copy of the recipes), and writes the ledger and the HDF5 provenance file to a results
directory: the ``results_dir`` parameter, else ``$LABFLOW_RESULTS_DIR`` on the worker.

A flow run is idempotent over the ledger: when the results directory holds an unfinished
campaign of the same recipe that no live process holds (its worker died, or it was stopped), the
flow resumes it (:func:`labflow.launch.resume_campaign`: nothing finished runs again, what was in
flight is repeated once); otherwise it starts a new one. Running the deployment again after a
worker died therefore finishes the campaign on whichever worker takes the run.

Under the ``prefect`` executor each experiment holds its station's global concurrency limit
(:func:`labflow.executors.prefect.station_limit_name`, keyed by the lab's name), so campaigns on
one Prefect server never drive the same station at once.

The planning flow (``labflow-plan-step``, defined in :mod:`labflow.executors.remote_planning`,
where its deployments point) is importable from here too: a recipe's ``planner.where`` runs each
planning step as a flow run of it on another work pool.

The old contents of this module (the Prefect executor) stay importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from labflow.errors import LabflowError, Problem, RecipeError
from labflow.executors.prefect import PrefectExecutor, experiment_task, run_as_flow
from labflow.executors.remote_planning import plan_step

__all__ = ["RESULTS_ENV", "PrefectExecutor", "campaign", "experiment_task", "plan_step", "recipe_from_text", "results_directory",
           "run_as_flow"]

#: The environment variable naming a worker's results directory when a run does not say.
RESULTS_ENV = "LABFLOW_RESULTS_DIR"


def results_directory(results_dir: str | os.PathLike[str] | None) -> Path:
    """Where a deployed campaign writes its records: ``results_dir``, else ``$LABFLOW_RESULTS_DIR``.

    Raises :class:`~labflow.errors.LabflowError` when neither is given.
    """
    chosen = results_dir if results_dir not in (None, "") else os.environ.get(RESULTS_ENV)
    if not chosen:
        raise LabflowError(
            f"no results directory: the flow run has no results_dir parameter and ${RESULTS_ENV} is not set on this worker",
            hint=f"deploy with --results DIR, or start the worker with {RESULTS_ENV}=DIR in its environment",
        )
    return Path(chosen).expanduser()


def recipe_from_text(text: str, lab: dict[str, Any], *, source: str = "<deployment>") -> Any:
    """A validated :class:`~labflow.recipe.Recipe` from its YAML ``text`` and its lab config (a
    mapping, as ``LabConfig.model_dump(mode="json")`` gives it): the same checks as
    :func:`~labflow.recipe.load_recipe`, the same hash as the recipe loaded from its file.
    Prior-data paths resolve against the working directory."""
    import yaml

    from labflow.lab import parse_lab_config
    from labflow.recipe import MAX_RECIPE_BYTES, Recipe, _CappedSafeLoader, _validate_spec, check_against_lab, check_prior_data

    if len(text.encode()) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {source}: {len(text.encode())} bytes, larger than the {MAX_RECIPE_BYTES}-byte limit", source=source)
    try:
        data = yaml.load(text, Loader=_CappedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {source}: not valid YAML: {exc}", source=source) from None
    spec = _validate_spec(data, source)
    lab_config = parse_lab_config(lab, source=f"{source} (lab)")
    recipe = Recipe(spec, source=None, text=text, lab_path=None, lab_config=lab_config)
    recipe.space  # noqa: B018 - builds and checks the space
    problems: list[Problem] = [*check_prior_data(recipe)]
    if not problems:
        problems.extend(check_against_lab(recipe, lab_config))
    if problems:
        raise RecipeError(f"recipe {source} is invalid", problems=problems, source=source)
    return recipe


def _load(recipe: str, lab: dict[str, Any] | None) -> Any:
    from labflow.recipe import load_recipe

    if lab is None:
        if "\n" in recipe or not recipe.strip().endswith((".yaml", ".yml")):
            raise RecipeError(
                "the recipe parameter is neither a path to a .yaml file nor YAML text with its lab config",
                hint="pass recipe=PATH (readable on the worker), or recipe=TEXT together with lab={...} (labflow deploy does)",
            )
        return load_recipe(recipe)
    return recipe_from_text(recipe, lab)


def _started_from(cdir: Any, recipe_hashes: set[str]) -> bool:
    """Whether the campaign directory's ledger was started from a recipe with one of ``recipe_hashes``
    (the recipe as written, or as run with this flow's overrides: the ledger holds the one that ran).
    A ledger without a readable header is not (run_recipe then refuses to start beside it, with a hint)."""
    try:
        return cdir.history().header.get("recipe_hash") in recipe_hashes
    except LabflowError:
        return False


@flow(name="labflow-campaign", persist_result=False, log_prints=False)
def campaign(
    recipe: str,
    lab: dict[str, Any] | None = None,
    results_dir: str | None = None,
    budget: int | None = None,
    seed: int | None = None,
    executor: str | None = None,
    station_limits: bool = True,
    break_lock: bool = False,
) -> dict[str, Any]:
    """Run (or resume) one campaign and return its summary.

    Parameters
    ----------
    recipe: a recipe path readable on the worker, or the recipe's YAML text (then ``lab`` is required).
    lab: the lab config as a mapping (what ``labflow deploy`` ships with the text).
    results_dir: where the ledger and provenance file go (default ``$LABFLOW_RESULTS_DIR`` on the worker).
    budget, seed: override the recipe's.
    executor: override the recipe's executor (``prefect``, ``local``, ``virtual`` or a plug-in).
    station_limits: under the ``prefect`` executor, hold each station's global concurrency limit
        while an experiment runs on it, so that campaigns sharing the lab never overlap on a station.
    break_lock: resume a campaign whose lock names a process on another host (make sure it is dead).

    Returns ``{"campaign", "provenance", "campaign_dir", "campaign_id", "resumed", "completed", "failed", "executor"}``
    (paths relative to the results directory).
    """
    from labflow.artifacts import CampaignArtifacts
    from labflow.launch import apply_overrides, recipe_from_header, resume_campaign, run_recipe
    from labflow.store.campaign_dir import unfinished_campaigns

    logger = get_run_logger()
    out = results_directory(results_dir)
    r = _load(recipe, lab)
    changes = {k: v for k, v in {"budget": budget, "seed": seed}.items() if v is not None}
    if changes:
        r = r.replace(**changes)

    def options(kind: str) -> dict[str, Any]:
        return {"station_limits": r.lab_config.name} if station_limits and kind == "prefect" else {}

    # an unfinished campaign of this very recipe that nobody holds: its worker died or it was stopped
    hashes = {r.hash, apply_overrides(r, executor=executor)[0].hash}
    pending = [d for d in (unfinished_campaigns(out, r.name) if out.is_dir() else []) if _started_from(d, hashes)]
    if pending:
        cdir = pending[-1]
        header = cdir.history().header
        kind = executor or header.get("executor") or r.spec.execution.executor
        logger.info("resuming campaign %s in %s from its ledger", r.name, cdir.path.name)
        outcome = resume_campaign(cdir.path, executor=executor, break_lock=break_lock,
                                  listeners=[CampaignArtifacts(recipe_from_header(header), cdir.provenance_path)],
                                  executor_options=options(kind))
    else:
        kind = executor or r.spec.execution.executor
        outcome = run_recipe(r, out, executor=executor, executor_options=options(kind))
    state = outcome.state
    logger.info("campaign %s: %d completed, %d failed; record %s", r.name, state.completed, state.failed, outcome.path.name)
    return {
        "campaign": r.name,
        "provenance": outcome.path.name,
        "campaign_dir": outcome.campaign_dir.name if outcome.campaign_dir else None,
        "campaign_id": outcome.campaign_id,
        "resumed": bool(pending),
        "completed": state.completed,
        "failed": state.failed,
        "executor": kind,
    }
