"""The measurements behind the modelling choices of docs/decisions/0003 and their docstrings.

Four experiments, each on seeded data, every timing the median of ``--repeats`` runs:

``warm``
    Fitting a GP (d = 6) to n observations from default hyperparameters (cold), against fitting
    it after one more observation starting from the previous fit's hyperparameters (warm), as
    :mod:`labflow.planners._models` does in a campaign.
``batched``
    Two objectives: one batched two-output ``SingleTaskGP`` against two separate GPs (what
    ``BayesianPlanner`` fits), n = 12 and 200.
``threads``
    One GP fit on 200 points with torch at 1 thread and at 2 (``labflow.report.model.torch_threads``
    runs model views at 1 thread because of this).
``feasibility``
    Sample faults: a square whose right 40 % cracks every film (x1 > 0.6), the optimum on the crack
    line; 20 experiments one at a time, 4 initial, default settings; failures after the initial
    design (out of 16), with the feasibility GP and without, per seed. Counts, not timings.

    .venv/bin/python benchmarks/model_choices.py [--repeats 3] [--sizes 50 200] [--seeds 0 1 2 3]

Results: ``benchmarks/results/model_choices.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, median_seconds, pin_threads, write_results  # noqa: E402

THREADS = pin_threads(int(os.environ.get("LABFLOW_BENCH_THREADS", "0")) or None)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from labflow.objectives import Objective  # noqa: E402
from labflow.planners import BayesianPlanner  # noqa: E402
from labflow.planners import _models as models  # noqa: E402
from labflow.report.model import torch_threads  # noqa: E402
from labflow.space import Real, Space  # noqa: E402

D = 6


def data(n: int, seed: int, outputs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, D))
    Z = X - 0.37
    y = -(Z**2).sum(axis=1) + 0.1 * np.cos(6 * np.pi * Z).sum(axis=1) + 0.01 * rng.standard_normal(n)
    cols = [y, -((X - 0.7) ** 2).sum(axis=1) + 0.01 * rng.standard_normal(n)][:outputs]
    return X, np.stack(cols, axis=1)


def warm_versus_cold(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        X, Y = data(n + 1, seed=n)
        hyper = models.get_hyperparameters(models.fit_gp(X[:n], Y[:n]))
        cold, cold_runs = median_seconds(lambda: models.fit_gp(X[:n], Y[:n]), repeats)
        warm, warm_runs = median_seconds(lambda: models.fit_gp(X, Y, warm_start=hyper), repeats)
        rows.append({"experiment": "warm", "n": n, "cold_s": cold, "warm_s": warm, "cold_runs_s": cold_runs, "warm_runs_s": warm_runs})
        print(f"warm/cold n={n}: cold {cold:.3f} s, warm {warm:.3f} s", file=sys.stderr)
    return rows


def batched_versus_separate(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        X, Y = data(n, seed=n, outputs=2)
        batched, batched_runs = median_seconds(lambda: models.fit_gp(X, Y), repeats)
        separate, separate_runs = median_seconds(lambda: [models.fit_gp(X, Y[:, j : j + 1]) for j in range(2)], repeats)
        rows.append({"experiment": "batched", "n": n, "batched_s": batched, "separate_s": separate,
                     "batched_runs_s": batched_runs, "separate_runs_s": separate_runs})
        print(f"batched/separate n={n}: batched {batched:.3f} s, separate {separate:.3f} s", file=sys.stderr)
    return rows


def threads(repeats: int, n: int = 200) -> list[dict[str, Any]]:
    X, Y = data(n, seed=7)
    out = {"experiment": "threads", "n": n}
    for k in (1, 2):
        with torch_threads(k):
            out[f"threads_{k}_s"], out[f"threads_{k}_runs_s"] = median_seconds(lambda: models.fit_gp(X, Y), repeats)
    print(f"threads n={n}: 1 thread {out['threads_1_s']:.3f} s, 2 threads {out['threads_2_s']:.3f} s", file=sys.stderr)
    return [out]


def cracks(x1: float) -> bool:
    return x1 > 0.6


def feasibility(seeds: list[int], budget: int = 20, n_initial: int = 4) -> list[dict[str, Any]]:
    space = Space([Real("x1", 0.0, 1.0), Real("x2", 0.0, 1.0)])
    rows = []
    for with_gp in (True, False):
        failures = {}
        for seed in seeds:
            planner = BayesianPlanner(space, Objective("y"), seed=seed, n_initial=n_initial, feasibility=with_gp)
            failed = 0
            for i in range(budget):
                row = planner.suggest(1).iloc[0].to_dict()
                if cracks(row["x1"]):
                    failed += i >= n_initial
                    planner.observe(pd.DataFrame([{**row, "y": np.nan, "status": "failed", "reason": "film cracked",
                                                   "sample_fault": True}]))
                else:
                    y = -((row["x1"] - 0.6) ** 2) - (row["x2"] - 0.5) ** 2  # the optimum sits on the crack line
                    planner.observe(pd.DataFrame([{**row, "y": y}]))
            failures[seed] = failed
            print(f"feasibility GP {'on ' if with_gp else 'off'} seed {seed}: {failed} of {budget - n_initial} failed", file=sys.stderr)
        rows.append({"experiment": "feasibility", "feasibility_gp": with_gp, **{f"seed_{s}": f for s, f in failures.items()},
                     "mean": float(np.mean(list(failures.values()))), "out_of": budget - n_initial})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--only", nargs="*", choices=("warm", "batched", "threads", "feasibility"))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    todo = args.only or ["warm", "batched", "threads", "feasibility"]
    rows: list[dict[str, Any]] = []
    tables = []
    if "warm" in todo:
        part = warm_versus_cold(args.sizes, args.repeats)
        rows += part
        tables.append("## Warm-started against cold GP fits (d = 6, seconds, medians)\n\n" + markdown_table(part, ["n", "cold_s", "warm_s"]))
    if "batched" in todo:
        part = batched_versus_separate([12, *args.sizes[-1:]], args.repeats)
        rows += part
        tables.append("## One batched two-output GP against two GPs (d = 6, seconds, medians)\n\n" + markdown_table(part, ["n", "batched_s", "separate_s"]))
    if "threads" in todo:
        part = threads(args.repeats)
        rows += part
        tables.append("## One GP fit on 200 points at 1 and 2 torch threads (seconds, medians)\n\n" + markdown_table(part, ["n", "threads_1_s", "threads_2_s"]))
    if "feasibility" in todo:
        part = feasibility(args.seeds)
        rows += part
        cols = ["feasibility_gp", *[f"seed_{s}" for s in args.seeds], "mean", "out_of"]
        tables.append("## Failures after the initial design (out of 16), with and without the feasibility GP\n\n" + markdown_table(part, cols))
    command = "python benchmarks/model_choices.py " + shlex.join(sys.argv[1:])
    write_results("model_choices", {"d": D, "threads": THREADS, "repeats": args.repeats, "rows": rows}, "\n\n".join(tables), command.strip(),
                  note="Timings on the shared 2-core development machine while other work ran (see the load average): "
                       "compare the columns of one table, measured side by side, not the absolute seconds.")


if __name__ == "__main__":
    main()
