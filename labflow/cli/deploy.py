"""``labflow deploy``: a recipe as a Prefect deployment on a work pool, run by any worker of it.

The deployment runs the flow ``labflow.flows.campaign`` (by module path: workers need labflow
installed, not a copy of this folder) with the recipe's text and its lab config as parameters,
so workers need no copy of the recipes either. Exit codes: 0 deployed; 1 the server failed; 2
invalid input (a bad recipe, no server configured, no such work pool, a bad schedule): nothing
was deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from labflow.cli.common import EXIT_INVALID, console, fail, fail_message

__all__ = ["deployment_parameters", "register"]


def deployment_parameters(recipe: Any, *, by_path: bool, results: str | None, budget: int | None, seed: int | None,
                          executor: str | None, station_limits: bool) -> dict[str, Any]:
    """The parameters of ``labflow.flows.campaign`` for ``recipe`` (only those that differ from its defaults)."""
    params: dict[str, Any] = {"recipe": str(recipe.source) if by_path else recipe.text}
    if not by_path:
        params["lab"] = recipe.lab_config.model_dump(mode="json")
    for key, value in {"results_dir": results, "budget": budget, "seed": seed, "executor": executor}.items():
        if value is not None:
            params[key] = value
    if not station_limits:
        params["station_limits"] = False
    return params


def _interval_seconds(text: str) -> float:
    """``--interval``: a duration with a unit (``30 min``, ``6 h``) or plain seconds."""
    from labflow.errors import UnitError
    from labflow.units import convert

    try:
        value = float(text)
    except ValueError:
        try:
            value = float(convert(text, "s"))
        except (UnitError, ValueError) as exc:
            raise ValueError(f"--interval takes a duration such as '30 min' or '6 h' (or seconds), got {text!r} ({exc})") from None
    if not value > 0:
        raise ValueError(f"--interval must be longer than 0 s, got {text!r}")
    return value


def register(app: typer.Typer) -> None:
    """Add ``deploy``."""

    @app.command("deploy")
    def deploy(
        recipe: Path = typer.Argument(..., help="recipe YAML file"),
        pool: str = typer.Option(..., "--pool", help="the Prefect work pool (type process) whose workers run it"),
        name: Optional[str] = typer.Option(None, "--name", help="deployment name (default: the recipe's name)"),
        results: Optional[str] = typer.Option(None, "--results", help="results directory on the workers (default: their $LABFLOW_RESULTS_DIR)"),
        cron: Optional[str] = typer.Option(None, "--cron", help="schedule: a cron expression, e.g. '0 6 * * 1-5'"),
        interval: Optional[str] = typer.Option(None, "--interval", help="schedule: every DURATION, e.g. '6 h'"),
        budget: Optional[int] = typer.Option(None, "--budget", min=1, help="number of experiments (overrides the recipe)"),
        seed: Optional[int] = typer.Option(None, "--seed", min=0, help="random seed (overrides the recipe)"),
        executor: Optional[str] = typer.Option(None, "--executor", help="an executor (overrides the recipe)"),
        by_path: bool = typer.Option(False, "--by-path", help="ship the recipe's path, not its text (workers must read it, e.g. on shared storage; needed for prior data files)"),
        no_station_limits: bool = typer.Option(False, "--no-station-limits", help="do not guard stations with Prefect global concurrency limits"),
        run: bool = typer.Option(False, "--run", help="also start one flow run now"),
    ) -> None:
        """Deploy RECIPE to a Prefect work pool: any `prefect worker start --pool POOL` runs it.

        Needs a long-lived Prefect server (PREFECT_API_URL) and a process work pool
        (`prefect work-pool create POOL --type process`). Each run writes its ledger and HDF5 file
        to the results directory and resumes an unfinished campaign of the same recipe found there.
        """
        from labflow.errors import RecipeError
        from labflow.executors import executor_names
        from labflow.recipe import load_recipe

        try:
            r = load_recipe(recipe)
            if budget is not None or seed is not None:
                r = r.replace(**{k: v for k, v in {"budget": budget, "seed": seed}.items() if v is not None})
        except RecipeError as exc:
            fail(exc, EXIT_INVALID)
        if executor is not None and executor not in executor_names():
            fail_message(f"--executor {executor!r} is not an executor", hint=f"--executor takes one of {', '.join(executor_names())}",
                         code=EXIT_INVALID)
        if results is not None and not Path(results).is_absolute():
            fail_message(f"--results {results!r} is a relative path; workers read it from their own working folder",
                         hint="give an absolute path that every worker can reach, e.g. --results /srv/labflow/results", code=EXIT_INVALID)
        if cron and interval:
            fail_message("--cron and --interval both set a schedule; give one", hint="--cron '0 6 * * *' or --interval '24 h'",
                         code=EXIT_INVALID)
        try:
            every = _interval_seconds(interval) if interval else None
        except ValueError as exc:
            fail_message(str(exc), hint="e.g. --interval '6 h'", code=EXIT_INVALID)
        if cron:
            from prefect.client.schemas.schedules import CronSchedule
            from pydantic import ValidationError

            try:
                CronSchedule(cron=cron)
            except ValidationError:
                fail_message(f"--cron {cron!r} is not a cron expression", hint="five fields: minute hour day month weekday, e.g. '0 6 * * 1-5'",
                             code=EXIT_INVALID)
        if not by_path and r.spec.prior_data:
            fail_message(f"recipe {recipe} reads prior data files, which a deployment does not carry",
                         hint="put the recipe and its data where the workers can read them and pass --by-path", code=EXIT_INVALID)

        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value()
        if not api:
            fail_message("no Prefect server: PREFECT_API_URL is not set, and a deployment needs a server that stays up",
                         hint="start one with `prefect server start`, then `prefect config set PREFECT_API_URL=http://HOST:4200/api`",
                         code=EXIT_INVALID)

        import httpx
        from prefect.deployments import run_deployment
        from prefect.types.entrypoint import EntrypointType

        from labflow.flows import campaign

        params = deployment_parameters(r, by_path=by_path, results=results, budget=budget, seed=seed, executor=executor,
                                       station_limits=not no_station_limits)
        deployment_name = name or r.name
        try:
            deployment_id = campaign.deploy(
                deployment_name, work_pool_name=pool, parameters=params, cron=cron, interval=every,
                entrypoint_type=EntrypointType.MODULE_PATH, tags=["labflow", f"lab:{r.lab_config.name}"],
                description=f"labflow campaign {r.name} (recipe hash {r.hash}) on lab {r.lab_config.name}",
                print_next_steps=False, ignore_warnings=True, build=False, push=False,
            )
        except ValueError as exc:
            if "Could not find work pool" in str(exc):
                fail_message(f"the Prefect server at {api} has no work pool {pool!r}",
                             hint=f"create it with: prefect work-pool create {pool} --type process", code=EXIT_INVALID)
            raise
        except httpx.HTTPError as exc:
            fail_message(f"the Prefect server at {api} did not answer: {exc}", hint="is `prefect server start` running there?")
        full_name = f"{campaign.name}/{deployment_name}"
        console.print(f"deployed {full_name} ({deployment_id}) on work pool {pool}: recipe {r.name}, hash {r.hash}, "
                      f"lab {r.lab_config.name}" + (f", cron {cron}" if cron else "") + (f", every {every:g} s" if every else ""),
                      highlight=False, soft_wrap=True)
        if run:
            flow_run = run_deployment(full_name, timeout=0)
            console.print(f"started flow run {flow_run.name} ({flow_run.id})", highlight=False)
        else:
            console.print(f"run it with: prefect deployment run '{full_name}'", highlight=False, soft_wrap=True)
