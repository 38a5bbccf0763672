"""Campaign recipes: YAML files validated by one schema into a frozen, hashed ``Recipe``.

A recipe says what to vary (parameters with units and bounds, and linear or sum-to-total
constraints on them), what to measure (objectives with directions and thresholds), how to
plan (planner settings, batch size), where to run (a lab config from ``configs/``; with
``fidelities``, which stations measure at which fidelity and at what cost), what is known
already (``prior_data``: a CSV file or an earlier campaign's provenance file), which failures
are the sample's fault (``failures``), and how long and how robustly (budget, seed, retries,
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
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from labflow.errors import Problem, RecipeError, SpaceError, UnitError
from labflow.objectives import Objective
from labflow.space import Categorical, Constraint, Integer, LinearConstraint, Real, Space, SumConstraint
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
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{what} {p}: not a text file (byte {exc.start} is not UTF-8)",
            hint=f"a {what} is a YAML text file; check the path (a provenance .h5 file goes to `labflow inspect`)",
            source=str(p),
        ) from None
    except OSError as exc:
        raise RecipeError(f"cannot read {what} {p}: {exc.strerror or exc}", source=str(p)) from None
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


def _check_positive_duration(v: Any, example: str) -> Any:
    """``v`` if it is a finite duration > 0 (pint text or seconds), else a ValueError naming ``example``."""
    _check_quantity(v)
    try:
        seconds = convert(v, "s")
    except UnitError as exc:
        raise ValueError(exc.message) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration such as '{example}', got {v!r}")
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


class PlanningPlaceSpec(_Model):
    """Where the planner computes: a Prefect work pool (another machine, e.g. a GPU box) whose
    workers run each planning step (``labflow.executors.remote_planning``, decision 0012).

    ``timeout``: how long one step may take, queueing and the worker's start included;
    ``fallback``: ``error`` (stop the campaign, resumable) or ``local`` (plan here, recorded)
    when a step gets no answer.
    """

    pool: str = Field(..., min_length=1, description="the Prefect work pool (type process) whose workers plan")
    deployment: Optional[str] = Field(None, min_length=1, description="the planning deployment's name (default: the pool's)")
    timeout: QuantityText = Field("10 min", description="how long one planning step may take")
    fallback: Literal["error", "local"] = Field("error", description="when a step gets no answer: stop (error) or plan here (local)")

    @field_validator("timeout")
    @classmethod
    def _is_positive_time(cls, v: Any) -> Any:
        return _check_positive_duration(v, "5 min")

    @property
    def timeout_s(self) -> float:
        return convert(self.timeout, "s")


class PlannerSpec(_Model):
    """Which planner proposes experiments, and its settings; ``where`` it computes (default: in the campaign's process)."""

    kind: str = "bayesian"  # a name from labflow.planners.planner_names() (built-ins and plug-ins)
    batch: int = Field(1, ge=1, description="candidates proposed per round (q)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the planner class")
    where: Optional[PlanningPlaceSpec] = Field(None, description="plan on a worker of a Prefect work pool instead of here")

    @field_validator("kind")
    @classmethod
    def _known_planner(cls, v: str) -> str:
        from labflow.planners import planner_names

        if v not in planner_names():
            raise ValueError(f"unknown planner {v!r}; expected one of {planner_names()}")
        return v


class ExecutionSpec(_Model):
    """How experiments run: the executor, retries and timeouts."""

    executor: str = "prefect"  # a name from labflow.executors.executor_names() (built-ins and plug-ins)
    retries: int = Field(0, ge=0, le=10)
    retry_delay: QuantityText = "0 s"
    timeout: QuantityText = "1 h"

    _v_q = field_validator("retry_delay", "timeout")(_check_quantity)

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        from labflow.executors import executor_names

        if v not in executor_names():
            raise ValueError(f"unknown executor {v!r}; expected one of {executor_names()}")
        return v

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


class LinearConstraintSpec(_Model):
    """``sum(coefficient * parameter) <op> rhs`` over real parameters, each in its declared unit.

    ``rhs`` is a number in the parameters' unit, or a quantity ("250 degC" is not allowed:
    offset units do not add; "2 h"), converted to it when the terms share a unit.
    """

    type: Literal["linear"] = "linear"
    terms: dict[str, float] = Field(min_length=1, description="parameter name -> coefficient")
    op: Literal["<=", ">=", "=="] = "<="
    rhs: QuantityText = 0

    _v_rhs = field_validator("rhs")(_check_quantity)


class SumConstraintSpec(_Model):
    """The named parameters add up to ``total``: a composition (fractions to 1, percentages to 100).

    ``total`` without a unit is in the parameters' unit; with one ("100 percent") it is converted.
    """

    type: Literal["sum"] = "sum"
    parameters: list[str] = Field(min_length=2, description="the parts of the composition")
    total: QuantityText = 1

    _v_total = field_validator("total")(_check_quantity)


class ExpressionConstraintSpec(_Model):
    """A nonlinear constraint written as a comparison of expressions over the parameters (declared units).

    Example: ``expression: "dopant_fraction * sqrt(temperature / 100) <= 1.2"``. Parsed with
    :mod:`ast` and checked against the parameter names and the allowed math functions
    (:data:`labflow.space.MATH_FUNCTIONS`); never evaluated as Python.
    """

    type: Literal["expression"] = "expression"
    expression: str = Field(min_length=1, max_length=1000, description="e.g. 'a * b <= 0.2'")
    name: str | None = None


class NChooseKSpec(_Model):
    """At most ``max_nonzero`` (at least ``min_nonzero``) of the named parameters differ from zero."""

    type: Literal["nchoosek"]
    parameters: list[str] = Field(min_length=2)
    max_nonzero: int = Field(ge=0)
    min_nonzero: int = Field(0, ge=0)


def _constraint_type(v: Any) -> str:
    if isinstance(v, Mapping):
        return v.get("type") or ("expression" if "expression" in v else "sum" if "parameters" in v else "linear")
    return getattr(v, "type", "linear")


ConstraintSpec = Annotated[
    Union[
        Annotated[LinearConstraintSpec, Tag("linear")],
        Annotated[SumConstraintSpec, Tag("sum")],
        Annotated[ExpressionConstraintSpec, Tag("expression")],
        Annotated[NChooseKSpec, Tag("nchoosek")],
    ],
    Discriminator(
        _constraint_type,
        custom_error_type="constraint_type",
        custom_error_message="unknown constraint type; expected 'linear' (terms, op, rhs), 'sum' (parameters, total), "
        "'expression' (expression) or 'nchoosek' (parameters, max_nonzero)",
    ),
]


class FidelitySpec(_Model):
    """One way to measure the objectives: where (stations or station sets of the lab) and at what cost."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    cost: QuantityText = Field(description="cost of one experiment: a number or a quantity ('10 min'); the same unit for all")
    stations: list[str] | None = Field(None, description="stations or station sets that measure at this fidelity (default: all)")

    _v_cost = field_validator("cost")(_check_quantity)


class PriorDataSpec(_Model):
    """Measurements made before the campaign: a CSV file, or an earlier campaign's provenance file (.h5)."""

    path: str = Field(description="relative to the recipe")
    outside: Literal["error", "skip"] = Field("skip", description="rows outside the space: skip them, or refuse the file")


class FailuresSpec(_Model):
    """Which failures are the sample's fault (it did not form, it cracked): the planner learns to avoid them.

    A device may say so itself (an exception with ``sample_fault = True``, e.g.
    :class:`labflow.sim.devices.SampleFault`); ``sample_faults`` adds regular expressions
    matched against the failure reason. Every other failure is the instrument's.
    """

    sample_faults: list[str] = Field(default_factory=list, description="regular expressions matched against failure reasons")

    @field_validator("sample_faults")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return v


APPROVAL_MODES = ("every", "never", "outside_seen_region")


class ApprovalSpec(_Model):
    """Which suggestions a person must approve before they run (people in the loop).

    ``mode``: ``every`` suggestion; ``{first: N}``, the planner's first N suggestions;
    ``outside_seen_region``, a suggestion with a parameter outside the range measured so far (any
    suggestion before the first completed experiment); ``never`` (the default without this section).
    ``timeout``: how long a suggestion waits (a duration, "2 h"); ``on_timeout``: ``skip`` it (the
    planner never proposes it again) or ``wait`` on (the expiry is recorded once). Operator
    experiments (``labflow add``) are approved by whoever adds them.
    """

    mode: Union[str, dict[str, int]] = Field("every", description="every | never | outside_seen_region | {first: N}")
    timeout: QuantityText = Field("24 h", description="how long a suggestion waits for a decision")
    on_timeout: Literal["skip", "wait"] = Field("wait", description="skip the suggestion, or keep waiting")

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in APPROVAL_MODES:
                raise ValueError(f"unknown approval mode {v!r}; expected one of {list(APPROVAL_MODES)} or {{first: N}}")
            return v
        if set(v) != {"first"}:
            raise ValueError(f"an approval mode given as a mapping must be {{first: N}}, got keys {sorted(v)}")
        if int(v["first"]) < 1:
            raise ValueError(f"approval mode first: N needs N >= 1, got {v['first']}")
        return v

    @field_validator("timeout")
    @classmethod
    def _is_duration(cls, v: Any) -> Any:
        return _check_positive_duration(v, "2 h")

    @property
    def timeout_s(self) -> float:
        return convert(self.timeout, "s")

    @property
    def first(self) -> int | None:
        """N of ``{first: N}``, else None."""
        return int(self.mode["first"]) if isinstance(self.mode, dict) else None


class BudgetSpec(_Model):
    """How much a campaign may spend: a number of experiments, a total cost (the fidelities' unit), or both.

    ``budget: 40`` is ``budget: {experiments: 40}``. With ``cost``, no experiment starts that
    would take the cost of the finished and running experiments past it; the campaign ends
    when nothing more fits. A recipe with only ``cost`` may run up to 100,000 experiments.
    """

    experiments: int | None = Field(None, ge=1, le=100_000, description="number of experiments to run")
    cost: QuantityText | None = Field(None, description="total cost, in the unit of the fidelities' costs")

    _v_cost = field_validator("cost")(lambda v: v if v is None else _check_quantity(v))

    @model_validator(mode="after")
    def _something(self) -> BudgetSpec:
        if self.experiments is None and self.cost is None:
            raise ValueError("give experiments, cost, or both")
        return self


class RecipeSpec(_Model):
    """The whole recipe as written in YAML."""

    name: str = Field(description="campaign name; used in file names")
    description: str = ""
    lab: str = Field(description="lab config: a path relative to the recipe, or a name looked up beside the recipe, "
                     "in the project's configs/, in LABFLOW_LABS and among the packaged labs (`labflow labs` lists them)")
    parameters: list[ParameterSpec] = Field(min_length=1)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    planner: PlannerSpec = Field(default_factory=PlannerSpec)
    budget: Annotated[
        Union[Annotated[Annotated[int, Field(ge=1, le=100_000)], Tag("count")], Annotated[BudgetSpec, Tag("budget_spec")]],
        Discriminator(lambda v: "budget_spec" if isinstance(v, (Mapping, BudgetSpec)) else "count"),
    ] = Field(description="number of experiments to run, or {experiments: N, cost: C} (cost in the fidelities' unit)")
    seed: int = Field(0, ge=0)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    constraints: list[ConstraintSpec] = Field(default_factory=list, description="linear, sum-to-total, expression (nonlinear) and nchoosek constraints")
    fidelities: list[FidelitySpec] = Field(default_factory=list, description="fidelities: stations and cost of each (two or more: planner kind multifidelity)")
    prior_data: list[Union[str, PriorDataSpec]] = Field(
        default_factory=list, description="earlier measurements to start from: CSV files or provenance files (.h5), relative to the recipe"
    )
    failures: FailuresSpec = Field(default_factory=FailuresSpec)
    approval: Optional[ApprovalSpec] = Field(None, description="which suggestions a person approves before they run")

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

    @property
    def fidelity_parameter(self) -> str | None:
        """The name of the column that says which fidelity to run (two or more fidelities), else None."""
        if len(self.fidelities) < 2:
            return None
        return str(self.planner.options.get("fidelity_parameter", "fidelity"))


def _has_unit(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    m = _NUMBER_PREFIX.match(value)
    return bool(m and m.group(1).strip()) or not m


def _is_offset(unit: str) -> bool:
    try:
        return convert(0.0, "K" if ureg.get_dimensionality(parse_unit(unit)) == ureg.get_dimensionality("K") else unit, from_unit=unit) != 0.0
    except UnitError:
        return False


def build_constraints(spec: RecipeSpec) -> tuple[list[Constraint], list[Problem]]:
    """The recipe's constraints as :class:`~labflow.space.LinearConstraint` / :class:`~labflow.space.SumConstraint`
    on the parameters' declared units, and every problem found (``constraints.<i>...: message``).

    A right-hand side (or total) without a unit is in the parameters' declared units, as written.
    With a unit, each term is converted to the first term's unit (multiplicative units only: an
    offset unit such as degC cannot be added) and the right-hand side with it.
    """
    params = {p.name: p for p in spec.parameters}
    out: list[Constraint] = []
    problems: list[Problem] = []
    for i, c in enumerate(spec.constraints):
        where = f"constraints.{i}"
        if isinstance(c, (ExpressionConstraintSpec, NChooseKSpec)):
            con_nl, problem = _nonlinear_constraint(c, params, where)
            if problem is not None:
                problems.append(problem)
            else:
                out.append(con_nl)  # type: ignore[arg-type]
            continue
        linear = isinstance(c, LinearConstraintSpec)
        names = list(c.terms) if linear else list(c.parameters)
        field = "terms" if linear else "parameters"
        bad = False
        if not linear and len(set(names)) != len(names):
            problems.append(Problem(f"{where}.parameters", f"a parameter is named twice: {names}"))
            bad = True
        for n in names:
            p = params.get(n)
            if p is None:
                problems.append(Problem(f"{where}.{field}", f"no parameter {n!r}; the parameters are {list(params)}"))
                bad = True
            elif not isinstance(p, RealSpec):
                problems.append(Problem(f"{where}.{field}", f"{n} is {p.type}; constraints apply to real parameters"))
                bad = True
            elif p.log:
                problems.append(Problem(f"{where}.{field}", f"{n} is on a log scale; constraints apply to linear-scale parameters"))
                bad = True
        if linear and all(v == 0 for v in c.terms.values()):
            problems.append(Problem(f"{where}.terms", "every coefficient is zero"))
            bad = True
        if bad:
            continue
        value = c.rhs if linear else c.total
        vfield = "rhs" if linear else "total"
        coef = {n: float(c.terms[n]) if linear else 1.0 for n in names}
        units = {n: params[n].resolved_unit() for n in names}
        if _has_unit(value):
            target = units[names[0]]
            offset = [n for n in names if _is_offset(units[n])]
            if offset:
                problems.append(Problem(f"{where}.{vfield}", f"{offset} are in an offset unit ({units[offset[0]]}), which cannot be added; "
                                        f"give {vfield} as a plain number in their unit, or the parameters in kelvin"))
                continue
            try:
                rhs = convert(value, target)
                factors = {n: convert(1.0, target, from_unit=units[n]) for n in names}
            except UnitError as exc:
                problems.append(Problem(f"{where}.{vfield}", exc.message))
                continue
            coef = {n: coef[n] * factors[n] for n in names}
        else:
            rhs = float(convert(value, ""))
        op = c.op if linear else "=="
        try:
            if not linear and all(abs(v - 1.0) < 1e-12 for v in coef.values()):
                con: Constraint = SumConstraint(tuple(names), rhs)
            else:
                con = LinearConstraint(coef, op, rhs)
        except SpaceError as exc:
            problems.append(Problem(where, exc.message))
            continue
        # satisfiable within the bounds on its own? (jointly: checked when the space is built)
        lo = hi = 0.0
        for n, a in coef.items():
            p = params[n].to_parameter()
            lo += min(a * p.low, a * p.high)
            hi += max(a * p.low, a * p.high)
        tol = 1e-9 * max(1.0, abs(hi - lo), abs(rhs))
        ok = {"<=": lo <= rhs + tol, ">=": hi >= rhs - tol, "==": lo - tol <= rhs <= hi + tol}[op]
        if not ok:
            problems.append(Problem(f"{where}.{vfield}", f"cannot be met within the parameters' bounds: {con.describe()}, "
                                    f"but the left-hand side ranges over [{lo:g}, {hi:g}]"))
            continue
        out.append(con)
    return out, problems


def _nonlinear_constraint(c: Any, params: Mapping[str, Any], where: str) -> tuple[Any, Problem | None]:
    """An expression or NChooseK constraint of the recipe, or the problem with it (naming the field and value)."""
    from labflow.space import NChooseK, NonlinearConstraint, parse_expression

    if isinstance(c, ExpressionConstraintSpec):
        numeric = [n for n, p in params.items() if not isinstance(p, CategoricalSpec)]
        try:
            parse_expression(c.expression, numeric)
            return NonlinearConstraint(c.expression, name=c.name), None
        except SpaceError as exc:
            return None, Problem(f"{where}.expression", f"{exc.message}" + (f"; {exc.hint}" if exc.hint else ""))
    for n in c.parameters:
        p = params.get(n)
        if p is None:
            return None, Problem(f"{where}.parameters", f"no parameter {n!r}; the parameters are {list(params)}")
        if not isinstance(p, RealSpec) or p.log or _bound(p.low, p.resolved_unit(), "low") != 0:
            return None, Problem(f"{where}.parameters", f"{n} must be a real, linear-scale parameter with low 0 (zero means 'not used')")
    try:
        return NChooseK(tuple(c.parameters), c.max_nonzero, c.min_nonzero), None
    except SpaceError as exc:
        return None, Problem(where, exc.message)


def _semantic_problems(spec: RecipeSpec) -> list[Problem]:
    """What the schema cannot see: constraints that name the wrong parameters or cannot be met,
    fidelities that do not fit the planner."""
    _, problems = build_constraints(spec)
    if isinstance(spec.budget, BudgetSpec) and spec.budget.cost is not None:
        if not spec.fidelities:
            problems.append(Problem("budget.cost", "a cost budget needs the fidelities' costs (fidelities: [{name, cost, stations}])"))
        else:
            unit = next((_cost_unit_text(f.cost) for f in spec.fidelities if _has_unit(f.cost)), "")
            try:
                v = convert(spec.budget.cost, unit) if _has_unit(spec.budget.cost) else float(convert(spec.budget.cost, ""))
                if not (math.isfinite(v) and v > 0):
                    problems.append(Problem("budget.cost", f"a cost budget must be a positive number, got {spec.budget.cost!r}"))
            except UnitError as exc:
                problems.append(Problem("budget.cost", f"{exc.message} (the fidelities' costs are in {unit or 'plain numbers'})"))
    names = [p.name for p in spec.parameters] + [o.name for o in spec.objectives]
    fids = spec.fidelities
    if fids:
        fnames = [f.name for f in fids]
        dupes = sorted({n for n in fnames if fnames.count(n) > 1})
        if dupes:
            problems.append(Problem("fidelities", f"fidelity names used more than once: {dupes}"))
        problems.extend(_cost_problems(fids))
        if len(fids) >= 2:
            if spec.planner.kind != "multifidelity":
                problems.append(Problem("planner.kind", f"{len(fids)} fidelities need kind 'multifidelity' (got {spec.planner.kind!r}); "
                                        "or keep one fidelity"))
            for i, f in enumerate(fids):
                if not f.stations:
                    problems.append(Problem(f"fidelities.{i}.stations", "required with several fidelities: which stations measure at this fidelity"))
            if "fidelities" in spec.planner.options:
                problems.append(Problem("planner.options.fidelities", "give the fidelities at the top level of the recipe (fidelities:), not here"))
            fp = spec.fidelity_parameter
            if fp in names:
                problems.append(Problem("planner.options.fidelity_parameter", f"{fp!r} is already a parameter or objective; "
                                        "name the fidelity column otherwise (planner.options.fidelity_parameter)"))
            target = spec.planner.options.get("target")
            if target is not None and target not in fnames:
                problems.append(Problem("planner.options.target", f"{target!r} is not one of the fidelities {fnames}"))
    elif spec.planner.kind == "multifidelity":
        problems.append(Problem("fidelities", "the multifidelity planner needs two or more fidelities, each with its stations and cost"))
    return problems


def _cost_problems(fids: list[FidelitySpec]) -> list[Problem]:
    unit = next((_cost_unit_text(f.cost) for f in fids if _has_unit(f.cost)), "")
    problems = []
    for i, f in enumerate(fids):
        try:
            v = convert(f.cost, unit) if _has_unit(f.cost) else float(convert(f.cost, ""))
        except UnitError as exc:
            problems.append(Problem(f"fidelities.{i}.cost", f"{exc.message} (every cost must be in one unit: {unit or 'plain numbers'})"))
            continue
        if not (math.isfinite(v) and v > 0):
            problems.append(Problem(f"fidelities.{i}.cost", f"a cost must be a positive number, got {f.cost!r}"))
    return problems


def _cost_unit_text(value: Any) -> str:
    m = _NUMBER_PREFIX.match(value) if isinstance(value, str) else None
    return m.group(1).strip() if m else ""


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
        """The number of experiments to run (100,000 when the budget is a cost only)."""
        b = self.spec.budget
        if isinstance(b, int):
            return b
        return b.experiments if b.experiments is not None else 100_000

    @property
    def cost_budget(self) -> float | None:
        """The total cost the campaign may spend, in :attr:`cost_unit` (None: no cost budget)."""
        b = self.spec.budget
        if isinstance(b, int) or b.cost is None:
            return None
        return convert(b.cost, self.cost_unit) if _has_unit(b.cost) else float(convert(b.cost, ""))

    @property
    def seed(self) -> int:
        return self.spec.seed

    @cached_property
    def space(self) -> Space:
        """The parameters to vary, with the recipe's constraints (without the fidelity column)."""
        constraints, problems = build_constraints(self.spec)
        if problems:
            raise RecipeError("invalid constraints", problems=problems)
        return Space([p.to_parameter() for p in self.spec.parameters], constraints)

    @property
    def fidelity_parameter(self) -> str | None:
        """The column that says which fidelity to run (two or more fidelities), else None."""
        return self.spec.fidelity_parameter

    @property
    def cost_unit(self) -> str:
        """The unit of the fidelities' costs ("" for plain numbers)."""
        return next((_cost_unit_text(f.cost) for f in self.spec.fidelities if _has_unit(f.cost)), "")

    def fidelity_costs(self) -> dict[str, float]:
        """Fidelity name -> cost of one experiment, in :attr:`cost_unit` (empty without fidelities)."""
        unit = self.cost_unit
        return {f.name: (convert(f.cost, unit) if _has_unit(f.cost) else float(convert(f.cost, ""))) for f in self.spec.fidelities}

    def fidelity_stations(self) -> dict[str, list[str]]:
        """Fidelity name -> the stations or station sets named for it (empty list: every station)."""
        return {f.name: list(f.stations or []) for f in self.spec.fidelities}

    def planner_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`labflow.planners.make_planner`: the recipe's options, plus the
        fidelities for the multi-fidelity planner."""
        options = dict(self.spec.planner.options)
        if self.fidelity_parameter is not None:
            options["fidelities"] = [{"name": n, "cost": c} for n, c in self.fidelity_costs().items()]
        return options

    def prior_paths(self) -> list[tuple[Path, str]]:
        """``(path, outside)`` of each prior-data file, resolved relative to the recipe."""
        base = self.source.parent if self.source is not None else Path.cwd()
        items = [PriorDataSpec(path=d) if isinstance(d, str) else d for d in self.spec.prior_data]
        return [((base / d.path).resolve(), d.outside) for d in items]

    @property
    def sample_fault_patterns(self) -> list[str]:
        return list(self.spec.failures.sample_faults)

    @cached_property
    def objectives(self) -> list[Objective]:
        return [o.to_objective() for o in self.spec.objectives]

    def to_dict(self) -> dict[str, Any]:
        data = self.spec.model_dump(mode="json")
        if data.get("approval") is None:  # recipes without people in the loop keep the hash they always had
            data.pop("approval", None)
        if data.get("planner", {}).get("where") is None:  # so do recipes that plan here
            data["planner"].pop("where", None)
        return data

    @cached_property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the validated recipe and its lab config: equal hashes, same campaign."""
        lab = self.lab_config.model_dump(mode="json") if hasattr(self.lab_config, "model_dump") else self.lab_config
        blob = json.dumps({"recipe": self.to_dict(), "lab": lab}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> Recipe:
        """A new recipe with top-level fields changed (e.g. ``budget``, ``seed``), validated again."""
        data = {**self.to_dict(), **changes}
        current = self.spec.budget
        if isinstance(changes.get("budget"), int) and not isinstance(current, int) and current.cost is not None:
            data["budget"] = {"experiments": changes["budget"], "cost": current.cost}  # --budget N keeps the cost budget
        spec = _validate_spec(data, str(self.source or "<recipe>"))
        return Recipe(spec, source=self.source, text=self.text, lab_path=self.lab_path, lab_config=self.lab_config)


def _problems_from(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and x in ("real", "integer", "categorical", "linear", "sum", "expression", "nchoosek", "count", "budget_spec"))]
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
        spec = RecipeSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise RecipeError(f"recipe {source} is invalid", problems=_problems_from(exc), source=source) from None
    problems = _semantic_problems(spec)
    if problems:
        raise RecipeError(f"recipe {source} is invalid", problems=problems, source=source)
    return spec


def resolve_lab_path(ref: str, recipe_dir: Path) -> Path:
    """The lab config a recipe's ``lab:`` names: a path relative to the recipe's real folder, or a
    bare name looked up in order beside the recipe, in the project's ``configs/``, in
    ``LABFLOW_LABS`` and among the packaged labs (:func:`labflow.lab.find_lab_config`).
    Raises :class:`labflow.lab.LabNotFoundError` listing every place searched."""
    from labflow.lab import find_lab_config

    return find_lab_config(ref, recipe_dir)


def load_recipe(path: str | Path, *, check_lab: bool = True) -> Recipe:
    """Load, validate and freeze a recipe. Raises ``RecipeError`` listing every problem found."""
    p = Path(path)
    data = read_yaml(p)
    text = p.read_text(encoding="utf-8-sig")
    spec = _validate_spec(data, str(p))
    problems: list[Problem] = []
    lab_path = lab_config = None
    hint = None
    try:
        lab_path = resolve_lab_path(spec.lab, p.resolve().parent)
    except RecipeError as exc:  # LabNotFoundError: the message lists every place searched
        problems.append(Problem("lab", exc.message))
        hint = exc.hint
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
        where = "constraints" if spec.constraints and "feasible" in exc.message else "parameters"
        problems.append(Problem(where, exc.message))
    if not problems:
        problems.extend(check_prior_data(recipe))
    if lab_config is not None and check_lab and not problems:
        problems.extend(check_against_lab(recipe, lab_config))
    if problems:
        raise RecipeError(f"recipe {p} is invalid", problems=problems, source=str(p), hint=hint)
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
    problems.extend(_check_fidelity_stations(recipe, lab_config))
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


def _check_fidelity_stations(recipe: Recipe, lab_config: Any) -> list[Problem]:
    """Every station a fidelity names exists, and no station serves two fidelities."""
    if not recipe.spec.fidelities or not any(f.stations for f in recipe.spec.fidelities):
        return []
    from labflow.lab import lab_station_groups

    try:
        groups = lab_station_groups(lab_config)
    except Exception as exc:  # noqa: BLE001 - a lab that cannot be built here cannot be checked
        return [Problem("fidelities", f"cannot list the lab's stations: {exc}")]
    problems, owner = [], {}
    for i, f in enumerate(recipe.spec.fidelities):
        for name in f.stations or []:
            if name not in groups:
                problems.append(Problem(f"fidelities.{i}.stations", f"the lab has no station or station set {name!r}; it has {sorted(groups)}"))
                continue
            for st in groups[name]:
                if owner.get(st, f.name) != f.name:
                    problems.append(Problem(f"fidelities.{i}.stations", f"station {st} already measures at fidelity {owner[st]!r}"))
                owner[st] = f.name
    return problems


def load_prior_frame(path: Path, recipe: Recipe) -> Any:
    """The observations in a prior-data file as a DataFrame the planner's ``observe_prior`` reads.

    A CSV file is read as it is (parameter and objective columns; optional ``status``,
    ``reason``, ``sample_fault``, ``uid``). A provenance file (.h5) gives its experiments, with
    their status, reason and sample-fault flag. With several fidelities, rows without a fidelity
    column are taken as measured at the target fidelity (the most expensive unless
    ``planner.options.target`` says otherwise).
    """
    import pandas as pd

    if path.suffix.lower() in (".h5", ".hdf5"):
        from labflow.store.provenance import read_campaign

        rec = read_campaign(path)
        frame = rec.experiments.copy()
        keep = [c for c in frame.columns if c in set(recipe.space.names) | {o.name for o in recipe.objectives}
                | {"status", "reason", "sample_fault", "uid", recipe.fidelity_parameter}]
        frame = frame[keep]
        if "sample_fault" in frame.columns:
            frame["sample_fault"] = frame["sample_fault"].astype(int) > 0
    else:
        frame = pd.read_csv(path)
    fp = recipe.fidelity_parameter
    if fp is not None and fp not in frame.columns:
        costs = recipe.fidelity_costs()
        frame[fp] = recipe.spec.planner.options.get("target") or max(costs, key=costs.get)
    return frame


def check_prior_data(recipe: Recipe) -> list[Problem]:
    """Each prior-data file exists and reads as observations of this recipe's space and objectives."""
    problems: list[Problem] = []
    if not recipe.spec.prior_data:
        return problems
    from labflow.errors import LabflowError
    from labflow.planners.baselines import RandomPlanner

    space = recipe.space
    if recipe.fidelity_parameter is not None:
        space = Space([*space.parameters, Categorical(recipe.fidelity_parameter, tuple(recipe.fidelity_costs()))], space.constraints)
    for i, (path, outside) in enumerate(recipe.prior_paths()):
        where = f"prior_data.{i}.path"
        if not path.is_file():
            problems.append(Problem(where, f"{path} does not exist"))
            continue
        if path.suffix.lower() not in (".csv", ".h5", ".hdf5"):
            problems.append(Problem(where, f"expected a .csv file or a provenance file (.h5), got {path.name!r}"))
            continue
        try:
            frame = load_prior_frame(path, recipe)
            n = RandomPlanner(space, recipe.objectives).observe_prior(frame, outside=outside)
        except LabflowError as exc:
            problems.append(Problem(where, f"{path.name}: {exc.message}"))
            continue
        except Exception as exc:  # noqa: BLE001 - unreadable file: say so, do not crash validation
            problems.append(Problem(where, f"{path.name}: cannot read it: {type(exc).__name__}: {exc}"))
            continue
        if n == 0:
            problems.append(Problem(where, f"{path.name}: no row lies in the recipe's space"))
    return problems


def _dim(unit: str) -> str:
    d = ureg.get_dimensionality(parse_unit(unit))
    return str(d) if d else "dimensionless"
