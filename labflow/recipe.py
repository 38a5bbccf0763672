"""Campaign recipes: YAML files validated by one schema into a frozen, hashed ``Recipe``.

A recipe says what to vary (parameters with units and bounds), what to measure
(objectives with directions), how to plan (planner settings), where to run (a lab
config from ``configs/``), and how long and how robustly (budget, seed, retries,
timeouts). Loading never runs code (safe YAML only, with size and alias caps) and
reports every problem at once as ``path.to.field: message``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from labflow.errors import Problem, RecipeError, SpaceError, UnitError
from labflow.objectives import Objective
from labflow.space import Categorical, Integer, Real, Space
from labflow.units import convert, parse_quantity, parse_unit, ureg

MAX_RECIPE_BYTES = 1 << 20  # 1 MiB
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000  # values after alias expansion: a few aliases nested deep can mean billions


def _expanded_size(data: Any) -> int:
    """How many values ``data`` holds once aliases are expanded, without expanding them (a shared
    node counts once per reference). Stops counting past the cap; iterative, so deep nesting is safe."""
    memo: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in memo and not done:
            continue
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in memo)
            continue
        total = 1
        for c in children:
            total += memo.get(id(c), 1) if isinstance(c, (dict, list)) else 1
            if total > MAX_YAML_NODES:
                break
        memo[id(node)] = min(total, MAX_YAML_NODES + 1)
    return memo.get(id(data), 1)


# -- safe YAML ------------------------------------------------------------------------
class _CappedSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses alias bombs: at most MAX_YAML_ALIASES aliases per document."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} YAML aliases (anchors reused too often)")
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, *, what: str = "recipe") -> Any:
    """Read a YAML file safely: no tags that run code, at most 1 MiB, at most 100 aliases."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{what} file {str(p)!r} does not exist", source=str(p))
    size = p.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{what} {p}: file is {size} bytes, larger than the {MAX_RECIPE_BYTES}-byte limit", source=str(p))
    text = p.read_text(encoding="utf-8-sig")
    try:
        data = yaml.load(text, Loader=_CappedSafeLoader)  # noqa: S506 - a SafeLoader subclass
        size = _expanded_size(data)
        if size > MAX_YAML_NODES:
            raise RecipeError(
                f"{what} {p}: expands to more than {MAX_YAML_NODES} values (YAML aliases reused in a nest: an alias bomb)",
                hint="write the values out, or reuse anchors less",
                source=str(p),
            )
        return data
    except yaml.constructor.ConstructorError as exc:
        raise RecipeError(
            f"{what} {p}: unsupported YAML tag at line {exc.problem_mark.line + 1 if exc.problem_mark else '?'}",
            hint="recipes are plain data: remove tags such as !!python/...",
            source=str(p),
        ) from None
    except RecursionError:
        raise RecipeError(f"{what} {p}: nesting is too deep", source=str(p)) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{what} {p}: not valid YAML: {exc}", source=str(p)) from None


# -- schema ----------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


QuantityText = Union[float, int, str]
_NUMBER_PREFIX = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*(.*)$")


def _check_quantity(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(f"expected a number or a quantity such as '150 degC', got {v!r}")
    try:
        parse_quantity(v)
    except UnitError as exc:
        raise ValueError(exc.message) from None
    return v


def _check_unit(v: str) -> str:
    try:
        parse_unit(v)
    except UnitError as exc:
        raise ValueError(exc.message) from None
    return v


class RealSpec(_Model):
    """A continuous parameter. Bounds may carry units ("100 degC"); ``unit`` defaults to the bounds' unit."""

    name: str
    type: Literal["real"] = "real"
    low: QuantityText
    high: QuantityText
    unit: str | None = None
    log: bool = False

    _v_low = field_validator("low", "high")(_check_quantity)
    _v_unit = field_validator("unit")(lambda v: v if v is None else _check_unit(v))

    @model_validator(mode="after")
    def _bounds(self) -> RealSpec:
        unit = self.resolved_unit()
        lo, hi = _bound(self.low, unit, "low"), _bound(self.high, unit, "high")
        if not lo < hi:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}); swap the bounds")
        if self.log and lo <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")
        return self

    def resolved_unit(self) -> str:
        if self.unit is not None:
            return self.unit
        for b in (self.low, self.high):
            if isinstance(b, str):
                m = _NUMBER_PREFIX.match(b)
                text = m.group(1).strip() if m else ""
                if text:
                    return text  # the unit as the user wrote it ("degC", "min")
        return ""

    def to_parameter(self) -> Real:
        unit = self.resolved_unit()
        return Real(self.name, _bound(self.low, unit, "low"), _bound(self.high, unit, "high"), unit=unit, log=self.log)


class IntegerSpec(_Model):
    """An integer parameter with inclusive bounds."""

    name: str
    type: Literal["integer"]
    low: int
    high: int
    unit: str | None = None

    _v_unit = field_validator("unit")(lambda v: v if v is None else _check_unit(v))

    @model_validator(mode="after")
    def _bounds(self) -> IntegerSpec:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}); swap the bounds")
        return self

    def to_parameter(self) -> Integer:
        return Integer(self.name, self.low, self.high, unit=self.unit or "")


class CategoricalSpec(_Model):
    """A parameter taking one of a few labels."""

    name: str
    type: Literal["categorical"]
    choices: list[str] = Field(min_length=2)

    @field_validator("choices")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"choices must be unique, got {v}")
        return v

    def to_parameter(self) -> Categorical:
        return Categorical(self.name, tuple(self.choices))


def _parameter_type(v: Any) -> str:
    return v.get("type", "real") if isinstance(v, Mapping) else getattr(v, "type", "real")


ParameterSpec = Annotated[
    Union[Annotated[RealSpec, Tag("real")], Annotated[IntegerSpec, Tag("integer")], Annotated[CategoricalSpec, Tag("categorical")]],
    Discriminator(
        _parameter_type,
        custom_error_type="parameter_type",
        custom_error_message="unknown parameter type; expected 'real' (the default), 'integer' or 'categorical'",
    ),
]


class ObjectiveSpec(_Model):
    """Something measured, and which way is better."""

    name: str
    direction: Literal["maximize", "minimize"] = "maximize"
    unit: str | None = None
    threshold: QuantityText | None = None

    _v_unit = field_validator("unit")(lambda v: v if v is None else _check_unit(v))

    def to_objective(self) -> Objective:
        thr = None if self.threshold is None else convert(self.threshold, self.unit or "")
        return Objective(self.name, self.direction, self.unit or "", thr)


class PlannerSpec(_Model):
    """Which planner proposes experiments, and its settings."""

    kind: Literal["bayesian", "random", "sobol", "lhs", "grid", "ofat"] = "bayesian"
    batch: int = Field(1, ge=1, description="candidates proposed per round (q)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the planner class")


class ExecutionSpec(_Model):
    """How experiments run: the executor, retries and timeouts."""

    executor: Literal["prefect", "local", "virtual"] = "prefect"
    retries: int = Field(0, ge=0, le=10)
    retry_delay: QuantityText = "0 s"
    timeout: QuantityText = "1 h"

    _v_q = field_validator("retry_delay", "timeout")(_check_quantity)

    @field_validator("retry_delay", "timeout")
    @classmethod
    def _is_time(cls, v: Any) -> Any:
        try:
            seconds = convert(v, "s")
        except UnitError as exc:
            raise ValueError(exc.message) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"expected a non-negative duration, got {v!r}")
        return v

    @property
    def timeout_s(self) -> float:
        return convert(self.timeout, "s")

    @property
    def retry_delay_s(self) -> float:
        return convert(self.retry_delay, "s")


class RecipeSpec(_Model):
    """The whole recipe as written in YAML."""

    name: str = Field(description="campaign name; used in file names")
    description: str = ""
    lab: str = Field(description="lab config: a path relative to the recipe, or a name in configs/")
    parameters: list[ParameterSpec] = Field(min_length=1)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    planner: PlannerSpec = Field(default_factory=PlannerSpec)
    budget: int = Field(ge=1, le=100_000, description="number of experiments to run")
    seed: int = Field(0, ge=0)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v) or ".." in v:
            raise ValueError(
                f"campaign name {v!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                "(it names the provenance file)"
            )
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> RecipeSpec:
        names = [p.name for p in self.parameters] + [o.name for o in self.objectives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names used more than once among parameters and objectives: {dupes}")
        return self


def _bound(value: Any, unit: str, which: str) -> float:
    try:
        return convert(value, unit)
    except UnitError as exc:
        raise ValueError(f"{which}: {exc.message}") from None


# -- the loaded recipe ------------------------------------------------------------------
class Recipe:
    """A validated recipe: the spec, its source, the resolved lab config and a content hash."""

    def __init__(self, spec: RecipeSpec, *, source: Path | None, text: str, lab_path: Path | None, lab_config: Any) -> None:
        self.spec = spec
        self.source = source
        self.text = text
        self.lab_path = lab_path
        self.lab_config = lab_config

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.__dict__:
            raise AttributeError(f"Recipe is frozen: cannot change {key!r}; use Recipe.replace(...)")
        super().__setattr__(key, value)

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, budget={self.budget}, planner={self.spec.planner.kind!r}, hash={self.hash})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def budget(self) -> int:
        return self.spec.budget

    @property
    def seed(self) -> int:
        return self.spec.seed

    @cached_property
    def space(self) -> Space:
        return Space([p.to_parameter() for p in self.spec.parameters])

    @cached_property
    def objectives(self) -> list[Objective]:
        return [o.to_objective() for o in self.spec.objectives]

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")

    @cached_property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the validated recipe and its lab config: equal hashes, same campaign."""
        lab = self.lab_config.model_dump(mode="json") if hasattr(self.lab_config, "model_dump") else self.lab_config
        blob = json.dumps({"recipe": self.to_dict(), "lab": lab}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> Recipe:
        """A new recipe with top-level fields changed (e.g. ``budget``, ``seed``), validated again."""
        data = {**self.to_dict(), **changes}
        spec = _validate_spec(data, str(self.source or "<recipe>"))
        return Recipe(spec, source=self.source, text=self.text, lab_path=self.lab_path, lab_config=self.lab_config)


def _problems_from(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and x in ("real", "integer", "categorical"))]
        path = ".".join(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}" if loc else "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        out.append(Problem(path, msg))
    return out


def _validate_spec(data: Any, source: str) -> RecipeSpec:
    if not isinstance(data, Mapping):
        raise RecipeError(f"recipe {source}: expected a mapping of fields at the top level, got {type(data).__name__}", source=source)
    try:
        return RecipeSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise RecipeError(f"recipe {source} is invalid", problems=_problems_from(exc), source=source) from None


def resolve_lab_path(ref: str, recipe_dir: Path) -> Path:
    """A lab reference: a path relative to the recipe, or a bare name looked up in configs/."""
    candidates = [recipe_dir / ref]
    if "/" not in ref and not ref.endswith((".yaml", ".yml")):
        for root in (recipe_dir, recipe_dir.parent, Path.cwd()):
            candidates.append(root / "configs" / f"{ref}.yaml")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(ref)


def load_recipe(path: str | Path, *, check_lab: bool = True) -> Recipe:
    """Load, validate and freeze a recipe. Raises ``RecipeError`` listing every problem found."""
    p = Path(path)
    data = read_yaml(p)
    text = p.read_text(encoding="utf-8-sig")
    spec = _validate_spec(data, str(p))
    problems: list[Problem] = []
    lab_path = lab_config = None
    try:
        lab_path = resolve_lab_path(spec.lab, p.parent)
    except FileNotFoundError:
        problems.append(Problem("lab", f"lab config {spec.lab!r} not found (looked beside the recipe and in configs/)"))
    if lab_path is not None:
        from labflow.lab import load_lab_config

        try:
            lab_config = load_lab_config(lab_path)
        except RecipeError as exc:
            problems.extend(Problem(f"lab({lab_path.name}).{q.path}", q.message) for q in exc.problems)
            if not exc.problems:
                problems.append(Problem("lab", exc.message))
    recipe = Recipe(spec, source=p.resolve(), text=text, lab_path=lab_path, lab_config=lab_config)
    try:
        recipe.space  # noqa: B018 - builds and checks the space
        recipe.objectives  # noqa: B018
    except (SpaceError, UnitError) as exc:
        problems.append(Problem("parameters", exc.message))
    if lab_config is not None and check_lab and not problems:
        problems.extend(check_against_lab(recipe, lab_config))
    if problems:
        raise RecipeError(f"recipe {p} is invalid", problems=problems, source=str(p))
    return recipe


def check_against_lab(recipe: Recipe, lab_config: Any) -> list[Problem]:
    """Check, before anything moves, that every parameter exists on the lab's stations with a
    convertible unit and bounds inside the device limits, and every objective is measured."""
    from labflow.lab import lab_limits

    problems: list[Problem] = []
    limits, outputs = lab_limits(lab_config)
    for i, p in enumerate(recipe.space.parameters):
        where = f"parameters.{i}"
        lim = limits.get(p.name)
        if lim is None:
            problems.append(Problem(f"{where}.name", f"the lab has no parameter {p.name!r}; it has {sorted(limits)}"))
            continue
        if isinstance(p, Categorical):
            if lim.choices is None:
                problems.append(Problem(f"{where}.type", f"{p.name} is continuous on the device, not categorical"))
            else:
                bad = [c for c in p.choices if c not in lim.choices]
                if bad:
                    problems.append(Problem(f"{where}.choices", f"{bad} not offered by the device; it offers {list(lim.choices)}"))
            continue
        if lim.choices is not None:
            problems.append(Problem(f"{where}.type", f"{p.name} is categorical on the device with choices {list(lim.choices)}"))
            continue
        try:
            lo = convert(p.low, lim.unit, from_unit=p.unit)
            hi = convert(p.high, lim.unit, from_unit=p.unit)
        except UnitError:
            problems.append(
                Problem(
                    f"{where}.low",
                    f"unit {p.unit or 'dimensionless'!r} has dimension {_dim(p.unit)}, but the device takes {p.name} in "
                    f"{lim.unit or 'dimensionless'!r} ({_dim(lim.unit)})",
                )
            )
            continue
        tol = 1e-9 * max(1.0, abs(lim.high - lim.low))
        if lo < lim.low - tol:
            problems.append(Problem(f"{where}.low", f"{p.low:g} {p.unit} is below the device limit {lim.low:g} {lim.unit}"))
        if hi > lim.high + tol:
            problems.append(Problem(f"{where}.high", f"{p.high:g} {p.unit} is above the device limit {lim.high:g} {lim.unit}"))
    for i, o in enumerate(recipe.objectives):
        out = outputs.get(o.name)
        if out is None:
            problems.append(Problem(f"objectives.{i}.name", f"the lab measures no {o.name!r}; it measures {sorted(outputs)}"))
            continue
        try:
            convert(1.0, out.unit, from_unit=o.unit)
        except UnitError:
            problems.append(Problem(f"objectives.{i}.unit", f"{o.unit!r} does not convert to the instrument's unit {out.unit!r}"))
    return problems


def _dim(unit: str) -> str:
    d = ureg.get_dimensionality(parse_unit(unit))
    return str(d) if d else "dimensionless"
