"""Each materials recipe against a Sobol design on its own target, on the simulated lab.

Every campaign runs through the real loop (``labflow.launch.run_recipe``: bluesky plans,
simulated devices, ledger and HDF5 provenance) on the virtual-time executor, so the figures
count what a lab would see: sample faults, batches on two stations, routing by fidelity.

Recipes and targets (medians over seeds; prior data is left out of both arms so that neither
starts ahead):

``perovskite_composition``
    best measured efficiency [%] after ``--budget`` films (the optimum is 24.0 %), and how
    many films failed (sample faults: the phase did not form); Sobol points that break the
    composition constraints are moved to the nearest feasible point (``Planner.ask``), which
    is not uniform on the simplex (record 0003).
``thin_film_two_objectives``
    hypervolume [S/cm x %] of the measured experiments against the recipe's thresholds
    (100 S/cm, 70 %), after each of ``--budget`` experiments (reported at a few checkpoints).
``multifidelity``
    best *experiment* yield [%] (the optimum is 74.05 %) for a cost of ``--cost`` (simulation 1,
    experiment 10): the recipe mixes simulations and experiments (at most ``--mf-budget``
    campaigns steps, truncated at the cost); Sobol spends the whole cost on experiments.

    .venv/bin/python benchmarks/recipes_vs_sobol.py --jobs 2         # 3 seeds: 9 min on 2 busy cores (load 8-10)
    .venv/bin/python benchmarks/recipes_vs_sobol.py --seeds 1 --budget 10 --cost 100 --mf-budget 20   # a quick look
    .venv/bin/python benchmarks/recipes_vs_sobol.py --recipes thin_film_two_objectives --budget 30

Results: ``benchmarks/results/recipes_vs_sobol.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, markdown_table, pin_threads, write_results  # noqa: E402

pin_threads(1)  # one thread per campaign: several share the cores

import numpy as np  # noqa: E402

RECIPES = ROOT / "recipes"
NAMES = ("perovskite_composition", "thin_film_two_objectives", "multifidelity")


def load(name: str, **changes: Any) -> Any:
    from labflow import load_recipe

    recipe = load_recipe(RECIPES / f"{name}.yaml")
    return recipe.replace(prior_data=[], execution={**recipe.to_dict()["execution"], "executor": "virtual"}, **changes)


def run_campaign(recipe: Any) -> Any:
    """Run ``recipe`` on its simulated lab in virtual time; its experiments as a DataFrame."""
    import logging

    from labflow.launch import run_recipe
    from labflow.store import read_campaign

    logging.getLogger("bluesky").setLevel(logging.CRITICAL)  # sample faults are expected: no tracebacks
    out = Path(tempfile.mkdtemp(prefix="labflow-bench-"))
    try:
        outcome = run_recipe(recipe, out, handle_signals=False)
        return read_campaign(outcome.path).experiments
    finally:
        shutil.rmtree(out, ignore_errors=True)


def sobol_variant(recipe: Any) -> Any:
    """The same recipe with a Sobol design; a multi-fidelity recipe keeps its target fidelity only."""
    changes: dict[str, Any] = {"planner": {"kind": "sobol", "batch": recipe.spec.planner.batch}}
    if recipe.fidelity_parameter is not None:
        target = target_fidelity(recipe)
        changes["fidelities"] = [f.model_dump(mode="json") for f in recipe.spec.fidelities if f.name == target]
    return recipe.replace(**changes)


def single_fidelity_variant(recipe: Any, kind: str = "bayesian") -> Any:
    """The multi-fidelity recipe with its target fidelity only, planned by ``kind``."""
    target = target_fidelity(recipe)
    options = {k: v for k, v in recipe.spec.planner.options.items() if k not in ("target", "fidelity_parameter", "fixed_cost", "acquisition", "num_fantasies")}
    return recipe.replace(fidelities=[f.model_dump(mode="json") for f in recipe.spec.fidelities if f.name == target],
                          planner={"kind": kind, "batch": recipe.spec.planner.batch, "options": options})


def target_fidelity(recipe: Any) -> str:
    costs = recipe.fidelity_costs()
    return recipe.spec.planner.options.get("target") or max(costs, key=costs.get)


def best_target_within(exp: Any, objective: str, cost: float, target: str | None, fidelity: str | None) -> float:
    """Best completed value at the target fidelity among the experiments finished within ``cost``."""
    spent = np.cumsum(np.nan_to_num(exp["cost"].to_numpy(dtype=float), nan=0.0))
    ok = (spent <= cost + 1e-9) & (exp["status"] == "completed").to_numpy()
    if fidelity is not None and fidelity in exp:
        ok &= (exp[fidelity].astype(str) == target).to_numpy()
    values = exp[objective].to_numpy(dtype=float)[ok]
    return float(values.max()) if len(values) else float("nan")


def cost_to_reach(exp: Any, objective: str, threshold: float, target: str | None, fidelity: str | None) -> float:
    """Cumulative cost when a completed experiment at the target fidelity first reached ``threshold`` (inf if never)."""
    spent = np.cumsum(np.nan_to_num(exp["cost"].to_numpy(dtype=float), nan=0.0))
    ok = (exp["status"] == "completed").to_numpy() & (exp[objective].to_numpy(dtype=float) >= threshold)
    if fidelity is not None and fidelity in exp:
        ok &= (exp[fidelity].astype(str) == target).to_numpy()
    hits = np.flatnonzero(ok)
    return float(spent[hits[0]]) if len(hits) else float("inf")


# -- one cell: a recipe, an arm, a seed ------------------------------------------------------------
def cell(name: str, arm: str, seed: int, budget: int, cost: float, mf_budget: int) -> dict[str, Any]:
    pin_threads(1)
    t0 = time.perf_counter()
    if name == "multifidelity":
        recipe = load(name, seed=seed)
        recipe = recipe.replace(budget=mf_budget) if arm == "recipe" else sobol_variant(recipe).replace(budget=int(cost // max(recipe.fidelity_costs().values())))
    else:
        recipe = load(name, seed=seed, budget=budget)
        if arm == "sobol":
            recipe = sobol_variant(recipe)
    exp = run_campaign(recipe)
    out: dict[str, Any] = {"recipe": name, "arm": arm, "seed": seed, "experiments": int(len(exp)),
                           "sample_faults": int(exp["sample_fault"].sum()), "seconds": time.perf_counter() - t0}
    if name == "perovskite_composition":
        out["best"] = float(exp.loc[exp["status"] == "completed", "efficiency"].max())
    elif name == "thin_film_two_objectives":
        from labflow.planners.pareto import hypervolume

        Y = exp[["conductivity", "transparency"]].to_numpy(dtype=float)
        done = (exp["status"] == "completed").to_numpy()
        out["hypervolume"] = [hypervolume(Y[:k][done[:k]], np.array([100.0, 70.0])) for k in range(1, len(exp) + 1)]
    else:
        fp = "fidelity" if arm == "recipe" else None
        out["best"] = best_target_within(exp, "product_yield", cost, "experiment", fp)
        out["cost_spent"] = float(np.nansum(exp["cost"].to_numpy(dtype=float)))
        if fp:
            out["experiments_at_target"] = int((exp["fidelity"] == "experiment").sum())
    shown = {k: (v[-1] if isinstance(v, list) else v) for k, v in out.items() if k not in ("recipe", "arm", "seed")}
    print(f"  {name} {arm} seed {seed}: {shown}", file=sys.stderr, flush=True)
    return out


def run_cells(cells: list[tuple], jobs: int) -> list[dict[str, Any]]:
    if jobs <= 1:
        return [cell(*c) for c in cells]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(cell, *zip(*cells)))


def median(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=",".join(NAMES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=20, help="experiments per campaign (perovskite, thin film)")
    ap.add_argument("--cost", type=float, default=200.0, help="cost budget of the multi-fidelity comparison")
    ap.add_argument("--mf-budget", type=int, default=40, help="most campaign steps of the multi-fidelity recipe")
    ap.add_argument("--jobs", type=int, default=1, help="campaigns in parallel (processes, one torch thread each)")
    args = ap.parse_args()
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    cells = [(n, arm, s, args.budget, args.cost, args.mf_budget) for n in names for s in range(args.seeds) for arm in ("recipe", "sobol")]
    t0 = time.perf_counter()
    results = run_cells(cells, args.jobs)
    checkpoints = sorted({k for k in (5, 10, args.budget) if k <= args.budget})
    rows = []
    for n in names:
        for arm in ("recipe", "sobol"):
            mine = [r for r in results if r["recipe"] == n and r["arm"] == arm]
            row: dict[str, Any] = {"recipe": n, "arm": arm, "seeds": len(mine), "median sample faults": median([r["sample_faults"] for r in mine])}
            if n == "thin_film_two_objectives":
                for k in checkpoints:
                    vals = [r["hypervolume"][k - 1] for r in mine if len(r["hypervolume"]) >= k]
                    if vals:
                        row[f"median HV after {k}"] = median(vals)
                row["target"] = "hypervolume vs experiments (ref 100 S/cm, 70 %)"
            elif n == "multifidelity":
                row["median best"] = median([r["best"] for r in mine])
                row["target"] = f"best experiment yield [%] for cost {args.cost:g} (optimum 74.05)"
            else:
                row["median best"] = median([r["best"] for r in mine])
                row["target"] = f"best efficiency [%] after {args.budget} films (optimum 24.0)"
            row["mean s per campaign"] = statistics.mean(r["seconds"] for r in mine)
            rows.append(row)
    columns = ["recipe", "arm", "seeds", "target", "median best", *[f"median HV after {k}" for k in checkpoints],
               "median sample faults", "mean s per campaign"]
    command = "python benchmarks/recipes_vs_sobol.py " + shlex.join(sys.argv[1:])
    write_results("recipes_vs_sobol", {"args": vars(args), "rows": rows, "cells": results, "seconds": time.perf_counter() - t0},
                  markdown_table(rows, columns), command.strip())


if __name__ == "__main__":
    main()
