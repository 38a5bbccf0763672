"""The ``labflow`` command line (console script ``labflow = labflow.cli:app``).

One module per group of commands, over one small common module (:mod:`labflow.cli.common`:
consoles, exit codes, error reporting); no command module imports another (an import-linter
contract in ``pyproject.toml``)::

    inspect.py   validate, inspect          look at a recipe or a campaign file
    remote.py    serve, keys, ioc, record   instruments on other machines
    run.py       run, resume                crash-safe campaigns
    deploy.py    deploy                     a recipe as a Prefect deployment on a work pool
    bench.py     bench                      planners against baselines on datasets
    report.py    report, export, schema     share a campaign
    people.py    pending, approve, reject,  people in the loop: approvals, operator experiments,
                 add, annotate              annotations (acts through the campaign's inbox)
    dashboard.py dashboard                  the campaigns in the browser, with their approval queues
"""

from __future__ import annotations

import typer

from labflow.cli import bench, common, dashboard, deploy, inspect, people, remote, report, run
from labflow.cli.common import EXIT_INVALID, console, err_console

__all__ = ["EXIT_INVALID", "app", "console", "err_console", "main"]

app = typer.Typer(
    name="labflow",
    help="Closed-loop campaigns for self-driving labs: plan with BoTorch, run with bluesky, record in HDF5.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _commands in (inspect, remote, run, deploy, people, dashboard, bench, report):
    _commands.register(app)

_fail = common.fail  # the name the commands used before the package


def main() -> None:  # pragma: no cover - console entry
    app()
