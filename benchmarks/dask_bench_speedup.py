"""Speed-up of a benchmark sweep on a local Dask cluster of 2 workers against 1 worker, same seeds.

Runs the same sweep (datasets x planners x seeds, virtual time) three ways: in this process
(the reference), on ``--cluster local:1`` and on ``--cluster local:2``; checks that all three
give the same traces, and reports the wall time of each (cluster start-up included: it is what
a user waits for) and the speed-up of 2 workers over 1. The target of issue 14 is >= 1.6x on
2 cores; on a machine whose cores are busy with other work the figure says so.

Prints a table and writes benchmarks/results/dask_bench_speedup.{json,md}.

    .venv/bin/python benchmarks/dask_bench_speedup.py [--datasets perovskite] [--planners bayesian,random] [--seeds 4] [--budget 30]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, write_results  # noqa: E402


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="perovskite")
    ap.add_argument("--planners", default="bayesian,random")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--name", default="dask_bench_speedup", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()

    from labflow.bench.runner import BenchSpec, run_bench

    spec = BenchSpec(datasets=args.datasets.split(","), planners=args.planners.split(","), seeds=args.seeds, budget=args.budget)
    rows, traces = [], {}
    for how, kwargs in (("one process", {"workers": 1}), ("local:1", {"cluster": "local:1"}), ("local:2", {"cluster": "local:2"})):
        load = load_average()
        t0 = time.perf_counter()
        results = run_bench(spec, **kwargs)
        wall = time.perf_counter() - t0
        traces[how] = [(r.dataset, r.planner, r.seed, r.trace, r.times) for r in results]
        rows.append({"run on": how, "runs": len(results), "wall_s": wall, "sum of run walls_s": sum(r.wall_s for r in results),
                     "load average before": load})
        print(f"{how}: {wall:.1f} s", file=sys.stderr)
    identical = traces["one process"] == traces["local:1"] == traces["local:2"]
    speedup = rows[1]["wall_s"] / rows[2]["wall_s"]
    for r in rows:
        r["speed-up vs local:1"] = rows[1]["wall_s"] / r["wall_s"]
    table = markdown_table(rows, ["run on", "runs", "wall_s", "sum of run walls_s", "speed-up vs local:1", "load average before"])
    table += (f"\n\nSame traces and times in all three: {identical}. Speed-up of local:2 over local:1: {speedup:.2f}x "
              f"(target >= 1.6x on 2 free cores). `load average before` is the 1-minute load when each started: "
              f"above 0 means other processes shared the cores.")
    command = "python benchmarks/dask_bench_speedup.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_results(args.name, {"spec": {"datasets": spec.datasets, "planners": spec.planners, "seeds": spec.seeds, "budget": spec.budget},
                              "rows": rows, "identical": identical, "speedup_local2_over_local1": speedup}, table, command.strip())
    if not identical:
        raise SystemExit("the cluster runs differ from the single-process runs")


if __name__ == "__main__":
    main()
