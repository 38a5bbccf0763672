"""Recipes: safe YAML, one schema, every problem reported at once as `path: message`."""

import textwrap
from pathlib import Path

import pytest

from labflow import load_recipe
from labflow.errors import RecipeError

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name: t1
lab: {lab}
parameters:
  - {{name: temperature, low: 100 degC, high: 300 degC}}
  - {{name: time, low: 1 min, high: 60 min, log: true}}
  - {{name: dopant_fraction, low: 0, high: 1}}
objectives:
  - {{name: product_yield, direction: maximize, unit: percent}}
budget: 5
"""


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def lab():
    return str(ROOT / "configs" / "sim_materials.yaml")


def problems(path):
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return {str(p) for p in info.value.problems}, info.value


def test_shipped_recipes_are_valid():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.budget >= 1 and len(recipe.hash) == 16, path


def test_a_recipe_is_frozen_and_hashed(tmp_path):
    r = load_recipe(write(tmp_path, GOOD.format(lab=lab())))
    assert r.space["temperature"].unit == "degC" and r.space["time"].log
    with pytest.raises(AttributeError, match="frozen"):
        r.spec = None
    assert r.replace(budget=9).budget == 9 and r.replace(budget=9).hash != r.hash
    assert load_recipe(write(tmp_path, GOOD.format(lab=lab()), "again.yaml")).hash == r.hash


def test_lab_given_by_name_is_found_in_configs(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mylab.yaml").write_text((ROOT / "configs" / "sim_materials.yaml").read_text())
    r = load_recipe(write(tmp_path / "recipes", GOOD.format(lab="mylab")))
    assert r.lab_path.name == "mylab.yaml"


def test_every_problem_is_listed_with_its_path(tmp_path):
    text = """
    name: bad name!
    lab: {lab}
    parameters:
      - {{name: temperature, low: 300 degC, high: 100 degC}}
      - {{name: time, low: 1 min, high: 60 minn}}
      - {{name: dopant_fraction, low: 0, high: 1, colour: red}}
    objectives:
      - {{name: product_yield, direction: up}}
    budget: many
    surprise: 1
    """
    found, err = problems(write(tmp_path, text.format(lab=lab())))
    paths = {p.split(":")[0] for p in found}
    assert {"name", "parameters.0", "parameters.1.high", "parameters.2.colour", "objectives.0.direction", "budget", "surprise"} <= paths
    assert any("swap the bounds" in p for p in found)
    assert any("unknown unit" in p and "minn" in p for p in found)
    assert "unknown key 'surprise'" in str(err)


def test_a_temperature_given_in_metres_is_a_dimension_error(tmp_path):
    text = GOOD.replace("low: 100 degC, high: 300 degC", "low: 100 m, high: 300 m")
    found, _ = problems(write(tmp_path, text.format(lab=lab())))
    assert any(p.startswith("parameters.0.low") and "[length]" in p and "[temperature]" in p for p in found), found


def test_bounds_beyond_the_device_limits_are_refused_before_anything_moves(tmp_path):
    text = GOOD.replace("high: 300 degC", "high: 450 degC")
    found, _ = problems(write(tmp_path, text.format(lab=lab())))
    assert any(p.startswith("parameters.0.high") and "device limit" in p for p in found), found


def test_parameters_and_objectives_must_exist_on_the_lab(tmp_path):
    text = GOOD.replace("name: dopant_fraction", "name: pressure").replace("name: product_yield", "name: purity")
    found, _ = problems(write(tmp_path, text.format(lab=lab())))
    assert any("no parameter 'pressure'" in p for p in found)
    assert any("measures no 'purity'" in p for p in found)


def test_yaml_tags_that_would_run_code_are_refused(tmp_path):
    canary = tmp_path / "canary"
    text = f"name: !!python/object/apply:os.system ['touch {canary}']\n"
    with pytest.raises(RecipeError, match="unsupported YAML tag"):
        load_recipe(write(tmp_path, text))
    assert not canary.exists()


def test_alias_bombs_and_oversized_files_are_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefghijkl", "bcdefghijklm")
    )
    with pytest.raises(RecipeError, match="aliases"):
        load_recipe(write(tmp_path, bomb))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20))
    with pytest.raises(RecipeError, match="larger than"):
        load_recipe(big)


def test_missing_file_and_missing_lab_are_named(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    found, _ = problems(write(tmp_path, GOOD.format(lab="no_such_lab")))
    assert any(p.startswith("lab:") and "no_such_lab" in p for p in found)
