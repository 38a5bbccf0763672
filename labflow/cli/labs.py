"""``labflow labs``: the lab configs a recipe can name, and where each comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["labs", "register"]


def labs(
    recipe_dir: Optional[Path] = typer.Option(None, "--from", help="the folder of a recipe (default: the working directory)"),
) -> None:
    """List the lab configs a recipe can name, in search order: beside the recipe, the project's
    configs/, LABFLOW_LABS, the labs packaged with labflow. The first one of a name is used."""
    from labflow.lab import available_labs, lab_search_path

    found = available_labs(recipe_dir)
    width = max([len(lab.name) for lab in found] + [4])
    typer.echo("lab configs a recipe can name (`lab: NAME`), in search order; the first of a name is used:")
    for lab in found:
        hidden = ""
        if lab.shadowed_by is not None:
            same = lab.shadowed_by.resolve() == lab.path.resolve()
            hidden = f"  (hidden by {lab.shadowed_by}{', the same file' if same else ''})"
        typer.echo(f"  {lab.name:<{width}}  {lab.origin:<22} {lab.path}{hidden}")
    typer.echo("searched, in order:")
    for place in lab_search_path(recipe_dir):
        typer.echo(f"  {place.folder}  ({place.origin})")


def register(app: typer.Typer) -> None:
    """Add ``labs``."""
    app.command("labs")(labs)
