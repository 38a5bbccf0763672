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
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        self._polytope = _Polytope.build(self) if self.constraints else None

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

    def __repr__(self) -> str:
        cons = f", constraints=[{', '.join(c.describe() for c in self.constraints)}]" if self.constraints else ""
        return "Space([" + ", ".join(p.describe() for p in self.parameters) + "]" + cons + ")"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Space)
            and self.parameters == other.parameters
            and tuple(c.as_linear() for c in self.constraints) == tuple(c.as_linear() for c in other.constraints)
        )

    def __hash__(self) -> int:
        return hash((self.parameters, self.constraints))

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
        U = rng.random((n, self.dim))
        if self._polytope is not None:
            U[:, self._polytope.cols] = self._polytope.sample(n, rng)
        return self.decode(U)

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
        return out

    def feasible_unit(self, X: np.ndarray, tol: float = CONSTRAINT_TOL) -> np.ndarray:
        """Whether each unit-cube row satisfies every constraint (same tolerance as :meth:`feasible`)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if self._polytope is None:
            return np.ones(len(X), dtype=bool)
        return self._polytope.contains(X[:, self._polytope.cols], tol)

    def repair(self, X: np.ndarray) -> np.ndarray:
        """The nearest feasible point to each unit-cube row (rows already feasible are returned unchanged).

        The nearest point is found by SLSQP; should that fail, the point is pulled along a
        straight line towards the Chebyshev centre until it is feasible.
        """
        X = np.array(np.atleast_2d(np.asarray(X, dtype=float)))
        if self._polytope is None:
            return X
        cols = self._polytope.cols
        X[:, cols] = self._polytope.project(X[:, cols])
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
    def build(cls, space: Space) -> _Polytope:
        rows = [_unit_row(space, c.as_linear()) for c in space.constraints]
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
