"""Suggestion latency of every planner, and the measurement behind the mixed-space decision.

Two experiments, both with torch and BLAS threads pinned to the machine's cores:

``latency`` (default)
    For each planner and n in {50, 200, 1000} completed observations of a smooth, noisy
    function of d = 6 parameters, the time of one ``ask(1)``:

    * ``cold``: a fresh planner given the n observations (includes a GP fit from scratch:
      what resuming a campaign costs);
    * ``warm``: after one more observation (the GP fit warm-starts from the previous one:
      the steady state of a campaign);
    * ``pool``: warm, choosing among 600 unmeasured points (pool mode).

    Planners: ``bayesian`` (6 reals), ``bayesian-mixed`` (4 reals, an integer, a 3-way
    categorical), ``bayesian-2obj`` (two objectives, qLogNEHVI), ``bayesian-constrained``
    (three fractions summing to 1 among the 6 reals), ``multifidelity`` (5 reals + 2
    fidelities, cost-weighted improvement), ``multifidelity-kg`` (knowledge gradient), and
    the baselines.

``mixed``
    Relaxed one-hot with rounding (``mixed="relax"``) against enumerating the categorical
    combinations (``mixed="enumerate"``, BoTorch's ``optimize_acqf_mixed``) on a mixed
    function whose optimum moves with the category: best value found after a budget, and
    mean suggestion latency, over several seeds.

    .venv/bin/python benchmarks/planner_latency.py                 # latency, n = 50, 200, 1000
    .venv/bin/python benchmarks/planner_latency.py --sizes 50 200  # quicker
    .venv/bin/python benchmarks/planner_latency.py --experiment mixed --seeds 5 --budget 30
    python benchmarks/planner_latency.py --jobs 7   # many cores: cells side by side, each on its own 2 cores

Results: ``benchmarks/results/planner_latency.json`` (and ``planner_latency_mixed.json``),
with a Markdown table beside each.
"""

from __future__ import annotations

import argparse
import statistics
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads, write_results  # noqa: E402

import os  # noqa: E402

# before numpy and torch are imported; LABFLOW_BENCH_THREADS models a smaller machine on a bigger one
THREADS = pin_threads(int(os.environ.get("LABFLOW_BENCH_THREADS", "0")) or None)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from labflow.objectives import Objective  # noqa: E402
from labflow.planners import BASELINES, BayesianPlanner, Fidelity, MultiFidelityPlanner  # noqa: E402
from labflow.planners.base import Planner  # noqa: E402
from labflow.space import Categorical, Integer, Real, Space, SumConstraint  # noqa: E402

D = 6


# -- spaces and a smooth response ---------------------------------------------------------------


def continuous() -> Space:
    return Space([Real(f"x{i}", 0, 1) for i in range(D)])


def mixed() -> Space:
    return Space([*[Real(f"x{i}", 0, 1) for i in range(4)], Integer("k", 0, 10), Categorical("c", ("a", "b", "c"))])


def constrained() -> Space:
    return Space([Real(f"x{i}", 0, 1) for i in range(D)], [SumConstraint(("x0", "x1", "x2"), 1.0)])


def response(space: Space, df: pd.DataFrame, k: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """A smooth function of the unit-cube point (objective ``k``), plus 1 % noise."""
    X = space.encode(df)
    y = np.sin(3 * X + k).sum(axis=1) - 2 * ((X - 0.3 - 0.2 * k) ** 2).sum(axis=1)
    if rng is not None:
        y = y + 0.01 * rng.standard_normal(len(y))
    return y


def history(planner: Planner, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = planner.space.sample(n, seed=rng)
    for k, o in enumerate(planner.objectives):
        df[o.name] = response(planner.space, df, k, rng)
    return df


# -- the planners measured --------------------------------------------------------------------------


def planners() -> dict[str, Callable[[], Planner]]:
    y, y2 = Objective("y"), [Objective("y"), Objective("z")]
    fid = [Fidelity("simulation", 1.0), Fidelity("experiment", 10.0)]
    five = Space([Real(f"x{i}", 0, 1) for i in range(D - 1)])
    out: dict[str, Callable[[], Planner]] = {
        "bayesian": lambda: BayesianPlanner(continuous(), y),
        "bayesian-mixed": lambda: BayesianPlanner(mixed(), y),
        "bayesian-2obj": lambda: BayesianPlanner(continuous(), y2),
        "bayesian-constrained": lambda: BayesianPlanner(constrained(), y),
        "multifidelity": lambda: MultiFidelityPlanner(five, y, fidelities=fid),
        "multifidelity-kg": lambda: MultiFidelityPlanner(five, y, fidelities=fid, acquisition="kg"),
    }
    for name, cls in BASELINES.items():
        out[name] = (lambda c: lambda: c(continuous(), y))(cls)
    return out


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(make: Callable[[], Planner], n: int, rep: int, pool_size: int) -> dict[str, float]:
    planner = make()
    data = history(planner, n + 1, seed=rep)
    planner.observe(data.iloc[:n])
    cold = timed(lambda: planner.ask(1))
    planner.observe(data.iloc[n:])
    warm = timed(lambda: planner.ask(1))
    planner.observe(history(planner, 1, seed=1000 + rep))
    pool = planner.space.sample(pool_size, seed=2000 + rep)
    pooled = timed(lambda: planner.ask(1, choices=pool))
    return {"cold_s": cold, "warm_s": warm, "pool_s": pooled, "generator": planner.last_generator}


def run_latency(sizes: list[int], reps: int, pool_size: int, only: list[str] | None) -> tuple[list[dict[str, Any]], str]:
    rows = []
    for name, make in planners().items():
        if only and name not in only:
            continue
        for n in sizes:
            r = max(1, reps if n < 1000 else 1)
            runs = [measure(make, n, rep, pool_size) for rep in range(r)]
            row = {"planner": name, "n": n, "reps": r, "generator": runs[-1]["generator"]}
            for key in ("cold_s", "warm_s", "pool_s"):
                row[key] = statistics.median(x[key] for x in runs)
            rows.append(row)
            print(f"{name:22s} n={n:5d} cold {row['cold_s']:8.3f} s  warm {row['warm_s']:8.3f} s  pool {row['pool_s']:8.3f} s", file=sys.stderr)
    return rows, markdown_table(rows, ["planner", "n", "reps", "generator", "cold_s", "warm_s", "pool_s"])


# -- mixed spaces: relax and round, or enumerate the categories ------------------------------------

CENTRES = {"a": 0.2, "b": 0.5, "c": 0.8}
BONUS = {"a": 0.0, "b": 0.15, "c": 0.05}


def mixed_objective(df: pd.DataFrame) -> np.ndarray:
    """Four reals, an integer and a 3-way category; the optimum's place depends on the category. Max 0.15."""
    c = df["c"].map(CENTRES).to_numpy()
    X = df[[f"x{i}" for i in range(4)]].to_numpy()
    return (
        -((X[:, 0] - c) ** 2)
        - ((X[:, 1] - 1 + c) ** 2)
        - 0.5 * ((X[:, 2:] - 0.4) ** 2).sum(axis=1)
        - 0.005 * (df["k"].to_numpy() - 7) ** 2
        + df["c"].map(BONUS).to_numpy()
    )


def run_mixed_one(mode: str, seed: int, budget: int) -> list[dict[str, Any]]:
    planner = BayesianPlanner(mixed(), Objective("y"), seed=seed, mixed=mode)
    latencies, fallbacks = [], 0
    for _ in range(budget):
        t = time.perf_counter()
        df = planner.suggest(1)
        if planner.last_generator != "sobol":
            latencies.append(time.perf_counter() - t)
        fallbacks += planner.last_generator == "fallback"
        df["y"] = mixed_objective(df)
        planner.observe(df)
    y = planner.data()["y"].to_numpy()
    run = {
        "mode": mode,
        "seed": seed,
        "best": float(y.max()),
        "regret": float(0.15 - y.max()),
        "best_category_right": planner.best().params["c"] == "b",
        "mean_latency_s": float(np.mean(latencies)),
        "fallbacks": fallbacks,
    }
    print(f"{mode:9s} seed {seed}: regret {run['regret']:.4f}  {run['mean_latency_s']:.3f} s/suggestion", file=sys.stderr)
    return [run]


def summarize_mixed(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    rows = []
    for mode in ("relax", "enumerate"):
        mine = [r for r in runs if r["mode"] == mode]
        rows.append(
            {
                "mode": mode,
                "seeds": len(mine),
                "median_regret": statistics.median(r["regret"] for r in mine),
                "mean_regret": statistics.fmean(r["regret"] for r in mine),
                "right_category": sum(r["best_category_right"] for r in mine),
                "fallbacks": sum(r["fallbacks"] for r in mine),
                "mean_latency_s": statistics.fmean(r["mean_latency_s"] for r in mine),
            }
        )
    table = markdown_table(rows, ["mode", "seeds", "median_regret", "mean_regret", "right_category", "fallbacks", "mean_latency_s"])
    return rows, table


def run_parallel(args: argparse.Namespace, names: list[str]) -> list[dict[str, Any]]:
    """One worker process per planner (or mixed-mode run), each pinned to its own ``THREADS`` cores.

    For a machine with many cores: the cells run side by side without sharing cores, so each
    is timed as if alone on a ``THREADS``-core machine.
    """
    import json
    import subprocess
    import tempfile

    cores = sorted(os.sched_getaffinity(0))
    slots = [cores[i : i + THREADS] for i in range(0, len(cores) - THREADS + 1, THREADS)]
    if len(slots) < 2:
        raise SystemExit(f"--jobs needs at least {2 * THREADS} cores, have {len(cores)}")
    out_dir = Path(os.environ.get("LABFLOW_BENCH_CELLS") or tempfile.mkdtemp(prefix="planner-latency-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    pending = list(names)
    running: list[tuple[subprocess.Popen, list[int], Path]] = []
    rows: list[dict[str, Any]] = []
    free = list(slots)
    deadline = time.monotonic() + args.time_limit if args.time_limit else None
    while pending or running:
        if deadline is not None and time.monotonic() > deadline:
            # out of time: stop the workers, keep the cells they finished (a worker writes its rows after
            # each n), and say which cells are missing -- never assemble a table by hand from the logs
            for proc, _slot, dest in running:
                proc.terminate()
                proc.wait(30)
                done = json.loads(dest.read_text()) if dest.exists() else []
                rows.extend(done)
                args.incomplete.append(f"{dest.stem}: stopped at the time limit after n = {[r['n'] for r in done] or 'none'}")
            args.incomplete.extend(f"{name}: not started before the time limit" for name in pending)
            break
        while pending and free and len(running) < args.jobs:
            name, slot = pending.pop(0), free.pop(0)
            dest = out_dir / f"{name}.json"
            cmd = [sys.executable, __file__, "--experiment", args.experiment, "--worker", name, "--worker-out", str(dest),
                   "--sizes", *map(str, args.sizes), "--reps", str(args.reps), "--pool", str(args.pool), "--budget", str(args.budget)]
            env = {**os.environ, "LABFLOW_BENCH_CORES": ",".join(map(str, slot))}
            running.append((subprocess.Popen(cmd, env=env), slot, dest))
        time.sleep(0.2)
        for proc, slot, dest in list(running):
            if proc.poll() is not None:
                running.remove((proc, slot, dest))
                free.append(slot)
                if proc.returncode != 0:
                    raise SystemExit(f"worker for {dest.stem} failed with exit code {proc.returncode}")
                rows.extend(json.loads(dest.read_text()))
    return rows


def main() -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", choices=("latency", "mixed"), default="latency")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per cell (one at n >= 1000)")
    ap.add_argument("--pool", type=int, default=600, help="pool size for the pool-mode column")
    ap.add_argument("--planners", nargs="*", help="only these planners")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=1, help="run cells in parallel worker processes, each pinned to its own cores")
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="with --jobs: stop after this many seconds and write the cells finished so far, naming the missing ones")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.incomplete = []
    if os.environ.get("LABFLOW_BENCH_CORES"):
        os.sched_setaffinity(0, [int(c) for c in os.environ["LABFLOW_BENCH_CORES"].split(",")])
    if args.worker:  # one cell of a parallel run; rows written as they come, so a timeout keeps what was measured
        if args.experiment == "latency":
            rows = []
            for n in args.sizes:
                rows += run_latency([n], args.reps, args.pool, [args.worker])[0]
                Path(args.worker_out).write_text(json.dumps(rows))
        else:
            mode, seed = args.worker.split(":")
            rows = run_mixed_one(mode, int(seed), args.budget)
        Path(args.worker_out).write_text(json.dumps(rows))
        return
    command = "python benchmarks/planner_latency.py " + shlex.join(sys.argv[1:])
    if args.experiment == "latency":
        if args.jobs > 1:
            names = [n for n in planners() if not args.planners or n in args.planners]
            rows = run_parallel(args, names)
            order = {n: i for i, n in enumerate(planners())}
            rows.sort(key=lambda r: (order[r["planner"]], r["n"]))
            table = markdown_table(rows, ["planner", "n", "reps", "generator", "cold_s", "warm_s", "pool_s"])
        else:
            rows, table = run_latency(args.sizes, args.reps, args.pool, args.planners)
        payload = {"experiment": "latency", "d": D, "threads": THREADS, "pool": args.pool, "rows": rows, "incomplete": args.incomplete}
        note = ("Incomplete (time limit): " + "; ".join(args.incomplete)) if args.incomplete else ""
        write_results("planner_latency", payload, table, command.strip(), note=note)
    else:
        if args.jobs > 1:
            runs = run_parallel(args, [f"{m}:{s}" for m in ("relax", "enumerate") for s in range(args.seeds)])
        else:
            runs = [r for m in ("relax", "enumerate") for s in range(args.seeds) for r in run_mixed_one(m, s, args.budget)]
        rows, table = summarize_mixed(runs)
        payload = {"experiment": "mixed", "threads": THREADS, "rows": rows, "runs": runs}
        write_results("planner_latency_mixed", payload, table, command.strip())


if __name__ == "__main__":
    main()
