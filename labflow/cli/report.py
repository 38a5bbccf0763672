"""CLI commands for looking at campaigns and sharing them: ``report``, ``export``, ``schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from labflow.cli.common import fail_message, output_folder

__all__ = ["register"]


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    fail_message(message, hint, code)


def report(
    file: Path = typer.Argument(..., help="campaign provenance file (.h5)"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="output folder (default: FILE without .h5, plus '-report')"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="simulated labs: draw random and Sobol re-runs"),
    seeds: int = typer.Option(5, "--baseline-seeds", min=1, help="re-runs per baseline planner"),
    model: bool = typer.Option(True, "--model/--no-model", help="refit the surrogate and draw the model's view"),
    dpi: int = typer.Option(100, "--dpi", min=30, max=600, help="PNG resolution"),
) -> None:
    """Write a self-contained HTML report (report.html, open it from disk) and its figures as PNG."""
    from labflow.report import build_report

    if out is not None:
        output_folder(out, "-o")
    rep = build_report(file, out, baselines=baselines, baseline_seeds=seeds, model=model, dpi=dpi)  # errors: the CLI's one error path
    for note in rep.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"{rep.html} ({len(rep.figures)} figures: {', '.join(rep.figures)}) in {rep.total_seconds:.1f} s")


def export(
    file: Path = typer.Argument(..., help="campaign provenance file (.h5)"),
    out: Path = typer.Option(..., "-o", "--out", help="folder for the research-data package (created; must be empty)"),
    title: Optional[str] = typer.Option(None, "--title", help="dataset title (default: from the recipe)"),
    creator: list[str] = typer.Option([], "--creator", help="'Family, Given; affiliation; ORCID' (repeat for several)"),
    licence: str = typer.Option("CC-BY-4.0", "--licence", "--license", help="SPDX licence identifier of the data"),
    keyword: list[str] = typer.Option([], "--keyword", help="subject keyword (repeat for several)"),
) -> None:
    """Write a research-data package: the HDF5 file, experiments.csv (units in the header), the recipe, metadata.json and ro-crate-metadata.json (RO-Crate)."""
    from labflow.export import export_campaign, parse_creator

    pkg = export_campaign(file, out, title=title, creators=[parse_creator(c) for c in creator], licence=licence, keywords=keyword)
    for w in pkg.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"{pkg.directory}: {', '.join(sorted(p.name for p in pkg.files))}")


def schema(
    what: str = typer.Argument("recipe", help="recipe | lab"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="write to this file instead of standard output"),
) -> None:
    """Print the JSON Schema of recipes (or lab configs), for editors to validate and complete YAML."""
    from labflow.schema import lab_schema, recipe_schema

    if what not in ("recipe", "lab"):
        _fail(f"unknown schema {what!r}", "use 'recipe' or 'lab'", 2)
    doc = recipe_schema() if what == "recipe" else lab_schema()
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``report``, ``export`` and ``schema`` to the labflow CLI."""
    app.command("report")(report)
    app.command("export")(export)
    app.command("schema")(schema)
