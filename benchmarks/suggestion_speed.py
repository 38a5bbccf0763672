"""Steady-state cost of one suggestion (ask + tell) at n observations, d = 6: today's default against the 0.1 one.

A campaign's planner is asked again and again as data arrive, so the figure that matters is the
cost per step averaged over a run of steps, not one warm ask: with ``refit_every="auto"`` most
steps reuse the hyperparameters and some refit them. Each arm starts from the same ``n`` noisy
observations of a smooth function and makes ``--steps`` ask/tell cycles, freely and from a pool
of 600 rows; the arms alternate, repetition by repetition, so a busy machine slows both alike.
Compare the ratio, not the seconds.

    .venv/bin/python benchmarks/suggestion_speed.py --n 200 --steps 20 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads, write_results  # noqa: E402

THREADS = pin_threads()

import numpy as np  # noqa: E402

from labflow.objectives import Objective  # noqa: E402
from labflow.planners import BayesianPlanner  # noqa: E402
from labflow.records import Observation  # noqa: E402
from labflow.space import Real, Space  # noqa: E402

D = 6
ARMS = {
    "default": {},
    "0.1 default": {"acquisition": "qlognei", "initial_design": "sobol", "refit_every": 1},
}


def f(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.sin(3 * X).sum(axis=1) - 2 * ((X - 0.3) ** 2).sum(axis=1) + 0.01 * rng.standard_normal(len(X))


def steady(options: dict, n: int, steps: int, rep: int, pool: bool) -> float:
    """Mean seconds per ask+tell over ``steps`` cycles after ``n`` observations."""
    space = Space([Real(f"x{i}", 0, 1) for i in range(D)])
    rng = np.random.default_rng(rep)
    planner = BayesianPlanner(space, Objective("y"), seed=rep, **options)
    start = space.sample(n, seed=rng)
    start["y"] = f(space.encode(start), rng)
    planner.observe(start)
    choices = space.sample(600, seed=np.random.default_rng(1000 + rep)) if pool else None
    planner.ask(1, choices=choices)  # the first fit after loading data is a resume, not a step
    t0 = time.perf_counter()
    for _ in range(steps):
        (c,) = planner.ask(1, choices=choices)
        y = f(space.encode([c.params]), rng)[0]
        planner.tell(Observation(c.uid, c.params, {"y": float(y)}))
        if choices is not None:
            choices = choices[~(np.abs(space.encode(choices) - space.encode([c.params])).max(axis=1) < 1e-12)]
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.reps):
        for mode in ("free", "pool"):
            for arm, options in ARMS.items():
                s = steady(options, args.n, args.steps, rep, mode == "pool")
                times.setdefault((arm, mode), []).append(s)
                print(f"rep {rep} {mode:4s} {arm:12s} {s:.3f} s/step", file=sys.stderr)
    rows = []
    for mode in ("free", "pool"):
        base = statistics.median(times[("0.1 default", mode)])
        for arm in ARMS:
            med = statistics.median(times[(arm, mode)])
            rows.append({"mode": mode, "arm": arm, "n": args.n, "d": D, "steps": args.steps, "reps": args.reps,
                         "s_per_step": med, "ratio_to_0.1": med / base})
    table = markdown_table(rows, ["mode", "arm", "n", "d", "steps", "reps", "s_per_step", "ratio_to_0.1"])
    write_results("suggestion_speed", {"rows": rows, "threads": THREADS}, table,
                  command="python benchmarks/suggestion_speed.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
