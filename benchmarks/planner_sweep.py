"""Planner configurations against each other on the development pools: the instrument used to choose the default.

Each run is a sequential pool campaign driven through the planner's public ``ask``/``tell``
(``ask(1, choices=unmeasured rows)``), the same calls the campaign loop makes, without the
bluesky loop around them (``labflow bench`` runs that; it measures the same counts, much slower).
A run stops once 80% of the top-5% rows are found or at the budget. Counts are compared with
the exact median of the random reference (negative hypergeometric), as benchmark-definitions.md defines.

Only the five development pools (Liang et al. 2021) are used: nothing here may be tuned elsewhere.

Usage::

    .venv/bin/python benchmarks/planner_sweep.py --configs default,ucb2 --seeds 10 --workers 2 \
        --out benchmarks/results/planner_sweep

Configurations are named in ``CONFIGS`` below (planner options as keyword arguments), or given
inline as JSON: ``--config-json '{"mine": {"acquisition": "ucb", "beta": 1.0}}'``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402

DATASETS = ("crossed_barrel", "p3ht", "agnp", "autoam", "perovskite")

# Every configuration tried is kept here, so that each row of docs/decisions/0005 can be rerun.
CONFIGS: dict[str, dict[str, Any]] = {
    # the default before this sweep (0.1): qLogNEI, RBF-ARD, Sobol targets snapped to rows, d+1 of them
    "legacy": {"acquisition": "qlognei", "initial_design": "sobol", "outcome_transform": "standardize", "kernel": "rbf",
               "refit_every": 1},
    "default": {},  # whatever BayesianPlanner() does today (since decision 0006: pgood_rankdesign_d1)
    # round 1: the acquisition and the initial design (all with refit_every="auto")
    "ucb2_random": {"acquisition": "ucb", "beta": 2.0, "initial_design": "random", "n_initial": 2, "refit_every": "auto"},
    "ts_random": {"acquisition": "ts", "initial_design": "random", "n_initial": 2, "refit_every": "auto"},
    "qlognei_random": {"acquisition": "qlognei", "initial_design": "random", "n_initial": 2, "refit_every": "auto"},
    "ucb2_kcenter": {"acquisition": "ucb", "beta": 2.0, "initial_design": "kcenter", "refit_every": "auto"},
    # round 2: less exploration, and the probability of being in the top 5% (active search)
    "ucb05_random": {"acquisition": "ucb", "beta": 0.5, "initial_design": "random", "n_initial": 2, "refit_every": "auto"},
    "pgood_random": {"acquisition": "pgood", "initial_design": "random", "n_initial": 2, "refit_every": "auto"},
    # round 3: a larger random start (max(4, d + 1) rows, as the legacy Sobol design), the rank warp
    "pgood_random_d1": {"acquisition": "pgood", "initial_design": "random", "refit_every": "auto"},
    "pgood_random_d1_rank": {"acquisition": "pgood", "initial_design": "random", "refit_every": "auto",
                             "outcome_transform": "rank"},
    "pgood_rankdesign_d1": {"acquisition": "pgood", "initial_design": "rank", "refit_every": "auto"},
    "ucb2_random_d1": {"acquisition": "ucb", "beta": 2.0, "initial_design": "random", "refit_every": "auto"},
}


def run_one(dataset: str, config: str, options: dict[str, Any], seed: int, budget: int) -> dict[str, Any]:
    """One sequential pool campaign; returns the pool indices measured, in order."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from labflow.planners import make_planner
    from labflow.records import Observation
    from labflow.sim.datasets import load_dataset

    ds = load_dataset(dataset)
    y = ds.y
    good = set(ds.good_set(0.05).tolist())
    k80 = math.ceil(0.8 * len(good))
    X = ds.X.reset_index(drop=True)
    Xu = ds.space.encode(X)
    planner = make_planner("bayesian", ds.space, [ds.objective], seed=seed, **options)
    free = np.ones(ds.n, dtype=bool)
    trace: list[int] = []
    latency: list[float] = []
    t0 = time.perf_counter()
    while len(trace) < min(budget, ds.n):
        idx = np.flatnonzero(free)
        ts = time.perf_counter()
        (cand,) = planner.ask(1, choices=X.iloc[idx])
        latency.append(time.perf_counter() - ts)
        xu = ds.space.encode([cand.params])[0]
        j = int(idx[np.argmin(np.abs(Xu[idx] - xu).max(axis=1))])
        free[j] = False
        trace.append(j)
        planner.tell(Observation(cand.uid, cand.params, {ds.objective.name: float(y[j])}))
        if len(good.intersection(trace)) >= k80:
            break
    return {"dataset": dataset, "config": config, "seed": seed, "trace": trace,
            "latency_median_s": float(np.median(latency)), "wall_s": time.perf_counter() - t0}


def first_passage(trace: list[int], good: set[int], k: int) -> float:
    found = 0
    for i, j in enumerate(trace, 1):
        found += j in good
        if found >= k:
            return float(i)
    return math.inf


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from labflow.bench.metrics import random_reference_median
    from labflow.sim.datasets import load_dataset

    rows = []
    for (config, dataset) in dict.fromkeys((r["config"], r["dataset"]) for r in runs):
        ds = load_dataset(dataset)
        good = set(ds.good_set(0.05).tolist())
        M, N = len(good), ds.n
        sel = [r for r in runs if r["config"] == config and r["dataset"] == dataset]
        for target, k in (("first", 1), ("80%", math.ceil(0.8 * M))):
            counts = np.array([first_passage(r["trace"], good, k) for r in sel])
            med = float(np.median(counts))
            ref = random_reference_median(N, M, k)
            rows.append({"config": config, "dataset": dataset, "target": target, "median_n": med,
                         "iqr": [float(np.percentile(counts, 25)), float(np.percentile(counts, 75))],
                         "af": ref / med if math.isfinite(med) else None, "bound": "upper" if not math.isfinite(med) else "",
                         "reference_median": ref, "seeds": len(sel),
                         "latency_median_s": float(np.median([r["latency_median_s"] for r in sel]))})
    return rows


def gmeans(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        sel = [r for r in rows if r["config"] == config and r["af"]]
        g = lambda rs: float(np.exp(np.mean(np.log([r["af"] for r in rs])))) if rs else float("nan")  # noqa: E731
        out[config] = {"both": g(sel), "first": g([r for r in sel if r["target"] == "first"]),
                       "80%": g([r for r in sel if r["target"] == "80%"])}
    return out


def markdown(rows: list[dict[str, Any]], gm: dict[str, dict[str, float]]) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    head = "| config | " + " | ".join(f"{d} first / 80%" for d in datasets) + " | gmean first | gmean 80% | gmean both |"
    lines = [head, "|" + " --- |" * (len(datasets) + 4)]
    for config, g in gm.items():
        cells = []
        for d in datasets:
            f = next(r for r in rows if r["config"] == config and r["dataset"] == d and r["target"] == "first")
            e = next(r for r in rows if r["config"] == config and r["dataset"] == d and r["target"] == "80%")
            fmt = lambda r: f"{r['median_n']:g} ({r['af']:.2f})" if r["af"] else f">{r['median_n']}"  # noqa: E731
            cells.append(f"{fmt(f)} / {fmt(e)}")
        lines.append(f"| {config} | " + " | ".join(cells) + f" | {g['first']:.2f} | {g['80%']:.2f} | **{g['both']:.2f}** |")
    return "\n".join(lines)


def summary_table(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]], str]:
    """Every configuration in the journal, one row each; incomplete ones (fewer than 10 seeds or pools) marked."""
    rows = summarize(runs)
    gm = gmeans(rows)
    lines = ["| configuration | options | " + " | ".join(DATASETS) + " | gmean first | gmean 80% | gmean both |",
             "|" + " --- |" * (len(DATASETS) + 5)]
    for config in dict.fromkeys(r["config"] for r in runs):
        cells = []
        for d in DATASETS:
            pair = [r for r in rows if r["config"] == config and r["dataset"] == d]
            if not pair:
                cells.append("-")
                continue
            first, most = (next(r for r in pair if r["target"] == t) for t in ("first", "80%"))
            cells.append(f"{first['median_n']:g} / {most['median_n']:g}" + (f" ({first['seeds']} seeds)" if first["seeds"] < 10 else ""))
        complete = "-" not in cells and all(r["seeds"] >= 10 for r in rows if r["config"] == config)
        g = gm[config]
        tail = f"{g['first']:.2f} | {g['80%']:.2f} | **{g['both']:.2f}**" if complete else "(incomplete) | | "
        options = ", ".join(f"{k}={v}" for k, v in CONFIGS[config].items()) or "(the default)"
        lines.append(f"| `{config}` | {options} | " + " | ".join(cells) + f" | {tail} |")
    return rows, gm, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="default")
    ap.add_argument("--config-json", default=None, help="extra configurations as a JSON object name -> options")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "planner_sweep"))
    ap.add_argument("--summary", action="store_true", help="run nothing: tabulate every configuration in OUT/runs.jsonl")
    args = ap.parse_args()
    configs = dict(CONFIGS)
    if args.config_json:
        configs.update(json.loads(args.config_json))
    names = args.configs.split(",")
    unknown = [n for n in names if n not in configs]
    if unknown:
        ap.error(f"unknown configurations {unknown}; known: {sorted(configs)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "runs.jsonl"
    if args.summary:
        runs = [r for r in map(json.loads, journal.read_text().splitlines()) if CONFIGS.get(r["config"]) == r.get("options")]
        rows, gm, table = summary_table(runs)
        name = f"{out.relative_to(RESULTS) if out.resolve().is_relative_to(RESULTS) else out.name}/summary"
        write_results(name, {"rows": rows, "gmean": gm, "configs": {c: CONFIGS[c] for c in gm}},
                      "Median experiments to the first top-5% row / to 80% of them; AF = exact random median / median.\n\n"
                      + table, command="python benchmarks/planner_sweep.py " + shlex.join(sys.argv[1:]))
        return
    done = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            r = json.loads(line)
            if configs.get(r["config"]) == r.get("options"):
                done[(r["config"], r["dataset"], r["seed"])] = r
    jobs = [(d, c, s) for c in names for d in args.datasets.split(",") for s in range(args.seeds)]
    todo = [j for j in jobs if (j[1], j[0], j[2]) not in done]
    # longest first: Crossed barrel runs are the slow ones
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        futs = [pool.submit(run_one, d, c, configs[c], s, args.budget) for d, c, s in todo]
        for i, fut in enumerate(as_completed(futs), 1):
            r = fut.result()
            r["options"] = configs[r["config"]]
            done[(r["config"], r["dataset"], r["seed"])] = r
            with journal.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"[{i}/{len(todo)}] {r['config']} {r['dataset']} seed {r['seed']}: {len(r['trace'])} exp, "
                  f"{r['wall_s']:.1f} s", flush=True)
    runs = [done[(c, d, s)] for d, c, s in jobs]
    rows = summarize(runs)
    gm = gmeans(rows)
    table = markdown(rows, gm)
    print(table)
    payload = {"rows": rows, "gmean": gm, "configs": {n: configs[n] for n in names}}
    name = f"{out.relative_to(RESULTS) if out.resolve().is_relative_to(RESULTS) else out.name}/sweep_{'_'.join(names)[:80]}"
    write_results(name, payload, "Median experiments to the first top-5% row / to 80% of them (AF = exact random median / "
                  "median).\n\n" + table, command="python benchmarks/planner_sweep.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
