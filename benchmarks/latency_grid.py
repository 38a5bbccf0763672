"""Suggestion latency of the Bayesian planner against observations n and dimension d.

For each (n, d): a planner is told n observations of a seeded test function on [0, 1]^d, then
asked for one suggestion (cold: the first fit from default hyperparameters), told one more
observation and asked again (warm: the fit starts from the previous hyperparameters, as in a
campaign). Each cell is repeated (``--repeats``, fresh planners, seeds 0, 1, ...) and the median
is reported with every run's time: single shots scatter by a factor of several on a busy machine.
Torch and BLAS threads are pinned to the machine's cores.

    .venv/bin/python benchmarks/latency_grid.py [--sizes 10 50 200 1000] [--dims 2 6 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import statistics  # noqa: E402

from _common import markdown_table, pin_threads, write_results  # noqa: E402


def objective(X: np.ndarray) -> np.ndarray:
    """A smooth, multimodal test function (a shifted Rastrigin-like bowl), larger is better."""
    Z = X - 0.37
    return -(Z**2).sum(axis=1) + 0.1 * np.cos(6 * np.pi * Z).sum(axis=1)


def cell(n: int, d: int, seed: int = 0) -> dict:
    import pandas as pd

    from labflow import Objective, Real, Space
    from labflow.planners import BayesianPlanner

    space = Space([Real(f"x{i}", 0.0, 1.0) for i in range(d)])
    planner = BayesianPlanner(space, [Objective("y")], seed=seed, n_initial=2)
    rng = np.random.default_rng(seed)
    X = rng.random((n + 1, d))
    y = objective(X)
    frame = pd.DataFrame(X, columns=space.names).assign(y=y)
    planner.observe(frame.iloc[:n])
    t0 = time.perf_counter()
    planner.suggest(1)
    cold = time.perf_counter() - t0
    planner.observe(frame.iloc[n:])
    t0 = time.perf_counter()
    planner.suggest(1)
    warm = time.perf_counter() - t0
    return {"n": n, "d": d, "cold_s": cold, "warm_s": warm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200, 1000])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 6, 12])
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell (seeds 0..repeats-1); the median is reported")
    args = ap.parse_args()
    threads = pin_threads()
    rows = []
    cells = [(d, n) for d in args.dims for n in args.sizes]
    cmd = (".venv/bin/python benchmarks/latency_grid.py --sizes " + " ".join(map(str, args.sizes)) + " --dims "
           + " ".join(map(str, args.dims)) + f" --repeats {args.repeats}")
    for k, (d, n) in enumerate(cells):
        runs = [cell(n, d, seed) for seed in range(args.repeats)]
        row = {"n": n, "d": d, "repeats": len(runs),
               "cold_s": statistics.median(r["cold_s"] for r in runs), "warm_s": statistics.median(r["warm_s"] for r in runs),
               "cold_runs_s": [round(r["cold_s"], 4) for r in runs], "warm_runs_s": [round(r["warm_s"], 4) for r in runs]}
        row["warm_faster"] = row["warm_s"] < row["cold_s"]
        rows.append(row)
        print(f"d={d} n={n}: cold {row['cold_s']:.3f} s, warm {row['warm_s']:.3f} s (medians of {len(runs)})", file=sys.stderr)
        missing = [f"d={dd} n={nn}" for dd, nn in cells[k + 1:]]
        # written after every cell, so a run stopped early keeps what it measured and says what it did not
        note = "Medians of the repeats; each run's time is in the JSON (cold_runs_s, warm_runs_s)."
        if missing:
            note += " Not measured yet (the run was stopped or is still going): " + ", ".join(missing) + "."
        table = markdown_table(rows, ["d", "n", "repeats", "cold_s", "warm_s", "warm_faster"])
        write_results("latency_grid", {"threads": threads, "rows": rows, "missing": missing}, table, cmd, note=note)

if __name__ == "__main__":
    main()
