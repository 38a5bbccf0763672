"""The `labflow` command line, as a user types it."""

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from labflow.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_validate_accepts_the_shipped_recipes():
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(recipe)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


def test_validate_lists_every_problem_on_its_own_line_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(f"""
        name: bad
        lab: {ROOT / 'configs' / 'sim_materials.yaml'}
        parameters:
          - {{name: temperature, low: 100 m, high: 300 m}}
          - {{name: time, low: 60 min, high: 1 min}}
        objectives:
          - {{name: product_yield, direction: sideways}}
        budget: 3
        colour: blue
    """))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert "parameters.1: low (60 min) must be below high (1 min); swap the bounds" in lines
    assert "colour: unknown key 'colour'" in lines
    assert any(line.startswith("objectives.0.direction: ") for line in lines)


def test_validate_reports_dimension_errors_against_the_device(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(f"""
        name: bad
        lab: {ROOT / 'configs' / 'sim_materials.yaml'}
        parameters:
          - {{name: temperature, low: 100 m, high: 300 m}}
        objectives:
          - {{name: product_yield}}
        budget: 3
    """))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert any(line.startswith("parameters.0.low: ") and "[temperature]" in line for line in result.output.splitlines())


def test_run_then_inspect_as_json(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(ROOT / "recipes" / "branin.yaml"), "--out", str(out), "--budget", "5",
                                 "--seed", "3", "--executor", "local", "--quiet"])
    assert result.exit_code == 0, result.output
    (h5,) = out.glob("branin-*.h5")
    assert "5 completed, 0 failed" in result.output and str(h5) in result.output

    result = runner.invoke(app, ["inspect", str(h5), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {"campaign", "experiments", "completed", "failed", "best"} <= set(summary)
    assert (summary["campaign"], summary["experiments"], summary["completed"], summary["failed"]) == ("branin", 5, 5, 0)
    assert summary["seed"] == 3 and summary["recipe"]["name"] == "branin"
    assert set(summary["best"]) >= {"x1", "x2", "y"} and set(summary["best"]["y"]) == {"value", "unit"}

    result = runner.invoke(app, ["inspect", str(h5)])
    assert result.exit_code == 0 and "best experiment" in result.output and "bluesky" in result.output
    assert "name: branin" in result.output  # the recipe as written


def test_inspect_on_a_missing_file_says_so(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope.h5")])
    assert result.exit_code == 1
    assert "no provenance file" in result.output
