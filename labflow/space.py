"""Search spaces: the parameters a campaign may vary, with units and bounds.

A :class:`Space` maps points between three forms:

* **values**: a dict or DataFrame row of plain numbers in each parameter's declared
  unit (categoricals as their string labels) -- what users and recipes speak;
* **quantities**: the same as pint Quantities -- what devices receive;
* **the unit cube**: a float array in ``[0, 1]^D`` -- what planners model.
  Real parameters take one column (log-scaled when ``log=True``), integers one column
  (rounded on decoding), categoricals one column per choice (one-hot, argmax on decoding).

A space may carry linear constraints on its (linear-scale) real parameters, written in the
parameters' declared units: :class:`LinearConstraint` (``a . x <= b``, ``>=`` or ``==``) and
:class:`SumConstraint` (a composition whose parts add up to a total: fractions to 1,
percentages to 100). A point satisfies a constraint when its violation is at most
``CONSTRAINT_TOL`` (1e-6) times the constraint's scale, ``sum_i |a_i| (high_i - low_i)``.
Sampling, the centre and :meth:`Space.repair` respect them; planners receive them in the
unit cube from :meth:`Space.unit_constraints`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
import pandas as pd
import pint

from labflow.errors import SpaceError, UnitError
from labflow.units import Quantity, convert, parse_unit


def _number(value: Any, unit: str, what: str) -> float:
    try:
        return convert(value, unit)
    except UnitError as exc:
        raise SpaceError(f"{what}: {exc.message}", hint=exc.hint) from exc


@dataclass(frozen=True)
class Real:
    """A continuous parameter in ``[low, high]`` (in ``unit``), optionally on a log scale."""

    name: str
    low: float
    high: float
    unit: str = ""
    log: bool = False

    kind = "real"

    def __post_init__(self) -> None:
        _check_name(self.name)
        parse_unit(self.unit)  # raises UnitError for an unknown unit
        object.__setattr__(self, "low", _number(self.low, self.unit, f"{self.name}.low"))
        object.__setattr__(self, "high", _number(self.high, self.unit, f"{self.name}.high"))
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise SpaceError(f"{self.name}: bounds must be finite, got [{self.low}, {self.high}]")
        if not self.low < self.high:
            raise SpaceError(f"{self.name}: low ({self.low}) must be below high ({self.high})", hint="swap the bounds")
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.name}: a log-scale parameter needs low > 0, got {self.low}")

    @property
    def width(self) -> int:
        return 1

    def to_unit(self, v: float) -> list[float]:
        if self.log:
            return [(math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))]
        return [(v - self.low) / (self.high - self.low)]

    def from_unit(self, x: Sequence[float]) -> float:
        u = min(max(float(x[0]), 0.0), 1.0)
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def coerce(self, value: Any) -> float:
        return _number(value, self.unit, self.name)

    def contains(self, v: Any, tol: float = 1e-9) -> bool:
        span = self.high - self.low
        return isinstance(v, (int, float)) and math.isfinite(v) and self.low - tol * span <= v <= self.high + tol * span

    def describe(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        return f"{self.name} in [{self.low:g}, {self.high:g}]{u}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Integer:
    """An integer parameter in ``[low, high]`` inclusive (a count, a number of layers)."""

    name: str
    low: int
    high: int
    unit: str = ""

    kind = "integer"

    def __post_init__(self) -> None:
        _check_name(self.name)
        parse_unit(self.unit)
        lo = _number(self.low, self.unit, f"{self.name}.low")
        hi = _number(self.high, self.unit, f"{self.name}.high")
        if lo != int(lo) or hi != int(hi):
            raise SpaceError(f"{self.name}: integer bounds must be whole numbers, got [{lo}, {hi}]")
        if not lo < hi:
            raise SpaceError(f"{self.name}: low ({lo:g}) must be below high ({hi:g})", hint="swap the bounds")
        object.__setattr__(self, "low", int(lo))
        object.__setattr__(self, "high", int(hi))

    @property
    def width(self) -> int:
        return 1

    def to_unit(self, v: float) -> list[float]:
        return [(v - self.low) / (self.high - self.low)]

    def from_unit(self, x: Sequence[float]) -> int:
        u = min(max(float(x[0]), 0.0), 1.0)
        return int(round(self.low + u * (self.high - self.low)))

    def coerce(self, value: Any) -> int:
        v = _number(value, self.unit, self.name)
        if v != round(v):
            raise SpaceError(f"{self.name}: expected a whole number, got {v}")
        return int(round(v))

    def contains(self, v: Any, tol: float = 0.0) -> bool:
        return isinstance(v, (int, float, np.integer)) and float(v) == round(float(v)) and self.low <= v <= self.high

    def describe(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        return f"{self.name} in {{{self.low}..{self.high}}}{u}"


@dataclass(frozen=True)
class Categorical:
    """A parameter that takes one of a few labels (a solvent, a substrate)."""

    name: str
    choices: tuple[str, ...] = field(default_factory=tuple)

    kind = "categorical"
    unit = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        choices = tuple(str(c) for c in self.choices)
        if len(choices) < 2:
            raise SpaceError(f"{self.name}: a categorical parameter needs at least two choices, got {list(choices)}")
        if len(set(choices)) != len(choices):
            raise SpaceError(f"{self.name}: choices must be unique, got {list(choices)}")
        object.__setattr__(self, "choices", choices)

    @property
    def width(self) -> int:
        return len(self.choices)

    def to_unit(self, v: str) -> list[float]:
        return [1.0 if c == v else 0.0 for c in self.choices]

    def from_unit(self, x: Sequence[float]) -> str:
        return self.choices[int(np.argmax(np.asarray(x, dtype=float)))]

    def coerce(self, value: Any) -> str:
        if str(value) not in self.choices:
            raise SpaceError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
        return str(value)

    def contains(self, v: Any, tol: float = 0.0) -> bool:
        return isinstance(v, str) and v in self.choices

    def describe(self) -> str:
        return f"{self.name} in {{{', '.join(self.choices)}}}"


Parameter = Union[Real, Integer, Categorical]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(
            f"parameter name {name!r} is not a valid identifier",
            hint="use letters, digits and underscores, starting with a letter (e.g. 'anneal_temperature')",
        )

CONSTRAINT_TOL = 1e-6
"""A point satisfies a constraint when its violation is at most this times the constraint's scale."""

Op = Literal["<=", ">=", "=="]


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(coefficient * value) <op> rhs`` over real parameters, values in their declared units.

    Example: at most 0.6 of the budget in the two precursors together::

        LinearConstraint({"precursor_a": 1, "precursor_b": 1}, "<=", 0.6)
    """

    terms: tuple[tuple[str, float], ...]
    op: Op = "<="
    rhs: float = 0.0

    def __init__(self, terms: Mapping[str, float] | Sequence[tuple[str, float]], op: Op = "<=", rhs: float = 0.0) -> None:
        pairs = tuple((str(k), float(v)) for k, v in (terms.items() if isinstance(terms, Mapping) else terms))
        if not pairs:
            raise SpaceError("a linear constraint needs at least one term")
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise SpaceError(f"a linear constraint names a parameter twice: {names}")
        if op not in ("<=", ">=", "=="):
            raise SpaceError(f"constraint operator must be '<=', '>=' or '==', got {op!r}")
        if not all(math.isfinite(v) for _, v in pairs) or not math.isfinite(float(rhs)):
            raise SpaceError(f"constraint coefficients and right-hand side must be finite: {pairs} {op} {rhs}")
        if all(v == 0 for _, v in pairs):
            raise SpaceError("a linear constraint needs a non-zero coefficient")
        object.__setattr__(self, "terms", pairs)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "rhs", float(rhs))

    @property
    def names(self) -> list[str]:
        return [k for k, _ in self.terms]

    def as_linear(self) -> LinearConstraint:
        return self

    def lhs(self, values: Mapping[str, Any]) -> float:
        """The left-hand side at a point (plain values in declared units)."""
        return float(sum(c * float(values[k]) for k, c in self.terms))

    def describe(self) -> str:
        lhs = " + ".join(f"{c:g}*{k}" if c != 1 else k for k, c in self.terms).replace("+ -", "- ")
        return f"{lhs} {self.op} {self.rhs:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "linear", "terms": dict(self.terms), "op": self.op, "rhs": self.rhs}


@dataclass(frozen=True)
class SumConstraint:
    """The parts of a composition add up to ``total`` (fractions to 1, percentages to 100): mixture design."""

    names: tuple[str, ...]
    total: float = 1.0

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if len(names) < 2:
            raise SpaceError(f"a sum constraint needs at least two parameters, got {list(names)}")
        if len(set(names)) != len(names):
            raise SpaceError(f"a sum constraint names a parameter twice: {list(names)}")
        if not math.isfinite(float(self.total)):
            raise SpaceError(f"a sum constraint's total must be finite, got {self.total}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "total", float(self.total))

    @property
    def op(self) -> Op:
        return "=="

    def as_linear(self) -> LinearConstraint:
        return LinearConstraint({n: 1.0 for n in self.names}, "==", self.total)

    def lhs(self, values: Mapping[str, Any]) -> float:
        return float(sum(float(values[n]) for n in self.names))

    def describe(self) -> str:
        return f"{' + '.join(self.names)} == {self.total:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "sum", "names": list(self.names), "total": self.total}


Constraint = Union[LinearConstraint, SumConstraint]


def constraint_from_dict(d: Mapping[str, Any]) -> Constraint:
    """Inverse of ``constraint.to_dict()``."""
    if d.get("type") == "sum":
        return SumConstraint(tuple(d["names"]), float(d.get("total", 1.0)))
    return LinearConstraint(d["terms"], d.get("op", "<="), float(d.get("rhs", 0.0)))


# -- constraints that are not linear: expressions, Python functions, NChooseK -------------------
MATH_FUNCTIONS: dict[str, Any] = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log10": np.log10, "log2": np.log2,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "arctan": np.arctan,
    "abs": np.abs, "min": np.minimum, "max": np.maximum, "pow": np.power,
}
"""The functions a constraint expression may call (element-wise, numpy)."""
MATH_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
"""The names a constraint expression may use besides the parameters."""

_COMPARISONS = {"Lt": "<=", "LtE": "<=", "Gt": ">=", "GtE": ">="}
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mult": np.multiply, "Div": np.divide, "Pow": np.power}


def parse_expression(text: str, names: Iterable[str] | None = None) -> tuple[Any, Any, str, list[str]]:
    """Parse ``"<expression> <= <expression>"`` (or ``>=``, ``<``, ``>``) with :mod:`ast`, never ``eval``.

    Allowed: numbers, the parameter ``names``, the constants of :data:`MATH_CONSTANTS`, ``+ - * / **``,
    unary minus, and calls of :data:`MATH_FUNCTIONS` with positional arguments. Anything else
    (attributes, subscripts, lambdas, other names or functions, strings) is refused with a
    :class:`~labflow.errors.SpaceError` that names it. Returns (left tree, right tree, operator,
    parameter names used).
    """
    import ast

    if not isinstance(text, str):
        raise SpaceError(f"a constraint expression must be text, got {type(text).__name__}: {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise SpaceError(f"constraint {text!r} is not a valid expression: {exc.msg}",
                         hint="write e.g. 'zn * sn <= 0.2' or 'sqrt(a**2 + b**2) <= 1'") from None
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1 or type(tree.ops[0]).__name__ not in _COMPARISONS:
        raise SpaceError(f"constraint {text!r} must be one comparison with <=, >=, < or >", hint="e.g. 'zn * sn <= 0.2'")
    allowed = None if names is None else set(names)
    used: list[str] = []

    def check(node: Any) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise SpaceError(f"constraint {text!r}: {node.value!r} is not a number")
        elif isinstance(node, ast.Name):
            if node.id in MATH_CONSTANTS:
                return
            if allowed is not None and node.id not in allowed:
                raise SpaceError(f"constraint {text!r}: unknown name {node.id!r}",
                                 hint=f"use the parameters {sorted(allowed)} and the constants {sorted(MATH_CONSTANTS)}")
            used.append(node.id)
        elif isinstance(node, ast.BinOp) and type(node.op).__name__ in _BINARY:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op).__name__ in ("USub", "UAdd"):
            check(node.operand)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MATH_FUNCTIONS and not node.keywords:
            for a in node.args:
                check(a)
        elif isinstance(node, ast.Call):
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise SpaceError(f"constraint {text!r}: {what!r} is not an allowed function",
                             hint=f"allowed functions: {sorted(MATH_FUNCTIONS)} (positional arguments only)")
        else:
            raise SpaceError(f"constraint {text!r}: {ast.unparse(node)!r} ({type(node).__name__}) is not allowed",
                             hint="use numbers, parameter names, + - * / **, and the allowed functions")

    check(tree.left)
    check(tree.comparators[0])
    return tree.left, tree.comparators[0], _COMPARISONS[type(tree.ops[0]).__name__], sorted(set(used))


def _evaluate(node: Any, values: Mapping[str, Any]) -> Any:
    """The value of a checked expression tree for ``values`` (numbers or numpy arrays)."""
    import ast

    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return MATH_CONSTANTS[node.id] if node.id in MATH_CONSTANTS else np.asarray(values[node.id], dtype=float)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op).__name__](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        v = _evaluate(node.operand, values)
        return -v if type(node.op).__name__ == "USub" else v
    if isinstance(node, ast.Call):
        return MATH_FUNCTIONS[node.func.id](*[_evaluate(a, values) for a in node.args])
    raise SpaceError(f"unexpected expression node {type(node).__name__}")  # parse_expression refuses these first


class NonlinearConstraint:
    """A constraint that is not linear: ``<expression> <= <expression>`` over parameters, or a Python function.

    As text (what recipes use, parsed by :func:`parse_expression`, never ``eval``)::

        NonlinearConstraint("zn * sn <= 0.2")
        NonlinearConstraint("sqrt(temperature / 300) + dopant_fraction <= 1.5", name="solubility")

    As a function of a point (a mapping of values in declared units) with an operator and a bound::

        NonlinearConstraint(lambda p: solubility(p["salt"], p["temperature"]), ">=", 0.0, name="dissolves")

    A point satisfies it when the violation is at most ``CONSTRAINT_TOL`` times ``max(1, |rhs|)``.
    A function cannot be written to a file: save planners whose constraints are expressions.
    """

    def __init__(self, constraint: str | Any, op: Op | None = None, rhs: float | None = None, name: str | None = None) -> None:
        self.expression: str | None = None
        self.function: Any = None
        if isinstance(constraint, str):
            if op is not None or rhs is not None:
                raise SpaceError(f"constraint {constraint!r}: an expression carries its own comparison; drop op and rhs")
            self._left, self._right, self.op, self.names = parse_expression(constraint)
            self.expression = constraint.strip()
            self.rhs = 0.0
        elif callable(constraint):
            if op not in ("<=", ">="):
                raise SpaceError(f"a constraint function needs op '<=' or '>=', got {op!r}")
            if rhs is None or not math.isfinite(float(rhs)):
                raise SpaceError(f"a constraint function needs a finite rhs, got {rhs!r}")
            self.function, self.op, self.rhs, self.names = constraint, op, float(rhs), []
        else:
            raise SpaceError(f"a nonlinear constraint is an expression (text) or a function, got {type(constraint).__name__}")
        self.name = name or self.expression or getattr(constraint, "__name__", "constraint")

    def check_names(self, space: Space) -> None:
        for n in self.names:
            if n not in space:
                raise SpaceError(f"constraint {self.describe()!r}: unknown parameter {n!r}", hint=f"parameters are {space.names}")
            if isinstance(space[n], Categorical):
                raise SpaceError(f"constraint {self.describe()!r}: {n} is categorical; expressions take numeric parameters")

    def slack(self, frame: pd.DataFrame) -> np.ndarray:
        """How far inside the constraint each point is (negative: violated), in the constraint's own scale."""
        if self.function is not None:
            lhs = np.array([float(self.function(row)) for row in frame.to_dict("records")], dtype=float)
            diff = lhs - self.rhs
        else:
            values = {n: frame[n].to_numpy(dtype=float) for n in self.names}
            with np.errstate(all="ignore"):
                diff = np.broadcast_to(np.asarray(_evaluate(self._left, values) - _evaluate(self._right, values), dtype=float), (len(frame),))
        diff = np.where(np.isfinite(diff), diff, np.inf if self.op == "<=" else -np.inf)
        return -diff if self.op == "<=" else diff

    def satisfied(self, frame: pd.DataFrame, tol: float = CONSTRAINT_TOL) -> np.ndarray:
        return self.slack(frame) >= -tol * max(1.0, abs(self.rhs))

    def describe(self) -> str:
        return self.expression if self.expression is not None else f"{self.name}(point) {self.op} {self.rhs:g}"

    def to_dict(self) -> dict[str, Any]:
        if self.function is not None:
            return {"type": "function", "name": self.name, "function": self.function, "op": self.op, "rhs": self.rhs}
        return {"type": "expression", "expression": self.expression, **({"name": self.name} if self.name != self.expression else {})}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NonlinearConstraint) and (self.expression, self.function, self.op, self.rhs) == (
            other.expression, other.function, other.op, other.rhs)

    def __hash__(self) -> int:
        return hash((self.expression, id(self.function), self.op, self.rhs))

    def __repr__(self) -> str:
        return f"NonlinearConstraint({self.describe()!r})"


@dataclass(frozen=True)
class NChooseK:
    """At most ``max_nonzero`` (and at least ``min_nonzero``) of the named parameters differ from zero.

    For formulations: "at most 3 of these 8 additives". Each named parameter must be real with
    a lower bound of 0 (zero is "left out"). Sampling and repair choose which ones are used.
    """

    names: tuple[str, ...]
    max_nonzero: int
    min_nonzero: int = 0

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if len(names) < 2 or len(set(names)) != len(names):
            raise SpaceError(f"NChooseK needs two or more distinct parameters, got {list(names)}")
        if not 0 <= self.min_nonzero <= self.max_nonzero < len(names):
            raise SpaceError(f"NChooseK over {list(names)}: need 0 <= min_nonzero <= max_nonzero < {len(names)}, "
                             f"got {self.min_nonzero} and {self.max_nonzero}")

    op = "<="
    rhs = 0.0

    def check_names(self, space: Space) -> None:
        for n in self.names:
            if n not in space:
                raise SpaceError(f"NChooseK: unknown parameter {n!r}", hint=f"parameters are {space.names}")
            p = space[n]
            if not isinstance(p, Real) or p.log or p.low != 0:
                raise SpaceError(f"NChooseK: {n} must be a real, linear-scale parameter with low = 0 (zero means 'not used')")

    def count(self, frame: pd.DataFrame) -> np.ndarray:
        return (np.abs(frame[list(self.names)].to_numpy(dtype=float)) > NCHOOSEK_ZERO).sum(axis=1)

    def satisfied(self, frame: pd.DataFrame, tol: float = CONSTRAINT_TOL) -> np.ndarray:
        c = self.count(frame)
        return (c <= self.max_nonzero) & (c >= self.min_nonzero)

    def describe(self) -> str:
        lo = f"{self.min_nonzero} to " if self.min_nonzero else "at most "
        return f"{lo}{self.max_nonzero} of {', '.join(self.names)} non-zero"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "nchoosek", "names": list(self.names), "max_nonzero": self.max_nonzero, "min_nonzero": self.min_nonzero}


NCHOOSEK_ZERO = 1e-9
"""A value counts as zero for :class:`NChooseK` when its magnitude is at most this."""


def nonlinear_from_dict(d: Mapping[str, Any]) -> NonlinearConstraint | NChooseK:
    """Inverse of ``to_dict()`` of a :class:`NonlinearConstraint` (expression) or :class:`NChooseK`."""
    if d.get("type") == "nchoosek":
        return NChooseK(tuple(d["names"]), int(d["max_nonzero"]), int(d.get("min_nonzero", 0)))
    if d.get("type") == "function":
        raise SpaceError(f"constraint {d.get('name')!r} was a Python function, which cannot be restored from a file",
                         hint="write it as an expression to save and load it")
    return NonlinearConstraint(str(d["expression"]), name=d.get("name"))



class Space:
    """An ordered set of parameters, with encoding to and from the planner's unit cube.

    ``constraints`` (optional) are linear constraints on real, linear-scale parameters in their
    declared units (:class:`LinearConstraint`, :class:`SumConstraint`).
    """

    def __init__(self, parameters: Iterable[Parameter], constraints: Iterable[Constraint] = ()) -> None:
        self.parameters: tuple[Parameter, ...] = tuple(parameters)
        if not self.parameters:
            raise SpaceError("a space needs at least one parameter")
        names = [p.name for p in self.parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpaceError(f"duplicate parameter names: {dupes}")
        self._by_name = {p.name: p for p in self.parameters}
        slices, start = {}, 0
        for p in self.parameters:
            slices[p.name] = slice(start, start + p.width)
            start += p.width
        self._slices = slices
        self.dim = start
        given = tuple(constraints)
        self.constraints: tuple[Constraint, ...] = tuple(c for c in given if isinstance(c, (LinearConstraint, SumConstraint)))
        self.nonlinear: tuple[NonlinearConstraint | NChooseK, ...] = tuple(c for c in given if isinstance(c, (NonlinearConstraint, NChooseK)))
        unknown = [c for c in given if not isinstance(c, (LinearConstraint, SumConstraint, NonlinearConstraint, NChooseK))]
        if unknown:
            raise SpaceError(f"not a constraint: {unknown[0]!r}",
                             hint="use LinearConstraint, SumConstraint, NonlinearConstraint or NChooseK")
        for c in self.nonlinear:
            c.check_names(self)
        self._polytope = _Polytope.build(self) if self.constraints else None
        self._subset_polytopes: dict[tuple[int, ...], _Polytope | None] = {}

    # -- basic facts ------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def __getitem__(self, name: str) -> Parameter:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.parameters)

    def __iter__(self):
        return iter(self.parameters)

    def with_nonlinear(self, constraints: Iterable[NonlinearConstraint | NChooseK]) -> Space:
        """This space with more nonlinear constraints (expressions, functions, NChooseK)."""
        return Space(self.parameters, [*self.constraints, *self.nonlinear, *constraints])

    def __repr__(self) -> str:
        every = [*self.constraints, *self.nonlinear]
        cons = f", constraints=[{', '.join(c.describe() for c in every)}]" if every else ""
        return "Space([" + ", ".join(p.describe() for p in self.parameters) + "]" + cons + ")"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Space)
            and self.parameters == other.parameters
            and tuple(c.as_linear() for c in self.constraints) == tuple(c.as_linear() for c in other.constraints)
            and self.nonlinear == other.nonlinear
        )

    def __hash__(self) -> int:
        return hash((self.parameters, self.constraints, self.nonlinear))

    @property
    def is_continuous(self) -> bool:
        return all(isinstance(p, Real) for p in self.parameters)

    def column_slice(self, name: str) -> slice:
        """The columns of the unit-cube encoding that belong to ``name``."""
        return self._slices[name]

    # -- conversions ------------------------------------------------------------
    def coerce(self, point: Mapping[str, Any], *, where: str = "point") -> dict[str, Any]:
        """Validate one point (numbers in declared units, text or Quantities) into plain values.

        Raises ``SpaceError`` naming the parameter when a value is missing, of the wrong unit,
        not finite, or out of bounds.
        """
        out: dict[str, Any] = {}
        for p in self.parameters:
            if p.name not in point:
                raise SpaceError(f"{where}: missing parameter {p.name!r}", hint=f"expected columns {self.names}")
            raw = point[p.name]
            if isinstance(raw, (float, np.floating)) and not math.isfinite(raw):
                raise SpaceError(f"{where}: {p.name} is {raw}, expected a finite value")
            value = p.coerce(raw.item() if isinstance(raw, np.generic) else raw)
            if not p.contains(value, 1e-6) if isinstance(p, Real) else not p.contains(value):
                raise SpaceError(f"{where}: {p.name} = {value!r} lies outside the space ({p.describe()})")
            if isinstance(p, Real):
                value = min(max(value, p.low), p.high)
            out[p.name] = value
        return out

    def encode(self, points: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode points (DataFrame or dicts of values) to an ``n x dim`` array in the unit cube."""
        if isinstance(points, pd.DataFrame):
            fast = self._encode_frame(points)
            if fast is not None:
                return fast
        rows = points.to_dict("records") if isinstance(points, pd.DataFrame) else list(points)
        X = np.empty((len(rows), self.dim), dtype=float)
        for i, row in enumerate(rows):
            clean = self.coerce(row, where=f"row {i}")
            for p in self.parameters:
                X[i, self._slices[p.name]] = p.to_unit(clean[p.name])
        return X

    def _encode_frame(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Vectorized encoding of a DataFrame of plain, valid values; None sends it down the
        row-by-row path, which names whatever is wrong (pools of hundreds of points are encoded
        on every planner call, so this path matters)."""
        X = np.empty((len(frame), self.dim), dtype=float)
        for p in self.parameters:
            if p.name not in frame.columns:
                return None
            col = frame[p.name]
            start = self._slices[p.name].start
            if isinstance(p, Categorical):
                labels = col.astype(str).to_numpy()
                onehot = labels[:, None] == np.asarray(p.choices)[None, :]
                if not onehot.any(axis=1).all():
                    return None
                X[:, self._slices[p.name]] = onehot
                continue
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                return None
            v = col.to_numpy(dtype=float)
            tol = 1e-6 * (p.high - p.low)
            if not np.isfinite(v).all() or (v < p.low - tol).any() or (v > p.high + tol).any():
                return None
            if isinstance(p, Integer) and (v != np.round(v)).any():
                return None
            v = np.clip(v, p.low, p.high)
            if isinstance(p, Real) and p.log:
                X[:, start] = (np.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
            else:
                X[:, start] = (v - p.low) / (p.high - p.low)
        return X

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        """Decode an ``n x dim`` unit-cube array to a DataFrame of values (one column per parameter)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self.dim:
            raise SpaceError(f"expected an array with {self.dim} columns, got {X.shape[1]}")
        cols = {p.name: [p.from_unit(x[self._slices[p.name]]) for x in X] for p in self.parameters}
        return pd.DataFrame(cols, columns=self.names)

    def decode_records(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Decode an ``n x dim`` unit-cube array to one dict of plain values per row (no DataFrame:
        the loop decodes every suggestion, and a one-row DataFrame costs more than the planner)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self.dim:
            raise SpaceError(f"expected an array with {self.dim} columns, got {X.shape[1]}")
        return [{p.name: _plain_value(p.from_unit(x[self._slices[p.name]])) for p in self.parameters} for x in X]

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Round unit-cube points to what decoding gives (integers rounded, one-hot made exact)."""
        return self.encode(self.decode(X))

    def to_quantities(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Plain values -> pint Quantities (categoricals stay labels)."""
        return {
            p.name: (values[p.name] if isinstance(p, Categorical) else Quantity(values[p.name], parse_unit(p.unit)))
            for p in self.parameters
        }

    # -- sampling ---------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> pd.DataFrame:
        """``n`` points drawn uniformly (log-uniformly for log parameters) from the space.

        Under constraints, the constrained parameters are drawn (approximately uniformly)
        from the feasible polytope by hit-and-run, so every point satisfies them.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if not self.nonlinear:
            return self.decode(self._sample_unit(n, rng))
        # nonlinear constraints: draw (NChooseK picks its zeros per point), keep the feasible points
        kept: list[np.ndarray] = []
        have, drawn = 0, 0
        while have < n:
            U = self._sample_unit(max(2 * (n - have), 64), rng)
            U = U[self.feasible_unit(U)]
            drawn += 1
            kept.append(U)
            have += len(U)
            if drawn >= 200 and have < n:
                raise SpaceError(
                    f"the constraints {[c.describe() for c in self.nonlinear]} leave almost no feasible point: "
                    f"{have} of {n} found in {drawn} rounds of sampling",
                    hint="check the constraints against the parameters' bounds",
                )
        return self.decode(np.vstack(kept)[:n])

    def _sample_unit(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unit-cube points satisfying the linear constraints; with NChooseK, each with its own zeros."""
        U = rng.random((n, self.dim))
        if self._polytope is not None:
            U[:, self._polytope.cols] = self._polytope.sample(n, rng)
        for c in [c for c in self.nonlinear if isinstance(c, NChooseK)]:
            cols = [self._slices[m].start for m in c.names]
            groups: dict[tuple[int, ...], list[int]] = {}
            for i in range(n):
                keep = rng.integers(c.min_nonzero, c.max_nonzero + 1)
                groups.setdefault(tuple(sorted(rng.choice(cols, size=len(cols) - keep, replace=False).tolist())), []).append(i)
            for zero, rows in groups.items():
                U[rows] = self._with_zeros(U[rows], zero, rng)
        return U

    def _with_zeros(self, U: np.ndarray, zero_cols: tuple[int, ...], rng: np.random.Generator | None) -> np.ndarray:
        """Rows with ``zero_cols`` at zero (their parameter's low bound), resampled or projected to meet the linear constraints."""
        U = np.array(U, dtype=float)
        U[:, list(zero_cols)] = 0.0
        if self._polytope is None or not set(zero_cols) & set(self._polytope.cols.tolist()):
            return U
        key = tuple(sorted(zero_cols))
        if key not in self._subset_polytopes:
            try:
                self._subset_polytopes[key] = _Polytope.build(self, zero_cols=key)
            except SpaceError:
                self._subset_polytopes[key] = None  # these zeros leave no feasible point
        poly = self._subset_polytopes[key]
        if poly is None:
            return np.full_like(U, np.nan)
        U[:, poly.cols] = poly.sample(len(U), rng) if rng is not None else poly.project(U[:, poly.cols])
        return U

    def center(self) -> dict[str, Any]:
        """The centre of the space (first choice for categoricals; the feasible region's Chebyshev centre under constraints)."""
        U = np.full((1, self.dim), 0.5)
        if self._polytope is not None:
            U[0, self._polytope.cols] = self._polytope.center
        row = self.decode(U).iloc[0].to_dict()
        for p in self.parameters:
            if isinstance(p, Categorical):
                row[p.name] = p.choices[0]
        return row

    # -- constraints --------------------------------------------------------------
    def feasible(self, points: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any], tol: float = CONSTRAINT_TOL) -> np.ndarray:
        """Whether each point (values in declared units) satisfies every constraint, to ``tol`` times its scale.

        Returns a boolean array, one entry per point (all True for a space without constraints).
        """
        if isinstance(points, Mapping):
            points = [points]
        rows = points.to_dict("records") if isinstance(points, pd.DataFrame) else list(points)
        ok = np.ones(len(rows), dtype=bool)
        for c in self.constraints:
            lin = c.as_linear()
            scale = self._constraint_scale(lin)
            for i, row in enumerate(rows):
                v = lin.lhs(row) - lin.rhs
                bad = abs(v) if lin.op == "==" else (v if lin.op == "<=" else -v)
                if bad > tol * scale:
                    ok[i] = False
        if self.nonlinear and len(rows):
            frame = pd.DataFrame(rows)
            for nc in self.nonlinear:
                ok &= nc.satisfied(frame, tol)
        return ok

    def violations(self, point: Mapping[str, Any], tol: float = CONSTRAINT_TOL) -> list[str]:
        """The constraints a point breaks, described (an empty list when it satisfies them all)."""
        out = []
        for c in self.constraints:
            lin = c.as_linear()
            v = lin.lhs(point) - lin.rhs
            bad = abs(v) if lin.op == "==" else (v if lin.op == "<=" else -v)
            if bad > tol * self._constraint_scale(lin):
                out.append(f"{c.describe()} (left-hand side {lin.lhs(point):g})")
        frame = pd.DataFrame([dict(point)])
        for nc in self.nonlinear:
            if not nc.satisfied(frame, tol)[0]:
                out.append(nc.describe())
        return out

    def feasible_unit(self, X: np.ndarray, tol: float = CONSTRAINT_TOL) -> np.ndarray:
        """Whether each unit-cube row satisfies every constraint (same tolerance as :meth:`feasible`)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        ok = np.isfinite(X).all(axis=1)
        if self._polytope is not None:
            ok &= self._polytope.contains(np.nan_to_num(X[:, self._polytope.cols]), tol)
        if self.nonlinear and len(X):
            frame = self.decode(np.nan_to_num(X))
            for nc in self.nonlinear:
                ok &= nc.satisfied(frame, tol)
        return ok

    def repair(self, X: np.ndarray) -> np.ndarray:
        """The nearest feasible point to each unit-cube row (rows already feasible are returned unchanged).

        The nearest point is found by SLSQP; should that fail, the point is pulled along a
        straight line towards the Chebyshev centre until it is feasible.
        """
        X = np.array(np.atleast_2d(np.asarray(X, dtype=float)))
        if self._polytope is not None:
            cols = self._polytope.cols
            X[:, cols] = self._polytope.project(X[:, cols])
        if self.nonlinear:
            X = self._repair_nonlinear(X)
        return X

    def _repair_nonlinear(self, X: np.ndarray) -> np.ndarray:
        """Rows breaking a nonlinear constraint move to a feasible point near them.

        NChooseK first: the smallest values are set to zero. Then a row still infeasible goes to
        the feasible point closest to it on the segment towards its nearest neighbour in a fixed,
        seeded sample of the feasible space (bisection keeps the feasible end), so the result is
        always feasible and deterministic.
        """
        for c in [c for c in self.nonlinear if isinstance(c, NChooseK)]:
            cols = np.array([self._slices[m].start for m in c.names])
            for i in np.flatnonzero(~c.satisfied(self.decode(X))):
                order = cols[np.argsort(-X[i, cols], kind="stable")]
                zero = tuple(sorted(order[max(c.max_nonzero, c.min_nonzero):].tolist()))
                fixed = self._with_zeros(X[i : i + 1], zero, None)
                if np.isfinite(fixed).all():
                    X[i] = fixed[0]
        bad = np.flatnonzero(~self.feasible_unit(X))
        if not len(bad):
            return X
        if not hasattr(self, "_feasible_reference"):
            self._feasible_reference = self.encode(self.sample(256, seed=np.random.default_rng(20240611)))
        ref = self._feasible_reference
        for i in bad:
            x = np.nan_to_num(X[i])
            target = ref[int(np.argmin(((ref - x) ** 2).sum(axis=1)))]
            lo, hi = 1.0, 0.0  # fraction of the way to target: 1 is feasible, 0 is not
            for _ in range(30):
                mid = 0.5 * (lo + hi)
                if self.feasible_unit(self.snap((x + mid * (target - x))[None, :]))[0]:
                    lo = mid
                else:
                    hi = mid
            X[i] = self.snap((x + lo * (target - x))[None, :])[0]
        return X

    def unit_constraints(self) -> list[tuple[list[int], list[float], float, str]]:
        """The constraints in the unit cube: ``(columns, coefficients, rhs, kind)``, kind "ineq" (``>=``) or "eq".

        The form BoTorch's ``optimize_acqf`` takes for ``inequality_constraints`` /
        ``equality_constraints`` (after turning lists into tensors).
        """
        out = []
        for c in self.constraints:
            cols, coef, rhs, kind = _unit_row(self, c.as_linear())
            out.append((cols, coef, rhs, kind))
        return out

    def _constraint_scale(self, lin: LinearConstraint) -> float:
        return max(sum(abs(a) * (self[k].high - self[k].low) for k, a in lin.terms), 1e-300)

    def constraints_to_dict(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.constraints]

    # -- serialization ----------------------------------------------------------
    def to_dict(self) -> list[dict[str, Any]]:
        out = []
        for p in self.parameters:
            if isinstance(p, Categorical):
                out.append({"name": p.name, "type": "categorical", "choices": list(p.choices)})
            elif isinstance(p, Integer):
                out.append({"name": p.name, "type": "integer", "low": p.low, "high": p.high, "unit": p.unit})
            else:
                out.append({"name": p.name, "type": "real", "low": p.low, "high": p.high, "unit": p.unit, "log": p.log})
        return out

    @classmethod
    def from_dict(cls, items: Sequence[Mapping[str, Any]], constraints: Sequence[Mapping[str, Any]] = ()) -> Space:
        params: list[Parameter] = []
        for d in items:
            kind = d.get("type", "real")
            if kind == "categorical":
                params.append(Categorical(d["name"], tuple(d["choices"])))
            elif kind == "integer":
                params.append(Integer(d["name"], d["low"], d["high"], d.get("unit", "")))
            else:
                params.append(Real(d["name"], d["low"], d["high"], d.get("unit", ""), bool(d.get("log", False))))
        return cls(params, [constraint_from_dict(c) for c in constraints])


def as_quantity_dict(values: Mapping[str, Any], space: Space) -> dict[str, pint.Quantity | str]:
    """Alias of :meth:`Space.to_quantities` for readability at call sites."""
    return space.to_quantities(values)


# -- the feasible polytope of linear constraints, in the unit cube ----------------------------


def _unit_row(space: Space, lin: LinearConstraint) -> tuple[list[int], list[float], float, str]:
    """A constraint in unit-cube columns, as ``coef . u >= rhs`` ("ineq") or ``coef . u == rhs`` ("eq").

    With ``x = low + (high - low) u``: ``sum a x  <op>  b``  <=>  ``sum a (high - low) u  <op>  b - sum a low``.
    Rows are divided by the constraint's scale ``sum |a| (high - low)``, so tolerances are relative.
    """
    for k, _ in lin.terms:
        if k not in space:
            raise SpaceError(f"constraint {lin.describe()}: unknown parameter {k!r}", hint=f"parameters are {space.names}")
        p = space[k]
        if not isinstance(p, Real) or p.log:
            raise SpaceError(
                f"constraint {lin.describe()}: {k} must be a real parameter on a linear scale",
                hint="constraints are linear in declared units; integers, categoricals and log-scale parameters cannot take part",
            )
    scale = space._constraint_scale(lin)
    cols = [space.column_slice(k).start for k, _ in lin.terms]
    coef = [a * (space[k].high - space[k].low) / scale for k, a in lin.terms]
    rhs = (lin.rhs - sum(a * space[k].low for k, a in lin.terms)) / scale
    if lin.op == "<=":
        return cols, [-c for c in coef], -rhs, "ineq"
    return cols, coef, rhs, ("eq" if lin.op == "==" else "ineq")


class _Polytope:
    """``{u in [0, 1]^k : G u <= h, C u = d}`` over the constrained columns, with sampling and projection.

    Equalities are eliminated by writing ``u = u0 + N z`` (``N`` spans the null space of C);
    sampling is hit-and-run in ``z`` from the Chebyshev centre, one chain per point.
    """

    def __init__(self, cols, G, h, C, d) -> None:
        from scipy.linalg import null_space
        from scipy.optimize import linprog

        self.cols = np.asarray(cols, dtype=int)
        self.G, self.h, self.C, self.d = G, h, C, d
        k = len(self.cols)
        if len(C):
            self.u0 = np.linalg.lstsq(C, d, rcond=None)[0]
            self.N = null_space(C)
        else:
            self.u0, self.N = np.zeros(k), np.eye(k)
        # Chebyshev centre in z: maximize r subject to (G N) z + r |G N|_row <= h - G u0.
        GN = G @ self.N
        norms = np.linalg.norm(GN, axis=1)
        m = self.N.shape[1]
        res = linprog(
            c=np.r_[np.zeros(m), -1.0],
            A_ub=np.c_[GN, norms],
            b_ub=h - G @ self.u0,
            bounds=[(None, None)] * m + [(0, None)],
            method="highs",
        )
        if res.status != 0 or (len(C) and np.abs(C @ (self.u0 + self.N @ res.x[:m]) - d).max() > 1e-9):
            raise SpaceError(
                "the constraints leave no feasible point in the space",
                hint="check the bounds of the constrained parameters against the constraints' totals",
            )
        self.z_center = res.x[:m]
        self.radius = float(res.x[m])
        self.center = np.clip(self.u0 + self.N @ self.z_center, 0.0, 1.0)
        self._GN, self._hz = GN, h - G @ self.u0

    @classmethod
    def build(cls, space: Space, zero_cols: tuple[int, ...] = ()) -> _Polytope:
        rows = [_unit_row(space, c.as_linear()) for c in space.constraints]
        rows += [([j], [1.0], 0.0, "eq") for j in zero_cols if any(j in r[0] for r in rows)]
        cols = sorted({j for r in rows for j in r[0]})
        where = {j: i for i, j in enumerate(cols)}
        k = len(cols)
        G, h, C, d = [], [], [], []
        for rc, coef, rhs, kind in rows:
            v = np.zeros(k)
            for j, a in zip(rc, coef):
                v[where[j]] = a
            if kind == "eq":
                C.append(v), d.append(rhs)
            else:  # coef . u >= rhs  ->  -coef . u <= -rhs
                G.append(-v), h.append(-rhs)
        eye = np.eye(k)
        G = np.vstack([np.array(G).reshape(-1, k), eye, -eye])
        h = np.r_[np.array(h, dtype=float), np.ones(k), np.zeros(k)]
        return cls(cols, G, h, np.array(C).reshape(-1, k), np.array(d, dtype=float))

    def contains(self, U: np.ndarray, tol: float = CONSTRAINT_TOL) -> np.ndarray:
        k = len(self.cols)
        ok = ((U @ self.G[:-2 * k].T) - self.h[:-2 * k] <= tol).all(axis=1) if len(self.G) > 2 * k else np.ones(len(U), bool)
        if len(self.C):
            ok &= (np.abs(U @ self.C.T - self.d) <= tol).all(axis=1)
        return ok & (U >= -1e-12).all(axis=1) & (U <= 1 + 1e-12).all(axis=1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        m = self.N.shape[1]
        if m == 0 or self.radius <= 0:
            return np.tile(self.center, (n, 1))
        Z = np.tile(self.z_center, (n, 1))
        for _ in range(40 + 10 * m):
            D = rng.normal(size=(n, m))
            D /= np.linalg.norm(D, axis=1, keepdims=True)
            slack = np.maximum(self._hz[None, :] - Z @ self._GN.T, 0.0)  # n x rows, >= 0
            rate = D @ self._GN.T
            with np.errstate(divide="ignore", invalid="ignore"):
                t = slack / rate
            hi = np.where(rate > 1e-12, t, np.inf).min(axis=1)
            lo = np.where(rate < -1e-12, t, -np.inf).max(axis=1)
            Z = Z + (lo + (hi - lo) * rng.random(n))[:, None] * D
        return np.clip(self.u0 + Z @ self.N.T, 0.0, 1.0)

    def project(self, U: np.ndarray, tol: float = CONSTRAINT_TOL * 1e-3) -> np.ndarray:
        from scipy.optimize import minimize

        U = np.array(U, dtype=float)
        bad = ~self.contains(U, tol)
        for i in np.flatnonzero(bad):
            v = U[i]
            cons = [{"type": "ineq", "fun": lambda u: self.h - self.G @ u, "jac": lambda u: -self.G}]
            if len(self.C):
                cons.append({"type": "eq", "fun": lambda u: self.C @ u - self.d, "jac": lambda u: self.C})
            res = minimize(
                lambda u: 0.5 * float(((u - v) ** 2).sum()),
                np.clip(v, 0.0, 1.0),
                jac=lambda u: u - v,
                method="SLSQP",
                bounds=[(0.0, 1.0)] * len(v),
                constraints=cons,
                options={"ftol": 1e-12, "maxiter": 200},
            )
            u = np.clip(res.x, 0.0, 1.0)
            if not self.contains(u[None, :], tol)[0]:
                u = self._pull_to_center(v, tol)
            U[i] = u
        return U

    def _pull_to_center(self, v: np.ndarray, tol: float) -> np.ndarray:
        """The point nearest ``v`` on the segment from the centre to ``v``'s projection on ``C u = d`` that is feasible."""
        w = v
        if len(self.C):
            w = self.u0 + self.N @ (self.N.T @ (v - self.u0))
        c = self.center
        lo, hi = 0.0, 1.0
        if self.contains(w[None, :], tol)[0]:
            return w
        for _ in range(60):  # bisection on t in c + t (w - c)
            mid = 0.5 * (lo + hi)
            if self.contains((c + mid * (w - c))[None, :], tol)[0]:
                lo = mid
            else:
                hi = mid
        return c + lo * (w - c)


def _plain_value(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (records and ledgers hold plain JSON types)."""
    return v.item() if isinstance(v, np.generic) else v


def space_to_dict(space: Space) -> dict[str, Any]:
    """A space with its constraints as plain JSON data (inverse: :func:`space_from_dict`)."""
    out: dict[str, Any] = {"parameters": space.to_dict(), "constraints": space.constraints_to_dict()}
    nonlinear = getattr(space, "nonlinear", ())
    if nonlinear:
        out["nonlinear"] = [c.to_dict() for c in nonlinear]
    return out


def space_from_dict(d: Mapping[str, Any]) -> Space:
    """Inverse of :func:`space_to_dict`."""
    space = Space.from_dict(d["parameters"], d.get("constraints", ()))
    if d.get("nonlinear"):
        space = space.with_nonlinear([nonlinear_from_dict(c) for c in d["nonlinear"]])
    return space
