"""A dataset as the lab: each pool point can be measured once.

:class:`PoolLandscape` answers a proposed point with the measured value of the nearest pool
point not yet measured, then marks that point measured. It is the "pool-based setting" of
``docs/reference/benchmark-definitions.md``: the lab only knows the N points that were really made.

Theory of operation
-------------------
* **Distance.** Real and integer inputs are scaled to ``[0, 1]`` by the space's bounds
  (min-max); the distance is Euclidean in that cube. Categorical inputs must match: a
  proposal is answered by an unmeasured point with the fewest categorical mismatches first
  (normally zero), and only then by distance. Ties go to the lowest pool index, so answers
  are deterministic.
* **Exact proposals.** A proposal that is exactly an unmeasured pool point (as planners
  produce when they score :meth:`PoolLandscape.choices` directly) is at distance 0 and gets
  that point.
* **Once only.** A measured point is never answered again; when every point has been
  measured, :class:`PoolExhaustedError` is raised.
* **Records.** :attr:`PoolLandscape.trace` lists the pool index that answered each call, in
  call order (the input of :mod:`labflow.bench.metrics`); :attr:`PoolLandscape.log` adds the
  distance between proposal and answer, which shows how far a planner's proposals were
  snapped.
* **Threads.** One lock guards choosing and marking, so simulated stations that share the
  pool from several threads never receive the same point.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labflow.errors import LabflowError, SpaceError
from labflow.sim.base import Input, Landscape, Output
from labflow.sim.datasets import Dataset
from labflow.space import Categorical, Integer
from labflow.units import convert

__all__ = ["PoolAnswer", "PoolExhaustedError", "PoolLandscape"]


class PoolExhaustedError(LabflowError, RuntimeError):
    """Every point of a pool has been measured: there is nothing left to answer with."""


@dataclass(frozen=True)
class PoolAnswer:
    """One answered call: the pool index that answered and its distance from the proposal (unit cube)."""

    call: int
    pool_index: int
    distance: float
    mismatches: int = 0


class PoolLandscape(Landscape):
    """A :class:`~labflow.sim.datasets.Dataset` served as a lab in which each point is measured once.

    Parameters
    ----------
    dataset:
        The pool (see :func:`labflow.sim.datasets.load_dataset`).
    measured:
        Pool indices already measured before the campaign starts (optional).
    """

    def __init__(self, dataset: Dataset, measured: Any = ()) -> None:
        self.dataset = dataset
        self.name = dataset.name
        self._space = dataset.space
        self.inputs = tuple(self._input(p) for p in dataset.space.parameters)
        obj = dataset.objective
        self.outputs = (Output(obj.name, obj.unit, obj.direction),)
        self._values = dataset.y.copy()
        self._X = dataset.X.reset_index(drop=True)
        # continuous/integer coordinates in the unit cube; categoricals as integer codes
        self._num_names = [p.name for p in self._space if not isinstance(p, Categorical)]
        self._cat_names = [p.name for p in self._space if isinstance(p, Categorical)]
        self._lo = np.array([self._space[n].low for n in self._num_names], dtype=float)
        self._span = np.array([self._space[n].high - self._space[n].low for n in self._num_names], dtype=float)
        self._U = (self._X[self._num_names].to_numpy(dtype=float) - self._lo) / self._span if self._num_names else np.zeros((len(self._X), 0))
        self._C = self._X[self._cat_names].astype(str).to_numpy() if self._cat_names else np.empty((len(self._X), 0), dtype=object)
        self._lock = threading.Lock()
        self._free = np.ones(len(self._X), dtype=bool)
        self._log: list[PoolAnswer] = []
        for i in measured:
            self._free[int(i)] = False

    @staticmethod
    def _input(p: Any) -> Input:
        if isinstance(p, Categorical):
            return Input(p.name, choices=p.choices)
        return Input(p.name, float(p.low), float(p.high), p.unit, integer=isinstance(p, Integer))

    # -- Landscape -------------------------------------------------------------------
    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Measure the nearest unmeasured pool point to ``values`` (numbers in the inputs' units)."""
        return {self.outputs[0].name: self.measure(values)[1]}

    def choices(self) -> pd.DataFrame:
        """The unmeasured pool points (parameter columns only), indexed by pool index."""
        with self._lock:
            free = self._free.copy()
        out = self._X[free].copy()
        out.index = pd.Index(np.flatnonzero(free), name="pool_index")
        return out

    def optimum(self) -> dict[str, float]:
        return {self.outputs[0].name: self.dataset.best_value()}

    # -- pool-specific ----------------------------------------------------------------
    def measure(self, values: Mapping[str, Any]) -> tuple[int, float]:
        """Like :meth:`evaluate`, returning ``(pool_index, value)``."""
        u, cats = self._encode(values)
        with self._lock:
            if not self._free.any():
                raise PoolExhaustedError(
                    f"pool {self.name!r}: all {len(self._free)} points have been measured",
                    hint="stop the campaign at the pool size, or call reset() to start a new run",
                )
            mism = (self._C != cats).sum(axis=1) if self._cat_names else np.zeros(len(self._free), dtype=int)
            dist = np.sqrt(((self._U - u) ** 2).sum(axis=1)) if self._num_names else np.zeros(len(self._free))
            big = np.iinfo(np.int64).max
            key_m = np.where(self._free, mism, big)
            best_m = key_m.min()
            d = np.where(self._free & (mism == best_m), dist, np.inf)
            j = int(np.argmin(d))  # first index on ties
            self._free[j] = False
            self._log.append(PoolAnswer(len(self._log), j, float(d[j]), int(best_m)))
        return j, float(self._values[j])

    def _encode(self, values: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        u = np.empty(len(self._num_names))
        for k, name in enumerate(self._num_names):
            if name not in values:
                raise SpaceError(f"pool {self.name!r}: proposal lacks input {name!r}", hint=f"expected {self._space.names}")
            raw = values[name]
            v = float(raw) if isinstance(raw, (int, float, np.number)) else convert(raw, self._space[name].unit)
            if not math.isfinite(v):
                raise SpaceError(f"pool {self.name!r}: {name} = {v} is not finite")
            u[k] = (v - self._lo[k]) / self._span[k]
        cats = np.empty(len(self._cat_names), dtype=object)
        for k, name in enumerate(self._cat_names):
            if name not in values:
                raise SpaceError(f"pool {self.name!r}: proposal lacks input {name!r}", hint=f"expected {self._space.names}")
            cats[k] = str(values[name])
        return u, cats

    @property
    def trace(self) -> list[int]:
        """Pool indices in the order they answered (initial design included)."""
        with self._lock:
            return [a.pool_index for a in self._log]

    @property
    def log(self) -> list[PoolAnswer]:
        with self._lock:
            return list(self._log)

    @property
    def n_measured(self) -> int:
        with self._lock:
            return int((~self._free).sum())

    @property
    def n_remaining(self) -> int:
        with self._lock:
            return int(self._free.sum())

    def is_measured(self, pool_index: int) -> bool:
        with self._lock:
            return not bool(self._free[pool_index])

    def reset(self) -> None:
        """Forget every measurement (a fresh run on the same pool)."""
        with self._lock:
            self._free[:] = True
            self._log.clear()

    def good_set(self, q: float = 0.05) -> np.ndarray:
        """The dataset's good set (top ``ceil(q*N)`` pool indices)."""
        return self.dataset.good_set(q)

    def __repr__(self) -> str:
        return f"PoolLandscape({self.name!r}, N={len(self._free)}, measured={self.n_measured})"
