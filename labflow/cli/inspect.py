"""``labflow validate`` and ``labflow inspect``: look at a recipe or a campaign file; nothing runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.table import Table

from labflow.cli.common import EXIT_INVALID, console, fail, overrides_text
from labflow.errors import LabflowError, RecipeError

__all__ = ["inspect", "register", "validate"]


def validate(recipe: Path = typer.Argument(..., help="recipe YAML file")) -> None:
    """Check a recipe (and its lab config) without touching any device. Exit 0 if valid, 2 if not."""
    from labflow.recipe import load_recipe

    try:
        r = load_recipe(recipe)
    except RecipeError as exc:
        fail(exc, EXIT_INVALID)
    console.print(f"[green]ok[/] {recipe}: campaign {r.name!r}, {len(r.space)} parameters, "
                  f"{len(r.objectives)} objective(s), budget {r.budget}, hash {r.hash}", highlight=False)


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
        fail(exc)
    summary = rec.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    t = Table(title=f"campaign {summary['campaign']}", show_header=False)
    for key in ("file", "campaign_id", "recipe_hash", "planner", "executor", "seed", "state", "created", "finished", "experiments",
                "completed", "failed", "interrupted", "repeated", "sample_faults", "fallbacks", "prior_observations"):
        t.add_row(key, str(summary[key]))

    if summary.get("hypervolume") is not None:
        ref = ", ".join(f"{k} {v:.6g} {rec.units.get(k, '')}".rstrip() for k, v in (summary["reference_point"] or {}).items())
        t.add_row("hypervolume", f"{summary['hypervolume']:.6g} (reference point: {ref})")
    if summary.get("cost"):
        unit = rec.units.get("cost", "")
        t.add_row("cost", ", ".join(f"{k} {v:.6g}{' ' + unit if unit else ''}" for k, v in summary["cost"].items()))
    console.print(t)
    if summary["overrides"]:
        console.print(f"run with: {overrides_text(summary['overrides'])}", highlight=False, markup=False, soft_wrap=True)
    console.print("[bold]recipe[/] (as written" + ("; the run's overrides are under 'run with' above, the effective recipe in --json)"
                                                   if summary["overrides"] else ")"))
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
    acts = summary.get("human_acts") or []
    if acts:
        h = Table(title=f"people's acts ({len(acts)})")
        for col in ("when", "who", "act", "target", "after", "comment", "outcome"):
            h.add_column(col)
        for a in acts:
            outcome = a["outcome"] + (f": {a['refusal']}" if a.get("refusal") else "")
            h.add_row(a["when"], a["who"], a["act"], str(a["target"])[:8], a["after"] if a["after"] != "{}" else "", a["comment"], outcome)
        console.print(h)
    orders = summary.get("work_orders") or []
    if orders:
        w = Table(title=f"work orders ({len(orders)}; results are report acts above)")
        for col in ("order", "experiment", "station", "parameters", "issued", "deadline"):
            w.add_column(col)
        for o in orders:
            units = json.loads(o["units"] or "{}")
            params = ", ".join(f"{k}={v:.4g}{' ' + units[k] if units.get(k) else ''}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in json.loads(o["params"] or "{}").items())
            when = [time.strftime("%Y-%m-%d %H:%M", time.localtime(float(o[k]))) for k in ("issued", "deadline")]
            w.add_row(o["id"], str(o["uid"])[:8], o["station"], params, *when)
        console.print(w)
    v = Table(title="versions", show_header=False)
    for name, ver in summary["versions"].items():
        v.add_row(name, str(ver))
    console.print(v)


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``inspect``."""
    app.command()(validate)
    app.command()(inspect)
