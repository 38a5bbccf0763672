"""What every ``labflow`` command module shares: the consoles, the exit codes and how errors
are reported. Command modules import this and nothing else from :mod:`labflow.cli`.

One error path: the app's command group (:class:`LabflowGroup`) catches whatever a command
raises and prints one or two lines on stderr -- ``error: what, where`` and ``hint: what to
do`` -- then exits with a documented code (:data:`EXIT_CODES`). A traceback is printed only
with ``labflow --debug`` (or ``LABFLOW_DEBUG=1``). Commands added to the app get this without
any code of their own; they may still call :func:`fail` to choose the code themselves.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from labflow.errors import CampaignInterrupted, LabflowError, RecipeError

# Prefect reads these at import: quiet logs under the live display, and no telemetry from an
# offline lab. Both are only defaults; set them in the environment to change them.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# torch (through BoTorch/GPyTorch) warns about its own internals on import; a user can do
# nothing about it, so no command prints it. Our own warnings are untouched.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|gpytorch|botorch|linear_operator)(\.|$)")

__all__ = [
    "EXIT_CODES",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "DEBUG_ENV",
    "LabflowCommand",
    "LabflowGroup",
    "console",
    "err_console",
    "explain",
    "fail",
    "fail_message",
    "output_folder",
    "overrides_text",
]

console = Console()
err_console = Console(stderr=True)

EXIT_ERROR = 1
"""An error while doing what was asked (a campaign's lock held, a damaged file, a full disk)."""
EXIT_INVALID = 2
"""Invalid input -- a recipe, an option, a path -- nothing ran."""
EXIT_INTERRUPTED = 3
"""Stopped or paused by a signal: ``labflow resume`` continues it."""
EXIT_INTERNAL = 70
"""A bug in labflow or a plug-in (sysexits' EX_SOFTWARE): rerun with ``--debug`` and report the traceback."""
EXIT_CODES = {0: "success", EXIT_ERROR: "error", EXIT_INVALID: "invalid input, nothing ran",
              EXIT_INTERRUPTED: "interrupted, resumable", EXIT_INTERNAL: "internal error (a bug)", 130: "Ctrl-C"}
DEBUG_ENV = "LABFLOW_DEBUG"


def fail(exc: LabflowError, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``exc`` (message, a recipe's problems, hint) on stderr and exit with ``code``."""
    _print(exc.message, exc.problems if isinstance(exc, RecipeError) else (), exc.hint)
    raise typer.Exit(code)


def fail_message(message: str, hint: str | None = None, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` (and ``hint: ...``) on stderr, plainly, and exit with ``code``."""
    _print(message, (), hint)
    raise typer.Exit(code)


def _print(message: str, problems: Any, hint: str | None) -> None:
    err_console.print(f"[bold red]error:[/] {_escape(message)}", highlight=False, soft_wrap=True)
    for p in problems:
        err_console.print(f"{p}", highlight=False, markup=False, soft_wrap=True)
    if hint:
        err_console.print(f"[yellow]hint:[/] {_escape(hint)}", highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


# -- the one error path ------------------------------------------------------------------------
_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG}


def explain(exc: BaseException) -> tuple[str, list[Any], str | None, int]:
    """What to print for ``exc`` and the exit code: ``(message, problems, hint, code)``.

    labflow's errors carry their own message and hint; an invalid recipe or option exits 2, an
    interrupted campaign 3, any other labflow error 1. A file-system error a user can cause (no
    permission, a read-only disk, a file where a folder is expected) names the path and exits 2;
    a full disk exits 1. Anything else is a bug: exit 70, with a hint to rerun with ``--debug``.
    """
    if isinstance(exc, LabflowError):
        code = EXIT_INVALID if isinstance(exc, RecipeError) else EXIT_INTERRUPTED if isinstance(exc, CampaignInterrupted) else EXIT_ERROR
        return exc.message, list(exc.problems) if isinstance(exc, RecipeError) else [], exc.hint, code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", [], None, 130
    if isinstance(exc, OSError) and exc.errno is not None:
        return _explain_os_error(exc)
    return (f"internal error: {type(exc).__name__}: {exc}", [],
            "this is a bug in labflow or a plug-in; rerun with `labflow --debug ...` for the traceback and report it", EXIT_INTERNAL)


def _explain_os_error(exc: OSError) -> tuple[str, list[Any], str | None, int]:
    path = exc.filename if exc.filename is not None else ""
    where = f" {path}" if path else ""
    what = (exc.strerror or str(exc)).lower()
    e = exc.errno
    if e in (errno.EEXIST, errno.ENOTDIR) and path:
        blocking = next((p for p in (Path(path), *Path(path).parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:  # a file stands where a folder is needed: the path itself, or one above it
            return (f"{blocking} is a file, not a folder", [], "an output option (--out, -o) takes a folder: give a new or existing folder",
                    EXIT_INVALID)
    if e in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write or read{where}: {what}", [],
                "choose a folder you may write to (e.g. --out ~/labflow-runs) or change its permissions", EXIT_INVALID)
    if e == errno.ENOSPC:
        return (f"no space left on the device{where}", [], "free some space; `labflow resume` continues an interrupted campaign", EXIT_ERROR)
    if e == errno.EISDIR:
        return (f"{path} is a folder, not a file", [], "give a file", EXIT_INVALID)
    if e in _USER_ERRNOS:
        return (f"{what}:{where}", [], "check the path", EXIT_INVALID)
    return (f"{what}{where}", [], None, EXIT_ERROR)


def output_folder(path: Path, option: str) -> Path:
    """Check before anything runs that ``path`` (given with ``option``) can be an output folder:
    not an existing file. Raises :class:`~labflow.errors.RecipeError` (exit 2) naming the option."""
    if path.exists() and not path.is_dir():
        raise RecipeError(f"{option} {path}: is a file, not a folder", hint=f"{option} takes a folder (created if missing)")
    return path


def overrides_text(overrides: dict[str, Any]) -> str:
    """``budget 12 (recipe: 30), executor local (recipe: prefect)``: how a run differed from its recipe."""
    return ", ".join(f"{name.replace('_', ' ')} {v.get('run')} (recipe: {v.get('recipe')})" for name, v in overrides.items())


# What commands raise to end themselves (exit codes, usage errors): passed through untouched.
# typer vendors its own click; a plug-in may still raise the standalone one's.
_CLI_CONTROL = (typer.Exit, typer.Abort, TyperException, click.exceptions.Exit, click.ClickException, click.exceptions.Abort)


def _debug_requested(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("labflow.debug")) or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _plain_flag_metavars(params: list[click.Parameter]) -> None:
    """No ``<bool>`` after a flag in ``--help``: a flag takes no value."""
    for p in params:
        if p.param_type_name == "option" and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


class LabflowCommand(TyperCommand):
    """A typer command whose ``--help`` reads plainly: ``RECIPE`` rather than ``{recipe}`` in the
    usage line, and no ``<bool>`` after flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_flag_metavars(self.params)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument":
                name = (p.metavar or p.name or "").upper()
                name = name if p.required else f"[{name}]"
                pieces.append(name + ("..." if p.nargs != 1 else ""))
        return pieces

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        _plain_flag_metavars(params)
        return params


class LabflowGroup(TyperGroup):
    """The ``labflow`` command group: runs the command and turns whatever it raises into the
    one error path (:func:`explain`); ``labflow --debug`` lets the traceback through."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        _plain_flag_metavars(params)
        return params

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and type(cmd) is TyperCommand:
            cmd.__class__ = LabflowCommand  # commands registered without a class read plainly too
            _plain_flag_metavars(cmd.params)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _CLI_CONTROL:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            if _debug_requested(ctx):
                raise
            if isinstance(exc, BrokenPipeError):  # `labflow inspect x | head`: the reader left; nothing to say
                raise typer.Exit(EXIT_ERROR) from None
            message, problems, hint, code = explain(exc)
            _print(message, problems, hint)
            raise typer.Exit(code) from None
