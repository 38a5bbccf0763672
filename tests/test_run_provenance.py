"""A campaign's record says how it was run: the executor and every setting given on the command
line (budget, seed, executor, time scale), shown by ``inspect``, ``export`` and the report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from labflow.cli import app
from labflow.store.provenance import read_campaign

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_run_with_executor_local_and_budget_12_is_recorded_and_shown_as_run(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(ROOT / "recipes" / "quickstart.yaml"), "--out", str(out), "--budget", "3", "--seed", "7",
                                 "--executor", "local", "--quiet"])
    assert result.exit_code == 0, result.output
    (h5,) = out.glob("quickstart-*.h5")
    rec = read_campaign(h5)
    assert rec.executor == "local"
    assert rec.overrides == {"budget": {"recipe": 30, "run": 3}, "seed": {"recipe": 0, "run": 7},
                             "executor": {"recipe": "prefect", "run": "local"}}
    # the effective recipe is the one stored as resolved: budget 3, seed 7, executor local
    assert (rec.recipe["budget"], rec.recipe["seed"], rec.recipe["execution"]["executor"]) == (3, 7, "local")
    assert "budget: 30" in rec.recipe_text  # ... beside the recipe as written

    result = runner.invoke(app, ["inspect", str(h5)])
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines() if line.count("│") == 3}
    assert rows["executor"] == "local" and rows["state"] == "finished"
    assert "budget 3 (recipe: 30)" in result.output and "executor local (recipe: prefect)" in result.output
    summary = json.loads(runner.invoke(app, ["inspect", str(h5), "--json"]).output)
    assert summary["executor"] == "local" and summary["overrides"]["budget"] == {"recipe": 30, "run": 3}
    assert summary["recipe"]["budget"] == 3

    result = runner.invoke(app, ["export", str(h5), "-o", str(tmp_path / "pkg")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "pkg" / "metadata.json").read_text())
    assert meta["campaign"]["executor"] == "local" and meta["campaign"]["overrides"]["seed"] == {"recipe": 0, "run": 7}
    assert json.loads((tmp_path / "pkg" / "recipe.resolved.json").read_text())["budget"] == 3

    result = runner.invoke(app, ["report", str(h5), "-o", str(tmp_path / "report"), "--no-baselines", "--no-model"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "executor<b>local</b>" in html and "budget 3 (recipe: 30)" in html


def test_a_time_scale_override_is_recorded_as_the_labs(tmp_path):
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    outcome = run_recipe(load_recipe(ROOT / "recipes" / "branin.yaml"), tmp_path, budget=2, executor="local", time_scale=1e-4,
                         handle_signals=False)
    assert read_campaign(outcome.path).overrides["time_scale"] == {"recipe": 0.0, "run": 1e-4}
