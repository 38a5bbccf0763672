"""The ``labflow`` command line: run, validate and inspect campaigns."""

from __future__ import annotations

import json
import os

from pathlib import Path


import typer
from rich.console import Console
from rich.table import Table

from labflow.errors import LabflowError, RecipeError

# Prefect reads these at import: quiet logs under the live display, and no telemetry from an
# offline lab. Both are only defaults; set them in the environment to change them.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    name="labflow",
    help="Closed-loop campaigns for self-driving labs: plan with BoTorch, run with bluesky, record in HDF5.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_INVALID = 2


def _fail(exc: LabflowError, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if isinstance(exc, RecipeError):
        for p in exc.problems:
            err_console.print(f"{p}", highlight=False, markup=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(code)


@app.command()
def validate(recipe: Path = typer.Argument(..., help="recipe YAML file")) -> None:
    """Check a recipe (and its lab config) without touching any device. Exit 0 if valid, 2 if not."""
    from labflow.recipe import load_recipe

    try:
        r = load_recipe(recipe)
    except RecipeError as exc:
        _fail(exc, EXIT_INVALID)
    console.print(f"[green]ok[/] {recipe}: campaign {r.name!r}, {len(r.space)} parameters, "
                  f"{len(r.objectives)} objective(s), budget {r.budget}, hash {r.hash}", highlight=False)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="campaign provenance file (.h5)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Summarize a campaign file: recipe, planner, counts, best point with units, Pareto front and
    hypervolume (several objectives), sample faults, fallbacks, cost per fidelity, prior data, versions."""
    from labflow.store.provenance import read_campaign

    try:
        rec = read_campaign(file)
    except LabflowError as exc:
        _fail(exc)
    summary = rec.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    t = Table(title=f"campaign {summary['campaign']}", show_header=False)
    for key in ("file", "campaign_id", "recipe_hash", "planner", "seed", "created", "finished", "experiments", "completed", "failed",
                "sample_faults", "fallbacks", "prior_observations"):
        t.add_row(key, str(summary[key]))
    if summary.get("hypervolume") is not None:
        ref = ", ".join(f"{k} {v:.6g} {rec.units.get(k, '')}".rstrip() for k, v in (summary["reference_point"] or {}).items())
        t.add_row("hypervolume", f"{summary['hypervolume']:.6g} (reference point: {ref})")
    if summary.get("cost"):
        unit = rec.units.get("cost", "")
        t.add_row("cost", ", ".join(f"{k} {v:.6g}{' ' + unit if unit else ''}" for k, v in summary["cost"].items()))
    console.print(t)
    console.print("[bold]recipe[/] (as written)")
    console.print(rec.recipe_text.rstrip(), markup=False, highlight=False, soft_wrap=True)
    best = summary["best"]
    if best:
        b = Table(title="best experiment")
        b.add_column("name")
        b.add_column("value", justify="right")
        b.add_column("unit")
        for name, v in best.items():
            if name == "uid":
                continue
            val = v["value"]
            b.add_row(name, f"{val:.6g}" if isinstance(val, float) else str(val), v["unit"])
        console.print(b)
    front = summary.get("pareto_front") or []
    if len(rec.objectives) > 1 and front:
        f = Table(title=f"Pareto front ({len(front)} experiments; parameters: --json)")
        cols = [o.name for o in rec.objectives]
        for c in cols:
            unit = rec.units.get(c, "")
            f.add_column(f"{c} [{unit}]" if unit else c, justify="right")
        f.add_column("uid")
        for row in front:
            f.add_row(*[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in cols], str(row["uid"])[:8])
        console.print(f)
    v = Table(title="versions", show_header=False)
    for name, ver in summary["versions"].items():
        v.add_row(name, str(ver))
    console.print(v)


from labflow.cli_remote import register as _register_remote; _register_remote(app)  # noqa: E402,E702 - serve, keys, ioc, record
from labflow.cli_reliability import register as _register_reliability; _register_reliability(app)  # noqa: E402,E702 - run, resume


from labflow import cli_bench  # noqa: E402

cli_bench.register(app)
from labflow.cli_report import register as _register_report; _register_report(app)  # noqa: E402,E702 - report, export, schema


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
