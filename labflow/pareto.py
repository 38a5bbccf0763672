"""Pareto fronts and hypervolumes, in plain numpy (no torch), for any planner's history.

Every function takes ``Y`` as an ``n x m`` array oriented so that larger is better
(``Planner.train_data()`` gives it that way: minimized objectives are negated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """True for each row of ``Y`` that no other row dominates (>= in every column, > in one).

    Of identical rows, all are kept.
    """
    Y = np.asarray(Y, dtype=float)
    n = len(Y)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated = (Y >= Y[i]).all(axis=1) & (Y > Y[i]).any(axis=1)
        if dominated.any():
            mask[i] = False
    return mask


def infer_reference_point(Y: np.ndarray, scale: float = 0.1) -> np.ndarray:
    """A reference point just worse than the Pareto front's nadir: ``nadir - scale * (ideal - nadir)``.

    Where the front is flat in a column (one point), ``scale * max(|nadir|, 1)`` is used instead.
    BoTorch's ``infer_reference_point`` follows the same rule.
    """
    Y = np.asarray(Y, dtype=float)
    front = Y[pareto_mask(Y)]
    nadir, ideal = front.min(axis=0), front.max(axis=0)
    span = ideal - nadir
    span = np.where(span > 0, span, np.maximum(np.abs(nadir), 1.0))
    return nadir - scale * span


def hypervolume(Y: np.ndarray, ref_point: np.ndarray) -> float:
    """The volume dominated by ``Y`` and bounded below by ``ref_point`` (points not above it count for nothing).

    Exact, by slicing along the last objective (the "hypervolume by slicing objectives"
    recursion); fine for the few objectives and hundreds of points of a lab campaign.
    """
    Y = np.asarray(Y, dtype=float)
    ref = np.asarray(ref_point, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != len(ref):
        raise ValueError(f"Y must be n x {len(ref)}, got shape {Y.shape}")
    Y = Y[(Y > ref).all(axis=1)]
    if len(Y) == 0:
        return 0.0
    return float(_hv(Y[pareto_mask(Y)] - ref))


def reference_point(objectives: Sequence[Any], Y: np.ndarray | None = None,
                    fallback: Callable[[], Mapping[str, float] | None] | Mapping[str, float] | None = None) -> np.ndarray | None:
    """The hypervolume reference point, oriented (larger is better), or None when there is none.

    The objectives' thresholds when every objective has one. Otherwise ``fallback`` when given
    (the whole point: objective name -> value in the objective's own orientation, e.g. a planner's
    ``reference_point``; a callable is called only then), else each objective's threshold or,
    without one, :func:`infer_reference_point` of ``Y`` (oriented outcomes). None when there is
    no value to be had.
    """
    if all(getattr(o, "threshold", None) is not None for o in objectives):
        return np.array([o.sign * float(o.threshold) for o in objectives], dtype=float)
    if fallback is not None:
        ref = fallback() if callable(fallback) else fallback
        if not ref:
            return None
        return np.array([o.sign * float(ref[o.name]) for o in objectives], dtype=float)
    if Y is None or not len(Y):
        return None
    inferred = infer_reference_point(Y)
    return np.array([o.sign * float(o.threshold) if o.threshold is not None else inferred[j] for j, o in enumerate(objectives)],
                    dtype=float)


def hypervolume_trace(Y: np.ndarray, done: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The hypervolume after each row of ``Y`` (oriented, ``n x m``), counting only rows where ``done``."""
    Y = np.asarray(Y, dtype=float)
    out = np.zeros(len(Y))
    seen: list[np.ndarray] = []
    last = 0.0
    for i in range(len(Y)):
        if done[i]:
            seen.append(Y[i])
            last = hypervolume(np.array(seen), ref)
        out[i] = last
    return out


def objective_hypervolume(Y: np.ndarray, objectives: Sequence[Any],
                          fallback: Callable[[], Mapping[str, float] | None] | Mapping[str, float] | None = None) -> float:
    """The hypervolume of a campaign's oriented outcomes ``Y`` (``n x m``), against
    :func:`reference_point` (thresholds, else ``fallback``): NaN without a reference point,
    0 without points. The campaign loop records it after each experiment."""
    ref = reference_point(objectives, fallback=fallback if fallback is not None else {})
    if ref is None:
        return float("nan")
    Y = np.asarray(Y, dtype=float)
    return hypervolume(Y, ref) if Y.size else 0.0


def _hv(Y: np.ndarray) -> float:
    """Hypervolume of points in the positive orthant against the origin (all rows > 0)."""
    m = Y.shape[1]
    if m == 1:
        return float(Y[:, 0].max())
    if m == 2:
        order = np.argsort(-Y[:, 0])
        total, best_y = 0.0, 0.0
        for x, y in Y[order]:
            if y > best_y:
                total += x * (y - best_y)
                best_y = y
        return total
    # slice along the last column: between consecutive levels, the points at or above a level
    levels = np.unique(Y[:, -1])[::-1]
    total = 0.0
    for upper, lower in zip(levels, np.r_[levels[1:], 0.0]):
        above = Y[Y[:, -1] >= upper][:, :-1]
        sub = above[pareto_mask(above)]
        total += _hv(sub) * (upper - lower)
    return total
