"""``labflow run`` and ``labflow resume``: crash-safe campaigns: ``run`` (refuses to start over an unfinished campaign)
and ``resume``.

Exit codes: 0 done; 1 error (``CampaignLocked``, ``CampaignExists``, ``FailureRateExceeded``,
``DiskFullError``...); 2 invalid input (nothing ran); 3 stopped or paused by a signal --
``labflow resume`` continues it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from labflow.cli.common import EXIT_INTERRUPTED, EXIT_INVALID, console, fail, output_folder

__all__ = ["register", "EXIT_INTERRUPTED"]


def register(app: typer.Typer) -> None:
    """Add ``run`` (refusing to start over an unfinished campaign), ``resume`` and ``rebuild``."""

    @app.command("run")
    def run(
        recipe: Path = typer.Argument(..., help="recipe YAML file"),
        out: Path = typer.Option(Path("runs"), "--out", help="directory for the provenance file and the campaign directory"),
        budget: Optional[int] = typer.Option(None, "--budget", min=1, help="number of experiments (overrides the recipe)"),
        seed: Optional[int] = typer.Option(None, "--seed", min=0, help="random seed (overrides the recipe)"),
        executor: Optional[str] = typer.Option(None, "--executor", help="an executor: prefect, local, virtual or an installed plug-in (overrides the recipe)"),
        time_scale: Optional[float] = typer.Option(None, "--time-scale", min=0.0, help="a simulated lab's speed: 0 instant, 1 real time (overrides the lab config)"),
        quiet: bool = typer.Option(False, "--quiet", help="no live display"),
        new: bool = typer.Option(False, "--new", help="start a new campaign even if an unfinished one of this recipe is in OUT"),
        plan_on: Optional[str] = typer.Option(None, "--plan-on", help="plan on a worker of this Prefect work pool, e.g. a GPU machine (overrides planner.where.pool)"),
    ) -> None:
        """Run a closed-loop campaign and write its provenance file to OUT.

        Crash-safe: if it is killed, `labflow resume OUT` continues it. SIGTERM or Ctrl-C stops it
        cleanly (exit 3; resumable); Ctrl-C twice stops it at once.
        """
        from labflow.errors import LabflowError, RecipeError
        from labflow.executors import executor_names
        from labflow.launch import apply_overrides, run_recipe
        from labflow.live import LiveDisplay
        from labflow.recipe import load_recipe

        try:
            output_folder(out, "--out")
            r = load_recipe(recipe)
            if executor is not None and executor not in executor_names():
                raise RecipeError("invalid option", problems=[], hint=f"--executor takes one of {', '.join(executor_names())}")
            display = LiveDisplay(apply_overrides(r, budget=budget, seed=seed)[0], console=console, enabled=not quiet)
            with display:
                outcome = run_recipe(r, out, budget=budget, seed=seed, executor=executor, time_scale=time_scale,  # type: ignore[arg-type]
                                     listeners=[display.update], new=new, plan_on=plan_on)
        except RecipeError as exc:
            fail(exc, EXIT_INVALID)
        except LabflowError as exc:
            _fail_campaign(exc)
        display.print_summary(outcome)

    @app.command("resume")
    def resume(
        target: Path = typer.Argument(..., help="the campaign: its .h5 file, its .labflow directory, or the output directory"),
        executor: Optional[str] = typer.Option(None, "--executor", help="an executor: prefect, local, virtual or an installed plug-in (default: as started)"),
        quiet: bool = typer.Option(False, "--quiet", help="no live display"),
        break_lock: bool = typer.Option(False, "--break-lock", help="take over a lock recorded by another host"),
    ) -> None:
        """Resume a campaign a crash, a stop or a full disk interrupted: nothing finished is run again,
        in-flight experiments are repeated once (marked `repeated`)."""
        from labflow.errors import LabflowError, RecipeError
        from labflow.executors import executor_names
        from labflow.launch import recipe_from_header, resume_campaign
        from labflow.live import LiveDisplay
        from labflow.store.campaign_dir import find_campaign_dir

        if executor is not None and executor not in executor_names():
            fail(RecipeError("invalid option", hint=f"--executor takes one of {', '.join(executor_names())}"), EXIT_INVALID)
        try:
            cdir = find_campaign_dir(target)
            history = cdir.history()
            r = recipe_from_header(history.header)
            finished = history.end is not None and history.end.get("complete")  # resume_campaign refuses it: draw nothing
            display = LiveDisplay(r, console=console, enabled=not quiet and not finished)
            with display:
                outcome = resume_campaign(cdir.path, executor=executor, listeners=[display.update], break_lock=break_lock)  # type: ignore[arg-type]
        except LabflowError as exc:
            _fail_campaign(exc)
        display.print_summary(outcome)
        info = outcome.extra.get("resume", {})
        console.print(
            f"resumed: {info.get('finished_before', 0)} experiments were already done, {info.get('repeated', 0)} repeated "
            f"(in flight at the interruption); previous file moved to quarantine: {len(info.get('quarantined', []))}",
            highlight=False,
        )


    @app.command("rebuild")
    def rebuild(
        target: Path = typer.Argument(..., help="the campaign: its .labflow directory, its .h5 file, or the output directory"),
        break_lock: bool = typer.Option(False, "--break-lock", help="take over a lock recorded by another host"),
    ) -> None:
        """Rewrite a campaign's HDF5 file from its ledger, finished or not (the old file goes to quarantine/)."""
        from labflow.launch import rebuild_campaign

        done = rebuild_campaign(target, break_lock=break_lock)  # errors: the CLI's one error path
        moved = f"; the previous file is in {done.quarantined[0]}" if done.quarantined else ""
        typer.echo(f"rebuilt {done.path} from its ledger: {done.experiments} experiments, {done.state}{moved}")


def _fail_campaign(exc: Exception) -> None:
    from labflow.errors import CampaignInterrupted

    fail(exc, EXIT_INTERRUPTED if isinstance(exc, CampaignInterrupted) else 1)  # type: ignore[arg-type]
