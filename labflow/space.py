"""Search spaces: the parameters a campaign may vary, with units and bounds.

A :class:`Space` maps points between three forms:

* **values**: a dict or DataFrame row of plain numbers in each parameter's declared
  unit (categoricals as their string labels) -- what users and recipes speak;
* **quantities**: the same as pint Quantities -- what devices receive;
* **the unit cube**: a float array in ``[0, 1]^D`` -- what planners model.
  Real parameters take one column (log-scaled when ``log=True``), integers one column
  (rounded on decoding), categoricals one column per choice (one-hot, argmax on decoding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

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


class Space:
    """An ordered set of parameters, with encoding to and from the planner's unit cube."""

    def __init__(self, parameters: Iterable[Parameter]) -> None:
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
        return "Space([" + ", ".join(p.describe() for p in self.parameters) + "])"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.parameters == other.parameters

    def __hash__(self) -> int:
        return hash(self.parameters)

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
        rows = points.to_dict("records") if isinstance(points, pd.DataFrame) else list(points)
        X = np.empty((len(rows), self.dim), dtype=float)
        for i, row in enumerate(rows):
            clean = self.coerce(row, where=f"row {i}")
            for p in self.parameters:
                X[i, self._slices[p.name]] = p.to_unit(clean[p.name])
        return X

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        """Decode an ``n x dim`` unit-cube array to a DataFrame of values (one column per parameter)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self.dim:
            raise SpaceError(f"expected an array with {self.dim} columns, got {X.shape[1]}")
        cols = {p.name: [p.from_unit(x[self._slices[p.name]]) for x in X] for p in self.parameters}
        return pd.DataFrame(cols, columns=self.names)

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
        """``n`` points drawn uniformly (log-uniformly for log parameters) from the space."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.decode(rng.random((n, self.dim)))

    def center(self) -> dict[str, Any]:
        """The centre of the space (first choice for categoricals)."""
        row = self.decode(np.full((1, self.dim), 0.5)).iloc[0].to_dict()
        for p in self.parameters:
            if isinstance(p, Categorical):
                row[p.name] = p.choices[0]
        return row

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
    def from_dict(cls, items: Sequence[Mapping[str, Any]]) -> Space:
        params: list[Parameter] = []
        for d in items:
            kind = d.get("type", "real")
            if kind == "categorical":
                params.append(Categorical(d["name"], tuple(d["choices"])))
            elif kind == "integer":
                params.append(Integer(d["name"], d["low"], d["high"], d.get("unit", "")))
            else:
                params.append(Real(d["name"], d["low"], d["high"], d.get("unit", ""), bool(d.get("log", False))))
        return cls(params)


def as_quantity_dict(values: Mapping[str, Any], space: Space) -> dict[str, pint.Quantity | str]:
    """Alias of :meth:`Space.to_quantities` for readability at call sites."""
    return space.to_quantities(values)
