"""What the command line prints: progress a log can follow, help without oddities, tables that
fit an 80-column terminal, no warnings a user can do nothing about."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from labflow.cli import app
from labflow.live import LiveDisplay
from labflow.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_run_in_ci_prints_one_plain_line_per_experiment_and_a_summary(tmp_path):
    result = runner.invoke(app, ["run", str(ROOT / "recipes" / "branin.yaml"), "--executor", "virtual", "--budget", "3",
                                 "--out", str(tmp_path / "runs")])  # CliRunner's output is not a terminal, as in CI
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "campaign branin: 3 experiments"
    assert [line[:6] for line in lines[1:4]] == ["[1/3] ", "[2/3] ", "[3/3] "]
    assert all(re.match(r"^\[\d/3\] station1 completed: x1=\S+ x2=\S+ y=\S+; \d ok, 0 failed, \d+ s$", line) for line in lines[1:4])
    assert "campaign branin finished: 3 completed, 0 failed of 3" in result.output and "last 5 results" not in result.output


@pytest.mark.slow
def test_run_with_output_sent_to_a_file_shows_each_experiment_as_it_finishes(tmp_path):
    log = tmp_path / "campaign.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log, "w") as out:  # as `nohup labflow run ... > campaign.log` or a CI job does
        proc = subprocess.Popen([sys.executable, "-W", "default", "-m", "labflow.cli", "run", str(ROOT / "recipes" / "quickstart.yaml"),
                                 "--executor", "local", "--budget", "3", "--time-scale", "0.001", "--out", str(tmp_path / "runs")],
                                stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        seen_while_running = False
        while proc.poll() is None:
            if "[1/3] " in log.read_text():
                seen_while_running = True
            time.sleep(0.2)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr
    assert seen_while_running, "nothing was written to the log until the campaign ended"
    text = log.read_text()
    lines = text.splitlines()
    assert lines[0] == "campaign quickstart: 3 experiments"
    progress = [line for line in lines if re.match(r"^\[\d/3\] station\d completed: temperature=", line)]
    assert len(progress) == 3 and progress[-1].startswith("[3/3]") and "3 ok, 0 failed" in progress[-1]
    assert "campaign quickstart finished: 3 completed, 0 failed of 3" in text
    assert "\x1b[" not in text and "last 5 results" not in text  # no redrawn live view, no escape codes in the log
    assert "FutureWarning" not in stderr


def test_every_commands_help_reads_plainly():
    commands = ["", *sorted(app.registered_commands[i].name or app.registered_commands[i].callback.__name__
                            for i in range(len(app.registered_commands)))]
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"], terminal_width=100)
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output, command
        assert not re.search(r"\{[a-z_]+\}", result.output), (command, result.output)
    usage = runner.invoke(app, ["run", "--help"], terminal_width=100).output
    assert re.search(r"Usage: .* run \[OPTIONS\] RECIPE", usage)


def test_the_live_view_of_each_shipped_recipe_fits_80_columns_without_cutting_a_header():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        console = Console(width=80, record=True, force_terminal=True, color_system=None)
        console.print(LiveDisplay(recipe, console=console, plain=False).render())
        text = console.export_text()
        assert "…" not in text, (path.name, text)
        assert max(len(line) for line in text.splitlines()) <= 80
        for name in recipe.space.names + [o.name for o in recipe.objectives]:
            assert name in text, (path.name, name)
