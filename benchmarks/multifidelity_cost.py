"""The multi-fidelity recipe's cost to reach its target, against the single-fidelity planner's.

Target: a measured *experiment* yield of at least ``--target`` % (default 70; the optimum is
74.05 %). Arms, all through the real loop on the simulated lab in virtual time, each stopped by
the same cost budget (``--cost``, default 200: ``budget: {cost: 200}``):

* ``multifidelity``: ``recipes/multifidelity.yaml`` as shipped: simulations cost 1 (two
  simulation stations), experiments cost 10 (one station), the planner chooses
  (``--mf-options '{"acquisition": "handover"}'`` tries another acquisition);
* ``single-fidelity``: the same recipe with the experiment fidelity only and the Bayesian
  planner (qLogNEI) with the same options: every step is an experiment at cost 10;
* ``sobol``: the experiment fidelity only, a scrambled Sobol design.

The cost to target is the cumulative cost of the experiments finished when the first one
reached the target (in completion order); a campaign that never reached it is censored at
what it spent ("> cost"), and the medians count it as infinite. "wins" counts the seeds in
which the multi-fidelity arm reached the target for less than the other arm (a seed where
both miss is no win).

    .venv/bin/python benchmarks/multifidelity_cost.py --seeds 10 --jobs 2 --mf-options '{"acquisition": "handover"}'
    .venv/bin/python benchmarks/multifidelity_cost.py --seeds 10 --jobs 2 --arms multifidelity   # the recipe as shipped

Results: ``benchmarks/results/multifidelity_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads, write_results  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
from recipes_vs_sobol import cost_to_reach, load, run_campaign, single_fidelity_variant, sobol_variant  # noqa: E402


def cell(arm: str, seed: int, target: float, cost: float, options: str = "{}") -> dict[str, Any]:
    import json

    pin_threads(1)
    t0 = time.perf_counter()
    recipe = load("multifidelity", seed=seed)
    budget = {"experiments": 100_000, "cost": cost}
    if arm == "multifidelity":
        planner = recipe.to_dict()["planner"]
        planner["options"] = {**planner["options"], **json.loads(options)}
        recipe = recipe.replace(budget=budget, planner=planner)
        fp = "fidelity"
    elif arm == "single-fidelity":
        recipe = single_fidelity_variant(recipe).replace(budget=budget)
        fp = None
    else:  # a Sobol design of experiments at the target fidelity
        recipe = sobol_variant(recipe).replace(budget=budget)
        fp = None
    exp = run_campaign(recipe)
    spent = float(np.nansum(exp["cost"].to_numpy(dtype=float)))
    cost = cost_to_reach(exp, "product_yield", target, "experiment", fp)
    at_target = exp if fp is None else exp[exp["fidelity"] == "experiment"]
    out = {"arm": arm, "seed": seed, "cost_to_target": cost, "spent": spent, "reached": cost != float("inf"),
           "experiments": int(len(at_target)), "simulations": int(len(exp) - len(at_target)),
           "best": float(at_target.loc[at_target["status"] == "completed", "product_yield"].max()),
           "seconds": time.perf_counter() - t0}
    print(f"  {arm} seed {seed}: {({k: v for k, v in out.items() if k not in ('arm', 'seed')})}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--target", type=float, default=70.0, help="experiment yield to reach [%%]")
    ap.add_argument("--cost", type=float, default=200.0, help="cost budget of every campaign (simulation 1, experiment 10)")
    ap.add_argument("--arms", default="multifidelity,single-fidelity,sobol")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--mf-options", default="{}", help='JSON merged into the multi-fidelity planner options, e.g. \'{"fixed_cost": 4}\'')
    args = ap.parse_args()
    arms = args.arms.split(",")
    cells = [(arm, s, args.target, args.cost, args.mf_options) for arm in arms for s in range(args.seeds)]  # the longest first
    t0 = time.perf_counter()
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(cell, *zip(*cells)))
    else:
        results = [cell(*c) for c in cells]
    rows = []
    by_seed = {(r["arm"], r["seed"]): r["cost_to_target"] for r in results}
    for arm in arms:
        mine = [r for r in results if r["arm"] == arm]
        costs = [r["cost_to_target"] for r in mine]
        med = statistics.median(costs)
        rows.append({
            "arm": arm,
            "seeds": len(mine),
            "reached": f"{sum(r['reached'] for r in mine)}/{len(mine)}",
            "median cost to target": med if med != float("inf") else "not reached",
            "per seed": ", ".join(f"{c:g}" if c != float("inf") else f">{r['spent']:g}" for c, r in zip(costs, mine)),
            "median experiments run": statistics.median(r["experiments"] for r in mine),
            "median simulations run": statistics.median(r["simulations"] for r in mine),
            "median best yield": statistics.median(r["best"] for r in mine),
            "mean s per campaign": statistics.mean(r["seconds"] for r in mine),
            "multifidelity wins": "" if arm == "multifidelity" or "multifidelity" not in arms else
            f"{sum(by_seed[('multifidelity', r['seed'])] < r['cost_to_target'] for r in mine)}/{len(mine)}",
        })
    columns = list(rows[0])
    command = "python benchmarks/multifidelity_cost.py " + shlex.join(sys.argv[1:])
    write_results("multifidelity_cost", {"args": vars(args), "rows": rows, "cells": results, "seconds": time.perf_counter() - t0},
                  markdown_table(rows, columns), command.strip())


if __name__ == "__main__":
    main()
