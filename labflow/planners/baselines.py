"""Non-adaptive baselines behind the planner interface: random, Sobol, Latin hypercube, grid, one-factor-at-a-time.

They are what conventional design of experiments would do; benchmarks run them through the
same loop as the Bayesian planner so that overhead counts the same way.

Space-filling designs on a pool
-------------------------------
Asked with ``choices`` (a pool of existing rows, as in ``labflow bench``), Sobol and LHS make
their design *over the pool* (``pool_design="rank"``, the default): each input column of the
pool is replaced by its empirical quantile, the mid-rank ``(rank - 1/2) / N`` (ties share
their mean rank), so the rows spread evenly over the unit cube of ranks; the scrambled
Sobol (or LHS) sequence is drawn in that rank space and each design point, in sequence
order, takes the nearest row not yet taken. The result is an ordering of the whole pool
whose every prefix covers it as evenly as the sequence covers the cube, with the pool's own
density: dense regions get as many rows as they hold, and an isolated outlying row is no
likelier to come early than any other. ``pool_design="snap"`` keeps the older behaviour
(design in the parameters' unit cube, snapped to the nearest free row), which over-samples
isolated rows of unevenly sampled pools; see ``docs/decisions/0005-pool-space-filling-baselines.md``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
from scipy.stats import qmc

from labflow.planners.base import Planner
from labflow.space import Categorical, Integer


POOL_DESIGNS = ("rank", "snap")


def pool_ranks(X: np.ndarray) -> np.ndarray:
    """Each column of ``X`` (rows x dims) replaced by its empirical quantile ``(rank - 1/2) / N``, ties averaged.

    >>> pool_ranks(np.array([[0.0], [10.0], [10.0], [11.0]])).ravel().tolist()
    [0.125, 0.5, 0.5, 0.875]
    """
    from scipy.stats import rankdata

    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"pool_ranks needs a non-empty rows x dims array, got shape {X.shape}")
    return (rankdata(X, method="average", axis=0) - 0.5) / len(X)


def match_design_to_rows(design: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Greedy matching: each design point, in order, takes the nearest row (Euclidean) not yet taken.

    Returns row indices, one per design point while rows last (``min(len(design), len(rows))``).
    Ties go to the lower row index, so the result is deterministic.
    """
    design, rows = np.atleast_2d(np.asarray(design, float)), np.atleast_2d(np.asarray(rows, float))
    if design.shape[1] != rows.shape[1]:
        raise ValueError(f"design has {design.shape[1]} dimensions but the rows have {rows.shape[1]}")
    free = np.ones(len(rows), dtype=bool)
    order = []
    for x in design[: len(rows)]:
        d = np.where(free, ((rows - x) ** 2).sum(axis=1), np.inf)
        j = int(np.argmin(d))
        free[j] = False
        order.append(j)
    return np.array(order, dtype=int)


def _row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable keys of rows, equal for rows equal to 1e-9 (``+ 0.0`` folds -0.0 into 0.0)."""
    return [(np.round(x, 9) + 0.0).tobytes() for x in np.asarray(X, dtype=float)]


class _DesignPlanner(Planner):
    """A planner that walks a precomputed, seeded design: each proposal is the next point of it.

    Space-filling designs (``_pool_native = True``) make their design over a pool's rows when
    asked with ``choices`` (see the module docstring); the others snap to the nearest free row.
    """

    _pool_native: ClassVar[bool] = False

    def __init__(self, *args: Any, pool_design: str = "rank", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if pool_design not in POOL_DESIGNS:
            raise ValueError(f"pool_design must be one of {list(POOL_DESIGNS)}, got {pool_design!r}")
        self.pool_design = pool_design

    def settings(self) -> dict[str, Any]:
        return {"pool_design": self.pool_design} if self._pool_native else {}

    def _design_point(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _design_points(self, count: int) -> np.ndarray:
        """The first ``count`` points of the design, in the unit cube."""
        return np.array([self._design_point(i) for i in range(count)])

    def _propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        if not (self._pool_native and self.pool_design == "rank"):
            return super()._propose_from(n, X_pending, X_choices)
        self.last_generator = f"{self.name}-pool"
        order = self._pool_order(X_pending, X_choices)
        free = set(_row_keys(X_choices))
        picked = [x for x, key in zip(order, _row_keys(order)) if key in free][:n]
        if len(picked) < n:  # cannot happen while the design covers the pool; say so if it does
            raise RuntimeError(f"{self.name}: the pool design yielded {len(picked)} free rows, {n} were asked for")
        return np.array(picked)

    def _pool_order(self, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        """The pool's rows (unit cube) in design order, cached while the pool stays the same."""
        cached = getattr(self, "_pool_cache", None)
        keys = _row_keys(X_choices)
        if cached is not None and cached[0] == self.seed and set(keys) <= cached[1]:
            return cached[2]
        pool = np.vstack([X_choices, X_pending, self._X_observed()]) if len(X_pending) or self.n_observations else X_choices
        _, first = np.unique(np.round(pool, 9), axis=0, return_index=True)
        pool = pool[np.sort(first)]
        design = self._design_points(len(pool))
        order = pool[match_design_to_rows(design, pool_ranks(pool))]
        self._pool_cache = (self.seed, set(_row_keys(pool)), order)
        return order

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
    """A scrambled Sobol sequence: space-filling, low discrepancy.

    On a pool (``choices``) the sequence is laid over the pool's rows in rank space
    (``pool_design="rank"``); ``pool_design="snap"`` snaps unit-cube points to the nearest free row.
    """

    name: ClassVar[str] = "sobol"
    _pool_native: ClassVar[bool] = True

    def _design_points(self, count: int) -> np.ndarray:
        sampler = qmc.Sobol(d=self.space.dim, scramble=True, seed=self.seed)
        return sampler.random_base2(max(1, math.ceil(math.log2(max(count, 2)))))[:count]

    def _design_point(self, index: int) -> np.ndarray:
        if not hasattr(self, "_sobol_cache") or self._sobol_cache.shape[0] <= index or self._sobol_seed != self.seed:
            m = max(4, math.ceil(math.log2(index + 1)) + 1)
            sampler = qmc.Sobol(d=self.space.dim, scramble=True, seed=self.seed)
            self._sobol_cache, self._sobol_seed = sampler.random_base2(m), self.seed
        return self._sobol_cache[index]


class LatinHypercubePlanner(_DesignPlanner):
    """Latin hypercube batches: each block of ``block`` points stratifies every dimension.

    On a pool (``choices``) the blocks are laid over the pool's rows in rank space, so each block
    stratifies the pool's empirical quantiles (``pool_design="rank"``); ``"snap"`` snaps instead.
    """

    name: ClassVar[str] = "lhs"
    _pool_native: ClassVar[bool] = True

    def __init__(self, *args: Any, block: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if int(block) < 1:
            raise ValueError(f"block must be a positive number of points, got {block!r}")
        self.block = int(block)

    def settings(self) -> dict[str, Any]:
        return {"block": self.block, **super().settings()}

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
        return {"levels": self.levels, "shuffle": self.shuffle, "size": int(len(self._grid)), **super().settings()}

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
