"""What the command line prints: progress a log can follow, help without oddities, tables that
fit an 80-column terminal, no warnings a user can do nothing about."""

from __future__ import annotations

import re
from pathlib import Path

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
