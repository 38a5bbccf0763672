"""Benchmark figures (matplotlib, Agg backend: no display needed).

:func:`plot_fraction_found` draws, for one dataset, the fraction of the good set found
against the number of experiments: the median over seeds with an IQR band for every
planner, the exact random expectation ``n/N`` (sampling without replacement finds on
average n/N of any subset) and the oracle ``min(n, M)/M``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402 - before pyplot; benchmarks run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from labflow.bench.metrics import fraction_found, fraction_found_band, good_set  # noqa: E402

__all__ = ["plot_fraction_found"]


def plot_fraction_found(
    traces: Mapping[str, Sequence[Sequence[int]]],
    dataset: Any,
    path: str | os.PathLike[str],
    q: float = 0.05,
    n_max: int | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of the fraction of good materials found vs experiments for every planner.

    Parameters
    ----------
    traces:
        ``{planner: [trace per seed]}`` (pool indices in measurement order).
    dataset:
        A :class:`~labflow.sim.datasets.Dataset` (``name``, ``n``, ``y``, ``objective``).
    path:
        Where to write the PNG (parent folders are created).
    q:
        Good-set fraction.
    n_max:
        Last experiment on the x axis (default: the longest trace).

    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_pool = int(dataset.n)
    good = good_set(dataset.y, q, dataset.objective.direction)
    m = len(good)
    if n_max is None:
        n_max = max((len(t) for runs in traces.values() for t in runs), default=n_pool)
    n = np.arange(1, n_max + 1)

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for planner, runs in traces.items():
        if not runs:
            continue
        med, lo, hi = fraction_found_band(fraction_found(runs, good, n_max))
        (line,) = ax.plot(n, med, lw=1.8, label=f"{planner} (median, {len(runs)} seeds)")
        ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ax.plot(n, np.minimum(n / n_pool, 1.0), "k--", lw=1.2, label="random (exact expectation n/N)")
    ax.plot(n, np.minimum(n, m) / m, ":", color="0.4", lw=1.2, label="oracle")
    ax.set_xlim(1, n_max)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("experiments n (initial design included)")
    ax.set_ylabel(f"fraction of top {100 * q:g}% found (M = {m})")
    ax.set_title(title or f"{dataset.name}: N = {n_pool}, band = IQR over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
