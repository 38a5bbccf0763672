"""CLI commands for instruments on other machines: ``serve``, ``keys``, ``ioc``, ``record``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from labflow.cli.common import fail_message

__all__ = ["register"]


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    fail_message(message, hint, code)


def _wait_for_signal(stop) -> None:
    done = threading.Event()

    def handler(signum, frame):  # noqa: ANN001
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not done.wait(0.2):
        pass
    stop()


def serve(
    config: Path = typer.Argument(..., help="instrument-PC config (YAML), e.g. configs/instrument_pc_materials.yaml"),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="bind here instead (tcp://127.0.0.1:0 picks a free port)"),
    journal: Optional[Path] = typer.Option(None, "--journal", help="operations journal (overrides the config)"),
    ready_file: Optional[Path] = typer.Option(None, "--ready-file", help="write the bound endpoint here once serving"),
) -> None:
    """Serve the devices of an instrument PC over ZeroMQ until SIGTERM / Ctrl-C."""
    from labflow.errors import LabflowError, RecipeError
    from labflow.remote.lab import build_server, load_instrument_pc_config

    try:
        cfg, base = load_instrument_pc_config(config)
        server = build_server(cfg, base, endpoint=endpoint, journal=journal)
        bound = server.start()
    except RecipeError as exc:
        for p in exc.problems:
            typer.echo(f"  {p}", err=True)
        _fail(exc.message, exc.hint, 2)
    except LabflowError as exc:
        _fail(exc.message, exc.hint)
    typer.echo(f"{cfg.name}: serving {sorted(server.devices)} on {bound}" + (" (CURVE)" if server.security else ""))
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(bound)
        tmp.replace(ready_file)
    _wait_for_signal(server.stop)


def keys(
    directory: Path = typer.Argument(..., help="folder for the key files"),
    name: str = typer.Option(..., "--name", help="key name, e.g. 'orchestrator' or 'furnace-pc'"),
) -> None:
    """Generate a CURVE key pair: NAME.key (public, to share) and NAME.key_secret (keep private)."""
    from labflow.remote.keys import KeyError_, generate_keypair

    try:
        public, secret = generate_keypair(directory, name)
    except KeyError_ as exc:
        _fail(exc.message, exc.hint)
    typer.echo(f"public key: {public}\nsecret key: {secret} (mode 0600; never copy it off this machine)")


def ioc(
    config: Path = typer.Argument(..., help="EPICS IOC config (YAML), e.g. configs/lab_epics_ioc.yaml"),
    ready_file: Optional[Path] = typer.Option(None, "--ready-file", help="write the PV prefix here once serving"),
) -> None:
    """Serve a simulated lab's stations as an EPICS Channel Access IOC (caproto, loopback by default)."""
    from labflow.epics.server import run_ioc_from_config

    run_ioc_from_config(config, ready_file=ready_file)


def record(
    endpoint: str = typer.Argument(..., help="document stream to subscribe to, e.g. tcp://127.0.0.1:5710"),
    recipe: Path = typer.Argument(..., help="the campaign's recipe (for the file's space and objectives)"),
    out: Path = typer.Option(..., "--out", help="HDF5 provenance file to write"),
    idle: float = typer.Option(0.0, "--idle", help="stop after this many seconds without documents (0: run until Ctrl-C)"),
) -> None:
    """Write a campaign's published bluesky documents into a provenance file on this machine."""
    from labflow.recipe import load_recipe
    from labflow.remote.streams import record_stream

    r = load_recipe(recipe, check_lab=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    n = record_stream(endpoint, out, campaign=r.name, space=r.space, objectives=r.objectives, stop=stop, idle=idle or None)
    typer.echo(f"{out}: {n} documents")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``keys``, ``ioc`` and ``record`` to the labflow CLI."""
    app.command("serve")(serve)
    app.command("keys")(keys)
    app.command("ioc")(ioc)
    app.command("record")(record)
