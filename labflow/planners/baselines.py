"""Non-adaptive baselines behind the planner interface: random, Sobol, Latin hypercube, grid, one-factor-at-a-time.

They are what conventional design of experiments would do; benchmarks run them through the
same loop as the Bayesian planner so that overhead counts the same way.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
from scipy.stats import qmc

from labflow.planners.base import Planner
from labflow.space import Categorical, Integer, Real


class _DesignPlanner(Planner):
    """A planner that walks a precomputed, seeded design: each proposal is the next point of it."""

    def _design_point(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        self.last_generator = self.name
        out, index = [], self._asked
        while len(out) < n:
            x = self._design_point(index)
            index += 1
            out.append(x)
        return np.array(out)


class RandomPlanner(Planner):
    """Uniform random points (the primary reference in benchmarks)."""

    name: ClassVar[str] = "random"

    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        self.last_generator = self.name
        return self._rng().random((n, self.space.dim))

    def _propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        self.last_generator = self.name
        return X_choices[self._rng().choice(len(X_choices), size=n, replace=False)]


class SobolPlanner(_DesignPlanner):
    """A scrambled Sobol sequence: space-filling, low discrepancy."""

    name: ClassVar[str] = "sobol"

    def _design_point(self, index: int) -> np.ndarray:
        if not hasattr(self, "_sobol_cache") or self._sobol_cache.shape[0] <= index or self._sobol_seed != self.seed:
            m = max(4, math.ceil(math.log2(index + 1)) + 1)
            sampler = qmc.Sobol(d=self.space.dim, scramble=True, seed=self.seed)
            self._sobol_cache, self._sobol_seed = sampler.random_base2(m), self.seed
        return self._sobol_cache[index]


class LatinHypercubePlanner(_DesignPlanner):
    """Latin hypercube batches: each block of ``block`` points stratifies every dimension."""

    name: ClassVar[str] = "lhs"

    def __init__(self, *args: Any, block: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.block = int(block)

    def settings(self) -> dict[str, Any]:
        return {"block": self.block}

    def _design_point(self, index: int) -> np.ndarray:
        b, i = divmod(index, self.block)
        design = qmc.LatinHypercube(d=self.space.dim, seed=np.random.default_rng([self.seed, b])).random(self.block)
        return design[i]


class GridPlanner(_DesignPlanner):
    """A full-factorial grid (conventional design of experiments), visited in a seeded order.

    ``levels`` per real parameter; integers and categoricals use all their values when few.
    """

    name: ClassVar[str] = "grid"

    def __init__(self, *args: Any, levels: int = 5, shuffle: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.levels = int(levels)
        self.shuffle = bool(shuffle)
        axes = []
        for p in self.space.parameters:
            if isinstance(p, Categorical):
                axes.append([p.to_unit(c) for c in p.choices])
            elif isinstance(p, Integer) and p.high - p.low + 1 <= self.levels:
                axes.append([p.to_unit(v) for v in range(p.low, p.high + 1)])
            else:
                axes.append([[u] for u in np.linspace(0.0, 1.0, self.levels)])
        self._ordered_grid = np.array([np.concatenate(combo) for combo in itertools.product(*axes)])
        self._shuffle_grid()

    def _shuffle_grid(self) -> None:
        grid = self._ordered_grid
        if self.shuffle:
            grid = grid[np.random.default_rng(self.seed).permutation(len(grid))]
        self._grid, self._grid_seed = grid, self.seed

    def settings(self) -> dict[str, Any]:
        return {"levels": self.levels, "shuffle": self.shuffle, "size": int(len(self._grid))}

    def _design_point(self, index: int) -> np.ndarray:
        if self._grid_seed != self.seed:  # the seed came from load_state_dict
            self._shuffle_grid()
        # Past the end of the grid, refine: a fresh, offset grid keeps a conventional design going.
        k, i = divmod(index, len(self._grid))
        if k == 0:
            return self._grid[i]
        rng = np.random.default_rng([self.seed, k])
        return np.clip(self._grid[i] + rng.uniform(-0.5, 0.5, self.space.dim) / self.levels, 0.0, 1.0)


class OneFactorAtATimePlanner(Planner):
    """One-factor-at-a-time from the centre: sweep each factor while the others stay at the best so far.

    Conventional practice, and a strawman when factors interact; never the only baseline.
    """

    name: ClassVar[str] = "ofat"

    def __init__(self, *args: Any, levels: int = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.levels = int(levels)

    def settings(self) -> dict[str, Any]:
        return {"levels": self.levels}

    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        self.last_generator = self.name
        out = []
        for j in range(n):
            index = self._asked + j
            base = self.space.encode([self.space.center()])[0]
            best = self.best()
            if best is not None:
                base = self.space.encode([best.params])[0]
            params = self.space.parameters
            sweep, step = divmod(index, self.levels)
            p = params[sweep % len(params)]
            x = base.copy()
            sl = self.space.column_slice(p.name)
            if isinstance(p, Categorical):
                x[sl] = p.to_unit(p.choices[step % len(p.choices)])
            else:
                x[sl] = [np.linspace(0.0, 1.0, self.levels)[step]]
            out.append(x)
        return np.array(out)


BASELINES = {cls.name: cls for cls in (RandomPlanner, SobolPlanner, LatinHypercubePlanner, GridPlanner, OneFactorAtATimePlanner)}
