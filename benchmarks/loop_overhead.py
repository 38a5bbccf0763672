"""Orchestration overhead per experiment, with an instant simulated lab.

Compares, in one run and on the same devices and plan:

* ``bare RunEngine``: a bluesky RunEngine running ``run_experiment`` back to back (the floor);
* ``labflow local``: the campaign loop with a random planner, provenance file, thread executor;
* ``labflow prefect``: the same loop with each experiment a Prefect task (ephemeral server,
  started before timing);
* ``labflow virtual``: the discrete-event executor.

The planner is random so that planning time is not counted; the figure is the loop's own cost.

    .venv/bin/python benchmarks/loop_overhead.py [--n 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, markdown_table, pin_threads, write_results  # noqa: E402

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="labflow-bench-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def bare_runengine(recipe, n: int) -> float:
    from bluesky import RunEngine

    from labflow.plans import run_experiment

    lab = recipe.lab_config.build(seed=0, time_scale=0.0)
    station = lab.stations[0]
    RE = RunEngine({}, context_managers=[])
    points = recipe.space.sample(n, seed=0)
    t0 = time.perf_counter()
    for row in points.to_dict("records"):
        RE(run_experiment(station, recipe.space.to_quantities(row), {"campaign": "bare"}))
    dt = time.perf_counter() - t0
    lab.close()
    return dt / n


def labflow_loop(recipe, n: int, executor: str, out: Path) -> float:
    from labflow.launch import run_recipe

    t0 = time.perf_counter()
    run_recipe(recipe.replace(budget=n), out / executor, executor=executor, time_scale=0.0)
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="experiments per arm")
    args = parser.parse_args()
    pin_threads()
    from labflow.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "random"})
    one_station = recipe  # the sim lab has two stations; the loop keeps both busy
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # Warm-ups (imports, the Prefect server's start) are not timed.
        bare_runengine(recipe, 3)
        labflow_loop(one_station, 2, "local", out / "warm")
        labflow_loop(one_station, 2, "prefect", out / "warm")
        bare = bare_runengine(recipe, args.n)
        rows = [{"arm": "bare RunEngine", "ms_per_experiment": bare * 1e3, "ratio_to_bare": 1.0}]
        for executor in ("local", "virtual", "prefect"):
            per = labflow_loop(one_station, args.n, executor, out)
            rows.append({"arm": f"labflow {executor}", "ms_per_experiment": per * 1e3, "ratio_to_bare": per / bare})
    for r in rows:
        r["overhead_ms"] = r["ms_per_experiment"] - bare * 1e3
    table = markdown_table(rows, ["arm", "ms_per_experiment", "overhead_ms", "ratio_to_bare"])
    write_results("loop_overhead", {"n": args.n, "rows": rows}, table,
                  f".venv/bin/python benchmarks/loop_overhead.py --n {args.n}")


if __name__ == "__main__":
    main()
