"""What a simulated lab answers with: a landscape.

A landscape is the "physics" behind simulated instruments. It declares its inputs (the
process parameters a simulated synthesis station exposes, with device units and limits)
and its outputs (what a simulated characterization instrument reads, with units), and
evaluates outputs from inputs. Analytic test functions, synthetic materials models and
real datasets (looked up as a pool or emulated by a model) are all landscapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Input:
    """One process parameter of a simulated station: device unit and hard limits (or choices)."""

    name: str
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] | None = None
    integer: bool = False


@dataclass(frozen=True)
class Output:
    """One reading of a simulated instrument, in ``unit``; ``direction`` says which way is better."""

    name: str
    unit: str = ""
    direction: str = "maximize"
    low: float | None = None
    """The least value the quantity can physically take (a yield: 0 %); None: unbounded."""
    high: float | None = None
    """The largest value it can physically take (a yield: 100 %); None: unbounded."""

    def clip(self, value: float) -> float:
        """``value`` within the physical range: what a real instrument could report (noise included)."""
        if self.low is not None and value < self.low:
            return float(self.low)
        if self.high is not None and value > self.high:
            return float(self.high)
        return float(value)


class Landscape(ABC):
    """Noise-free response of a simulated lab. Noise, durations and faults are added by the devices."""

    name: str = "landscape"
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()

    @abstractmethod
    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Outputs for one point; ``values`` are plain numbers in each input's device unit."""

    def choices(self) -> pd.DataFrame | None:
        """For a pool (a finite set of measurable points): the points still available, else None."""
        return None

    def optimum(self) -> dict[str, float] | None:
        """The best value of each output when known (for benchmarks), else None."""
        return None

    def input(self, name: str) -> Input:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    def evaluate_many(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame([self.evaluate(r) for r in frame.to_dict("records")], index=frame.index)


def unit_to_box(landscape: Landscape, values: Mapping[str, Any]) -> np.ndarray:
    """Map a point's continuous inputs to [0, 1] by the landscape's limits (helper for analytic functions)."""
    out = []
    for i in landscape.inputs:
        if i.choices is None:
            out.append((float(values[i.name]) - i.low) / (i.high - i.low))
    return np.array(out)
