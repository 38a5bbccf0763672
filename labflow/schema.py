"""JSON Schemas for recipes and lab configs, generated from the pydantic models that load them.

The pydantic models in :mod:`labflow.recipe` (``RecipeSpec``) and :mod:`labflow.lab` (the
lab kinds) are the source of truth; this module asks them for their JSON Schema and adds
what editors need and pydantic cannot know:

* ``$schema`` (draft 2020-12), ``$id`` and a title;
* quantities (``low: 100 degC``, ``timeout: 2 min``) as "a number, or a number followed by a
  unit" (a ``pattern``), with examples; durations in lab configs, which pydantic describes as
  plain numbers of seconds because they are converted before validation, accept text too;
* names that must be Python identifiers get their pattern, and fields without a docstring
  get a one-line description for hover help.

The schema checks structure (keys, types, enums, bounds); the loader checks more (units
exist and have the right dimension, bounds are ordered, the lab has the parameters).
``labflow validate`` remains the final word; the schema is for completion and early red
squiggles.

Use it from an editor: ``labflow schema > recipe.schema.json`` and, with the YAML language
server (VS Code's YAML extension), put ``# yaml-language-server: $schema=recipe.schema.json``
at the top of a recipe. ``docs/reference/schemas/`` holds the current files.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["QUANTITY_PATTERN", "lab_schema", "recipe_schema", "validate_recipe_data"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
QUANTITY_PATTERN = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:\s*\S.*)?$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
CAMPAIGN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

_DESCRIPTIONS = {
    # recipe
    ("RecipeSpec", "description"): "one line on what the campaign is for (shown in reports and exported metadata)",
    ("RecipeSpec", "parameters"): "what to vary: reals (default), integers and categoricals, with units and bounds",
    ("RecipeSpec", "objectives"): "what to measure, and which way is better; several objectives give a Pareto front",
    ("RecipeSpec", "planner"): "how experiments are chosen",
    ("RecipeSpec", "seed"): "seeds the planner and the simulated lab: same recipe and seed, same campaign",
    ("RecipeSpec", "execution"): "how experiments run: executor, retries, timeouts",
    ("RealSpec", "name"): "parameter name: a Python identifier that the lab's stations know",
    ("RealSpec", "type"): "'real' (the default)",
    ("RealSpec", "low"): "lower bound: a number, or a quantity such as '100 degC'",
    ("RealSpec", "high"): "upper bound: a number, or a quantity such as '300 degC'",
    ("RealSpec", "unit"): "the unit values are given in (default: the bounds' unit)",
    ("RealSpec", "log"): "search on a log scale (needs low > 0)",
    ("IntegerSpec", "name"): "parameter name: a Python identifier that the lab's stations know",
    ("IntegerSpec", "type"): "'integer'",
    ("IntegerSpec", "low"): "lowest value (inclusive)",
    ("IntegerSpec", "high"): "highest value (inclusive)",
    ("IntegerSpec", "unit"): "unit of the values (pint syntax)",
    ("CategoricalSpec", "name"): "parameter name: a Python identifier that the lab's stations know",
    ("CategoricalSpec", "type"): "'categorical'",
    ("CategoricalSpec", "choices"): "the labels the parameter can take (at least two, unique)",
    ("ObjectiveSpec", "name"): "objective name: a Python identifier the lab's instruments measure",
    ("ObjectiveSpec", "direction"): "maximize or minimize",
    ("ObjectiveSpec", "unit"): "unit the objective is recorded in (converted from the instrument's)",
    ("ObjectiveSpec", "threshold"): "worst value still worth having: the hypervolume's reference point",
    ("PlannerSpec", "kind"): "bayesian (BoTorch GP), multifidelity, a baseline (random, sobol, lhs, grid, ofat), or an installed plug-in",
    ("ExecutionSpec", "executor"): "prefect (tasks in the Prefect UI), local (threads), virtual (simulated time), or an installed plug-in",
    ("ExecutionSpec", "retries"): "attempts after a failed experiment (each attempt is its own bluesky run)",
    ("ExecutionSpec", "retry_delay"): "wait before a retry, e.g. '30 s'",
    ("ExecutionSpec", "timeout"): "longest any device wait may take, e.g. '2 min'",
}
_IDENTIFIER_FIELDS = {("RealSpec", "name"), ("IntegerSpec", "name"), ("CategoricalSpec", "name"), ("ObjectiveSpec", "name")}
_QUANTITY_EXAMPLES = {"low": ["100 degC", 0.5], "high": ["300 degC", 1], "threshold": ["50 percent"],
                      "retry_delay": ["30 s"], "timeout": ["2 min", "1 h"]}


def _quantity(examples: list[Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": QUANTITY_PATTERN}]}
    if examples:
        out["examples"] = examples
    return out


def _is_quantity(prop: dict[str, Any]) -> bool:
    types = {a.get("type") for a in prop.get("anyOf", [])}
    return {"number", "string"} <= types and types <= {"number", "integer", "string", "null"}


def _fix_quantities(model: str, props: dict[str, Any]) -> None:
    for name, prop in props.items():
        if _is_quantity(prop):
            nullable = any(a.get("type") == "null" for a in prop["anyOf"])
            new = _quantity(_QUANTITY_EXAMPLES.get(name))
            if nullable:
                new["anyOf"].append({"type": "null"})
            for k in ("default", "title", "description"):
                if k in prop:
                    new[k] = prop[k]
            props[name] = new


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe YAML file."""
    from labflow.recipe import RecipeSpec

    schema = copy.deepcopy(RecipeSpec.model_json_schema())
    defs = schema.setdefault("$defs", {})
    models = {"RecipeSpec": schema, **defs}
    for model, sub in models.items():
        props = sub.get("properties", {})
        _fix_quantities(model, props)
        for name, prop in props.items():
            if (model, name) in _DESCRIPTIONS and "description" not in prop:
                prop["description"] = _DESCRIPTIONS[(model, name)]
            if (model, name) in _IDENTIFIER_FIELDS:
                prop["pattern"] = IDENTIFIER_PATTERN
    # The names the registries know now (built-ins and installed plug-ins: labflow.plugins).
    from labflow.executors import executor_names
    from labflow.planners import planner_names

    defs["PlannerSpec"]["properties"]["kind"]["enum"] = planner_names()
    defs["ExecutionSpec"]["properties"]["executor"]["enum"] = executor_names()
    schema["properties"]["name"]["pattern"] = CAMPAIGN_NAME_PATTERN
    schema["properties"]["lab"]["examples"] = ["sim_materials", "../configs/my_lab.yaml"]
    out = {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://labflow.dev/schemas/recipe.schema.json",
        "title": "labflow recipe",
        **{k: v for k, v in schema.items() if k not in ("title",)},
    }
    out["description"] = "A labflow campaign recipe: what to vary, what to measure, how to plan and where to run. " \
                         "Generated from labflow.recipe.RecipeSpec by `labflow schema`."
    return out


def lab_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a lab config YAML file (every registered lab ``kind``)."""
    from labflow.lab import _lab_adapter, lab_kinds  # the registry's union of lab kinds

    lab_kinds()  # imports the kinds that register themselves on first use
    adapter = _lab_adapter()
    schema = copy.deepcopy(adapter.json_schema())
    converted = _converted_fields(adapter)
    for model, sub in schema.get("$defs", {}).items():
        props = sub.get("properties", {})
        _fix_quantities(model, props)
        for name, prop in list(props.items()):
            if (model, name) not in converted:
                continue
            nullable = any(a.get("type") == "null" for a in prop.get("anyOf", []))
            new = _quantity(["5 min", 30])
            if nullable:
                new["anyOf"].append({"type": "null"})
            for k in ("default", "title", "description"):
                if k in prop:
                    new[k] = prop[k]
            new.setdefault("description", "a number in the field's base unit, or a quantity such as '5 min'")
            props[name] = new
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://labflow.dev/schemas/lab.schema.json",
        "title": "labflow lab config",
        "description": "A labflow lab config (configs/*.yaml): its kind and what it is built from. "
                       "Generated from the registered lab kinds by `labflow schema lab`.",
        **schema,
    }


def _converted_fields(adapter: Any) -> set[tuple[str, str]]:
    """(model name, field) of every numeric field that converts text before validation
    (durations such as ``'5 min'``): pydantic describes them as plain numbers."""
    import typing

    from pydantic import BaseModel
    from pydantic.functional_validators import BeforeValidator, PlainValidator, WrapValidator

    out: set[tuple[str, str]] = set()
    seen: set[type] = set()

    def models_in(tp: Any) -> list[type]:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return [tp]
        found = []
        for arg in typing.get_args(tp):
            found += models_in(arg)
        return found

    def converts(tp: Any) -> bool:
        meta = getattr(tp, "__metadata__", ())
        if any(isinstance(m, (BeforeValidator, PlainValidator, WrapValidator)) for m in meta):
            return True
        return any(converts(a) for a in typing.get_args(tp))

    def visit(model: type) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if any(isinstance(m, (BeforeValidator, PlainValidator, WrapValidator)) for m in field.metadata) or converts(field.annotation):
                out.add((model.__name__, name))
            for sub in models_in(field.annotation):
                visit(sub)

    for model in models_in(adapter._type):  # noqa: SLF001 - the union the adapter was built from
        visit(model)
    return out


def validate_recipe_data(data: Any) -> list[str]:
    """Problems the recipe schema finds in ``data`` (a recipe loaded from YAML), as ``path: message``; empty if none."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(recipe_schema())
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = ".".join(str(p) for p in err.absolute_path) or "<root>"
        problems.append(f"{path}: {err.message}")
    return problems
