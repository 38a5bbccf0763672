"""Planning where the compute is: the latency a planning step on another work pool adds per suggestion.

Starts a real `prefect server start` (SQLite, its own PREFECT_HOME), a process work pool
`planning` and one `prefect worker start` subprocess, then runs the same small campaign (a
simulated Branin lab, the `virtual` executor, one station, one candidate per suggestion) for each
seed twice: planning here, and planning on the pool (`planner: {where: {pool: planning}}`). It
reports, per suggestion, the wall time the campaign waited for it (the ledger's `latency`) in
both, the difference (the latency added), and for the remote one how it splits: the planning
itself on the worker, and the rest (flow run created, picked up by the worker's next poll, a
Python process started that imports labflow, Prefect and the planner, the answer read back).
It checks that both give the same suggestions for the same seed.

Prints a table and writes benchmarks/results/remote_planning_latency.{json,md}.

    .venv/bin/python benchmarks/remote_planning_latency.py [--seeds 2] [--budget 8] [--planner bayesian] [--worker-poll 1]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, write_results  # noqa: E402

LAB = """\
name: latency-lab
kind: simulated
stations: 1
landscape: {name: branin, noise_std: {y: 0.0}}
durations: {set: 0 s, synthesize: 10 min, measure: 1 min}
"""

RECIPE = """\
name: {name}
lab: latency_lab
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner:
  kind: {planner}
{options}{where}budget: {budget}
seed: {seed}
execution: {{executor: virtual, timeout: 1 min}}
"""

OPTIONS = {"bayesian": "  options: {n_initial: 3, num_restarts: 4, raw_samples: 64}\n"}


def suggestions(h5: Path) -> list[dict]:
    from labflow.store.campaign_dir import find_campaign_dir

    return find_campaign_dir(h5).history().suggestions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--planner", default="bayesian", help="bayesian (GP fits: planning worth shipping) or sobol (no model)")
    ap.add_argument("--worker-poll", type=float, default=1.0, help="PREFECT_WORKER_QUERY_SECONDS of the planning worker (Prefect's default: 15)")
    args = ap.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe
    from labflow.testing.prefect import PrefectServer, PrefectWorker, create_process_pool

    work = Path(tempfile.mkdtemp(prefix="labflow-remote-planning-"))
    (work / "configs").mkdir()
    (work / "configs" / "latency_lab.yaml").write_text(LAB)
    rows, per_step = [], []
    with PrefectServer(work / "server") as server, temporary_settings({PREFECT_API_URL: server.api_url}):
        env = server.env(PYTHONPATH=str(ROOT), PREFECT_WORKER_QUERY_SECONDS=f"{args.worker_poll:g}")
        create_process_pool("planning", env)
        worker = PrefectWorker("planning", "gpu-box", env, work)
        try:
            for seed in range(args.seeds):
                records = {}
                for where in ("here", "planning"):
                    path = work / f"{where}-{seed}.yaml"
                    place = "" if where == "here" else "  where: {pool: planning, timeout: 10 min}\n"
                    path.write_text(RECIPE.format(name=f"latency-{where}", planner=args.planner, options=OPTIONS.get(args.planner, ""),
                                                  where=place, budget=args.budget, seed=seed))
                    outcome = run_recipe(load_recipe(path), work / "results" / f"{where}-{seed}", handle_signals=False)
                    records[where] = suggestions(outcome.path)
                here, there = records["here"], records["planning"]
                same = [[c["params"] for c in a["candidates"]] for a in here] == [[c["params"] for c in b["candidates"]] for b in there]
                for i, (a, b) in enumerate(zip(here, there)):
                    w = b["state"]["last_decision"].get("where") or {}
                    per_step.append({"seed": seed, "suggestion": i, "generator": a["generator"], "local_s": a["latency"],
                                     "remote_s": b["latency"], "added_s": b["latency"] - a["latency"],
                                     "planning_on_worker_s": w.get("planning_seconds"), "computed": w.get("computed")})
                steps = [s for s in per_step if s["seed"] == seed]
                rows.append({
                    "seed": seed, "planner": args.planner, "suggestions": len(steps), "identical suggestions": "yes" if same else "NO",
                    "computed remotely": sum(1 for s in steps if s["computed"] == "remote"),
                    "local median s": statistics.median(s["local_s"] for s in steps),
                    "remote median s": statistics.median(s["remote_s"] for s in steps),
                    "added median s": statistics.median(s["added_s"] for s in steps),
                    "added max s": max(s["added_s"] for s in steps),
                    "first remote s": steps[0]["remote_s"],
                    "planning on worker median s": statistics.median(s["planning_on_worker_s"] or 0.0 for s in steps),
                })
                print(rows[-1], file=sys.stderr)
        finally:
            worker.stop()
    all_added = [s["added_s"] for s in per_step]
    rows.append({"seed": "all", "planner": args.planner, "suggestions": len(per_step),
                 "identical suggestions": "yes" if all(r["identical suggestions"] == "yes" for r in rows) else "NO",
                 "computed remotely": sum(1 for s in per_step if s["computed"] == "remote"),
                 "local median s": statistics.median(s["local_s"] for s in per_step),
                 "remote median s": statistics.median(s["remote_s"] for s in per_step),
                 "added median s": statistics.median(all_added), "added max s": max(all_added),
                 "planning on worker median s": statistics.median(s["planning_on_worker_s"] or 0.0 for s in per_step)})
    table = markdown_table(rows, ["seed", "planner", "suggestions", "identical suggestions", "computed remotely", "local median s",
                                  "remote median s", "added median s", "added max s", "first remote s", "planning on worker median s"])
    table += ("\n\nlocal/remote: the wall time the campaign waited for each suggestion (the ledger's `latency`), planning in the "
              "campaign's process or on a worker of pool `planning` on the same machine (loopback). added: remote minus local, "
              "suggestion by suggestion. planning on worker: the planner's own time there (rebuild from its JSON document + ask). "
              f"The rest is Prefect's: the flow run created, the worker's next poll (PREFECT_WORKER_QUERY_SECONDS={args.worker_poll:g}), "
              "a Python process started for the flow run (imports labflow, Prefect, torch), the state polled every 0.25 s and "
              "the answer artifact read back. first remote: the first suggestion of the seed (the worker's first process).")
    command = "python benchmarks/remote_planning_latency.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_results("remote_planning_latency", {"rows": rows, "steps": per_step, "args": vars(args), "load_average_at_start": load_at_start},
                  table, command.strip(), note=f"Load average (1 min) when it started: {load_at_start}; the machine is shared.")


if __name__ == "__main__":
    main()
