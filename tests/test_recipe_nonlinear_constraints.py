"""Recipes with nonlinear constraints: expressions are parsed against the parameters, never run as Python."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from labflow.cli import app
from labflow.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def recipe(tmp_path: Path, constraint: str) -> Path:
    path = tmp_path / "formulation.yaml"
    path.write_text(textwrap.dedent(f"""
        name: formulation
        lab: {ROOT / 'configs' / 'sim_materials.yaml'}
        parameters:
          - {{name: temperature, low: 100 degC, high: 300 degC}}
          - {{name: time, low: 1 min, high: 60 min, log: true}}
          - {{name: dopant_fraction, low: 0, high: 1}}
        objectives:
          - {{name: product_yield, direction: maximize, unit: percent}}
        constraints:
          - {constraint}
        budget: 5
    """))
    return path


def test_a_recipe_with_a_nonlinear_expression_validates_and_its_suggestions_satisfy_it(tmp_path):
    path = recipe(tmp_path, '{expression: "dopant_fraction * sqrt(temperature / 100) <= 1.2", name: solubility}')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    loaded = load_recipe(path)
    (limit,) = loaded.space.nonlinear
    assert limit.name == "solubility"
    from labflow.planners import SobolPlanner

    batch = SobolPlanner(loaded.space, loaded.objectives, seed=0).suggest(16)
    assert (batch["dopant_fraction"] * (batch["temperature"] / 100) ** 0.5 <= 1.2 + 1e-6).all()


def test_a_recipe_expression_with_an_unknown_name_is_refused_with_exit_2(tmp_path):
    path = recipe(tmp_path, '{expression: "dopant_fraction * pressure <= 1"}')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert any(line.startswith("constraints.0.expression: ") and "unknown name 'pressure'" in line for line in result.output.splitlines())


def test_a_recipe_expression_that_calls_python_is_refused_with_exit_2(tmp_path):
    path = recipe(tmp_path, '''{expression: "__import__('os').system('echo hacked') <= 1"}''')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "hacked" not in result.output.replace("echo hacked", "")
    assert any(line.startswith("constraints.0.expression: ") and "is not an allowed function" in line for line in result.output.splitlines())


def test_a_recipe_with_a_python_object_tag_is_refused_with_exit_2(tmp_path):
    path = recipe(tmp_path, '{expression: !!python/object/apply:os.getcwd []}')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "unsupported YAML tag" in result.output and str(path) in result.output


def test_a_recipe_with_nchoosek_validates(tmp_path):
    path = recipe(tmp_path, "{type: nchoosek, parameters: [dopant_fraction, temperature], max_nonzero: 1}")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2  # temperature starts at 100 degC: it cannot be left out
    assert "constraints.0.parameters: temperature must be a real, linear-scale parameter with low 0" in result.output
