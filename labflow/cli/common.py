"""What every ``labflow`` command module shares: the consoles, the exit codes and how errors
are reported. Command modules import this and nothing else from :mod:`labflow.cli`."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from labflow.errors import LabflowError, RecipeError

# Prefect reads these at import: quiet logs under the live display, and no telemetry from an
# offline lab. Both are only defaults; set them in the environment to change them.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

__all__ = ["EXIT_INTERRUPTED", "EXIT_INVALID", "console", "err_console", "fail", "fail_message"]

console = Console()
err_console = Console(stderr=True)

EXIT_INVALID = 2
"""Invalid input: nothing ran."""
EXIT_INTERRUPTED = 3
"""Stopped or paused by a signal: ``labflow resume`` continues it."""


def fail(exc: LabflowError, code: int = 1) -> None:
    """Print ``exc`` (message, a recipe's problems, hint) on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if isinstance(exc, RecipeError):
        for p in exc.problems:
            err_console.print(f"{p}", highlight=False, markup=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(code)


def fail_message(message: str, hint: str | None = None, code: int = 1) -> None:
    """Print ``error: message`` (and ``hint: ...``) on stderr, plainly, and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)
