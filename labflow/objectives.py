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
