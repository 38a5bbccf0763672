"""`labflow schema`: the JSON Schema of recipes (and lab configs) validates what ships and rejects what is broken."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from labflow.cli import app
from labflow.lab import lab_kinds
from labflow.schema import lab_schema, recipe_schema, validate_recipe_data

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "reference" / "schemas"
runner = CliRunner()


def test_the_schemas_are_valid_json_schemas():
    jsonschema.Draft202012Validator.check_schema(recipe_schema())
    jsonschema.Draft202012Validator.check_schema(lab_schema())


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_is_valid(path):
    assert validate_recipe_data(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_lab_config_is_valid(path):
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or data.get("kind") not in lab_kinds():
        pytest.skip(f"{path.name} is not a lab config (an instrument-PC config)")
    errors = [e.message for e in jsonschema.Draft202012Validator(lab_schema()).iter_errors(data)]
    assert errors == []


def test_a_broken_recipe_is_rejected_with_paths():
    broken = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    broken["colour"] = "blue"                                  # unknown key
    broken["budget"] = 0                                       # below the minimum
    broken["planner"]["kind"] = "genetic"                      # not a planner
    broken["parameters"][0]["low"] = "hot"                     # not a quantity
    broken["objectives"][0]["direction"] = "sideways"          # not a direction
    problems = validate_recipe_data(broken)
    text = "\n".join(problems)
    assert "'colour' was unexpected" in text
    assert any(p.startswith("budget:") for p in problems)
    assert any(p.startswith("planner.kind:") for p in problems)
    assert any(p.startswith("parameters.0:") for p in problems)
    assert any(p.startswith("objectives.0.direction:") for p in problems)
    del broken["lab"]
    assert any("'lab' is a required property" in p for p in validate_recipe_data(broken))


def test_quantities_accept_numbers_and_text_with_units():
    base = yaml.safe_load((ROOT / "recipes" / "branin.yaml").read_text())
    for low in (-5, -5.0, "-5", "-5 m", "1e-3 mol/L"):
        base["parameters"][0]["low"] = low
        assert validate_recipe_data(base) == [], low


def test_cli_prints_the_schema_and_the_shipped_copies_are_current(tmp_path):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0 and json.loads(result.output) == recipe_schema()
    result = runner.invoke(app, ["schema", "lab", "-o", str(tmp_path / "lab.json")])
    assert result.exit_code == 0 and json.loads((tmp_path / "lab.json").read_text()) == lab_schema()
    assert runner.invoke(app, ["schema", "nonsense"]).exit_code == 2
    # docs/reference/schemas/ holds what `labflow schema` prints: regenerate with
    #   labflow schema -o docs/reference/schemas/recipe.schema.json; labflow schema lab -o docs/reference/schemas/lab.schema.json
    assert json.loads((SCHEMAS / "recipe.schema.json").read_text()) == recipe_schema()
    assert json.loads((SCHEMAS / "lab.schema.json").read_text()) == lab_schema()
