"""``labflow dashboard [DIR]``: the campaigns under DIR in the browser, with their approval queues.

Served on loopback (127.0.0.1:8765) by default. Another address is refused unless a token is set
(``LABFLOW_DASHBOARD_TOKEN``, or ``--token-file``: a file holding it, kept off the command line so
that other users cannot read it in the process list); people then log in with their name and the token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from labflow.cli.common import EXIT_INVALID, console, fail

__all__ = ["register"]


def dashboard(
    folder: Path = typer.Argument(Path("runs"), help="the folder holding the campaigns (each <name>-<stamp>.labflow)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (not loopback: needs a token)"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="port to listen on"),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="a file holding the token people log in with"),
) -> None:
    """Serve a web page of the campaigns under FOLDER: progress, stations, best so far, figures, and the
    approval queue with approve, reject and edit buttons (acts are recorded with your login name)."""
    from labflow.dashboard import check_bind, serve
    from labflow.errors import LabflowError

    token = os.environ.get("LABFLOW_DASHBOARD_TOKEN") or None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            fail(LabflowError(f"cannot read the token file {token_file}: {exc.strerror}", hint="give a readable file holding the token"),
                 EXIT_INVALID)
    if not folder.is_dir():
        fail(LabflowError(f"{folder} is not a folder", hint="give the folder your campaigns write to (labflow run --out FOLDER)"), EXIT_INVALID)
    try:
        check_bind(host, token)
    except LabflowError as exc:
        fail(exc, EXIT_INVALID)
    console.print(f"labflow dashboard of {folder} on http://{host}:{port}/ ({'token required' if token else 'name only, loopback'}); "
                  "Ctrl-C stops it", highlight=False)
    serve(folder, host=host, port=port, token=token)


def register(app: typer.Typer) -> None:
    """Add ``dashboard``."""
    app.command()(dashboard)
