"""B1-B6, B11: bad recipes give one clear error, exit code 2, nothing run, nothing written."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from labflow.cli import app
from labflow.errors import RecipeError
from labflow.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
LAB = str(ROOT / "configs" / "sim_materials.yaml")
runner = CliRunner()

GOOD = f"""
name: ok
lab: {LAB}
parameters:
  - {{name: temperature, low: 100 degC, high: 300 degC}}
  - {{name: time, low: 1 min, high: 60 min}}
  - {{name: dopant_fraction, low: 0, high: 1}}
objectives:
  - {{name: product_yield, unit: percent}}
budget: 3
execution: {{executor: local}}
"""


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _run_bad(tmp_path: Path, text: str | bytes, name: str = "bad.yaml"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())
    before = _tree(tmp_path)
    result = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert _tree(tmp_path) == before  # nothing written, not even the output directory
    return result, None


def test_the_good_recipe_is_good(tmp_path):
    (tmp_path / "r.yaml").write_text(GOOD)
    load_recipe(tmp_path / "r.yaml")


def test_b1_missing_fields_wrong_types_and_unknown_keys_are_all_reported_at_once(tmp_path):
    result, _ = _run_bad(tmp_path, f"""
        lab: {LAB}
        parameters:
          - {{name: temperature, low: hot, high: 300 degC}}
        objectives: yes
        budget: many
        colour: blue
    """)
    out = result.output
    for expected in ("name: required field is missing", "colour: unknown key 'colour'", "budget:", "objectives:", "parameters.0.low"):
        assert expected in out, out


def test_b2_a_unit_mismatch_names_both_dimensions(tmp_path):
    result, _ = _run_bad(tmp_path, GOOD.replace("low: 100 degC, high: 300 degC", "low: 5 m, high: 9 m"))
    assert "[length]" in result.output and "[temperature]" in result.output, result.output


def test_b2_an_unknown_unit_is_named(tmp_path):
    result, _ = _run_bad(tmp_path, GOOD.replace("low: 1 min, high: 60 min", "low: 1 fortnightz, high: 60 min"))
    assert "fortnightz" in result.output


def test_b3_bounds_wider_than_the_device_limits_are_rejected_before_anything_moves(tmp_path):
    result, _ = _run_bad(tmp_path, GOOD.replace("high: 300 degC", "high: 3000 degC"))
    assert "above the device limit" in result.output, result.output


def test_b3_the_device_refuses_out_of_limit_values_before_set(tmp_path):
    """The dry-run check in the plan: a value outside the hard limits raises before any set()."""
    from labflow.devices.base import ParameterLimitError, to_device_values
    from labflow.lab import load_lab_config

    lab = load_lab_config(LAB).build(seed=0, time_scale=0)
    syn = lab.stations[0].synthesis
    calls = []
    for name in syn.parameter_names:
        sig = getattr(syn, name)
        real = sig.set
        sig.set = lambda *a, _real=real, **k: (calls.append(a), _real(*a, **k))[1]
    with pytest.raises(ParameterLimitError, match="outside the device limits"):
        to_device_values(syn, {"temperature": "3000 degC", "time": "10 min", "dopant_fraction": 0.5})
    assert calls == []  # set() calls on bad input: 0
    lab.close()


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system", "!!python/object/new:os.system", "!mytag"])
def test_b4_yaml_tags_that_would_run_code_are_refused_and_the_canary_never_appears(tmp_path, tag):
    canary = tmp_path / "canary"
    arg = f'["touch {canary}"]' if "apply" in tag or "new" in tag else f"'touch {canary}'"
    result, _ = _run_bad(tmp_path, GOOD.replace("name: ok", f"name: ok\ndescription: {tag} {arg}"))
    assert not canary.exists()
    assert "unsupported YAML tag" in result.output or "not valid YAML" in result.output, result.output


def _bomb(levels: int) -> str:
    return "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(levels))


@pytest.mark.timeout(120)
def test_b5_an_alias_bomb_is_refused_before_expansion(tmp_path):
    result, _ = _run_bad(tmp_path, _bomb(11))  # 110 aliases: over the alias cap
    assert "aliases" in result.output


# Refused before any expansion: were a bomb expanded (10**10 values) or a 10,000-deep document
# recursed into, these would run for hours; pytest-timeout fails them instead (no wall-clock
# assertion, which a loaded CI machine would make flaky).
@pytest.mark.timeout(120)
def test_b5_an_alias_bomb_under_the_alias_cap_is_refused_by_its_expanded_size(tmp_path):
    # 90 aliases, 10**10 values once expanded, hidden where any value is allowed
    bomb = GOOD.replace("execution: {executor: local}", "execution: {executor: local}\nplanner:\n  options:\n    " +
                        _bomb(9).replace("\n", "\n    "))
    result, took = _run_bad(tmp_path, bomb)
    assert "alias bomb" in result.output, result.output


@pytest.mark.timeout(120)
def test_b5_an_oversized_recipe_is_refused_by_its_size(tmp_path):
    result, _ = _run_bad(tmp_path, b"# " + b"x" * (5 << 20) + b"\n" + GOOD.encode())
    assert "larger than" in result.output


@pytest.mark.timeout(120)
def test_b5_deep_nesting_is_refused(tmp_path):
    result, _ = _run_bad(tmp_path, "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert ("too deep" in result.output or "invalid" in result.output or "not valid" in result.output), result.output


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/b", "..", "ok/../../evil", "evil\\x00", ".hidden", "-rf"])
def test_b6_path_traversal_or_absolute_names_are_rejected(tmp_path, name):
    result, _ = _run_bad(tmp_path, GOOD.replace("name: ok", f'name: "{name}"'))
    assert "name:" in result.output
    assert not (tmp_path.parent / "evil").exists() and not Path("/tmp/evil").exists()


def test_validate_and_run_agree_on_exit_code_2(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\n")
    assert runner.invoke(app, ["validate", str(p)]).exit_code == 2


# -- B11: property-based random recipes ----------------------------------------------------------------
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["100 degC", "5 m", "1 min", "nan degC", "inf K", "1e400 s", "-1 s"]))
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
_param = st.fixed_dictionaries(
    {"name": st.sampled_from(["temperature", "time", "dopant_fraction", "x", ""]), "low": _scalar, "high": _scalar},
    optional={"type": st.sampled_from(["real", "integer", "categorical", "bogus"]), "unit": st.sampled_from(["degC", "K", "m", "", "zz"]),
              "log": st.booleans(), "choices": st.lists(st.text(max_size=4), max_size=3)},
)
_recipe = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["ok", "../x", "a b"]), st.text(max_size=10)), "lab": st.just(LAB),
     "parameters": st.one_of(st.lists(_param, max_size=3), _value),
     "objectives": st.one_of(st.lists(st.fixed_dictionaries({"name": st.sampled_from(["product_yield", "y"])},
                                                            optional={"direction": st.sampled_from(["maximize", "minimize", "up"]),
                                                                      "unit": st.sampled_from(["percent", "K", ""])}), max_size=2), _value),
     "budget": st.one_of(st.integers(-5, 10**6), _scalar)},
    optional={"seed": _scalar, "planner": _value, "execution": _value, "extra": _value},
)


@settings(max_examples=int(os.environ.get("LABFLOW_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], derandomize=True)
@given(data=_recipe)
def test_b11_random_recipes_raise_only_recipe_errors(tmp_path, data):
    p = tmp_path / "h.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_recipe(p)
    except RecipeError:
        pass
