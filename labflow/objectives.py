"""Objectives: what a campaign measures and which way is better."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from labflow.errors import SpaceError
from labflow.units import parse_unit

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Objective:
    """A measured quantity to maximize or minimize, in ``unit``.

    ``threshold`` is the worst value still worth having (the reference point for several
    objectives); ``None`` lets the planner infer one.
    """

    name: str
    direction: Direction = "maximize"
    unit: str = ""
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpaceError(f"objective name {self.name!r} is not a valid identifier")
        if self.direction not in ("maximize", "minimize"):
            raise SpaceError(f"objective {self.name}: direction must be 'maximize' or 'minimize', got {self.direction!r}")
        parse_unit(self.unit)
        if self.threshold is not None and not math.isfinite(float(self.threshold)):
            raise SpaceError(f"objective {self.name}: threshold must be finite, got {self.threshold}")

    @property
    def sign(self) -> float:
        """+1 to maximize, -1 to minimize: multiply a value by it so that larger is better."""
        return 1.0 if self.direction == "maximize" else -1.0

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b``."""
        return self.sign * a > self.sign * b

    def to_dict(self) -> dict:
        return {"name": self.name, "direction": self.direction, "unit": self.unit, "threshold": self.threshold}


@dataclass(frozen=True)
class OutcomeConstraint:
    """A measured quantity that must stay on one side of a bound: ``purity >= 95 percent``.

    It is measured with every experiment (a column of the observations, like an objective) but
    not optimized: the Bayesian planner models it with its own GP and weighs each candidate by
    the probability that it holds (BoTorch's constrained noisy expected improvement), and
    ``best()`` counts only results that satisfy it.
    """

    name: str
    op: Literal["<=", ">="]
    bound: float
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpaceError(f"outcome constraint name {self.name!r} is not a valid identifier")
        if self.op not in ("<=", ">="):
            raise SpaceError(f"outcome constraint {self.name}: op must be '<=' or '>=', got {self.op!r}")
        parse_unit(self.unit)
        if not math.isfinite(float(self.bound)):
            raise SpaceError(f"outcome constraint {self.name}: bound must be finite, got {self.bound}")
        object.__setattr__(self, "bound", float(self.bound))

    def slack(self, value: float) -> float:
        """How far inside the bound a value is (negative: violated), in the constraint's unit."""
        return self.bound - value if self.op == "<=" else value - self.bound

    def satisfied(self, value: float) -> bool:
        return self.slack(value) >= 0

    def describe(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}{(' ' + self.unit) if self.unit else ''}"

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "bound": self.bound, "unit": self.unit}
