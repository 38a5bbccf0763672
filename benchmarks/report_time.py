"""How long `labflow report` takes on a 200-experiment campaign, step by step.

A quickstart campaign (simulated materials lab, two stations, 3 parameters) of N experiments
is run first in virtual time (not timed), then reported on three ways:

* ``full, cold cache``: baselines re-run (random and Sobol, 5 seeds each), model refit and
  cross-validation, every figure, the HTML -- what a first ``labflow report FILE`` does;
* ``full, warm cache``: the same again, baselines read from the cache (a second report);
* ``--no-baselines --no-model``: the figures that only read the file.

The campaign is planned by Sobol so that producing it takes seconds; the report's work does
not depend on the planner (the model is refitted from the record either way), only on N and
the number of parameters. Import time of labflow/matplotlib/torch is reported apart.

    .venv/bin/python benchmarks/report_time.py [--n 200] [--file FILE.h5]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="experiments in the campaign")
    parser.add_argument("--file", type=Path, default=None, help="report on this campaign file instead of running one")
    args = parser.parse_args()
    threads = pin_threads()
    work = Path(tempfile.mkdtemp(prefix="labflow-report-time-"))
    os.environ["LABFLOW_CACHE"] = str(work / "cache")  # a cold cache, whatever the user has

    t0 = time.perf_counter()
    import labflow.report  # noqa: F401 - timed: what the CLI pays once
    from labflow.report import build_report
    from labflow.report import figures as _figures  # noqa: F401

    import_s = time.perf_counter() - t0

    path = args.file
    if path is None:
        from labflow.launch import run_recipe
        from labflow.recipe import load_recipe

        recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"})
        t0 = time.perf_counter()
        path = run_recipe(recipe, work / "runs", budget=args.n, seed=0, executor="virtual").path
        print(f"campaign of {args.n} experiments in {time.perf_counter() - t0:.1f} s (not counted)", file=sys.stderr)

    rows, steps = [], {}
    for label, kwargs in (
        ("full, cold cache", {}),
        ("full, warm cache", {}),
        ("--no-baselines --no-model", {"baselines": False, "model": False}),
    ):
        t0 = time.perf_counter()
        rep = build_report(path, work / label.replace(" ", "_").replace(",", "").replace("-", ""), **kwargs)
        wall = time.perf_counter() - t0
        steps[label] = {k: round(v, 3) for k, v in rep.seconds.items()}
        rows.append({
            "report": label,
            "experiments": args.n if args.file is None else "file",
            "figures": len(rep.figures),
            "seconds": round(wall, 2),
            "baselines s": round(rep.seconds.get("baselines", 0.0), 2),
            "model s": round(rep.seconds.get("model fit", 0.0) + rep.seconds.get("model cross-validation", 0.0), 2),
            "figures s": round(sum(v for k, v in rep.seconds.items() if k.startswith("figure")), 2),
        })
    table = markdown_table(rows, ["report", "experiments", "figures", "seconds", "baselines s", "model s", "figures s"])
    table += f"\n\nImports (labflow.report, matplotlib, torch via the planner): {import_s:.2f} s, once per process."
    write_results(
        "report_time",
        {"n": args.n, "threads": threads, "rows": rows, "steps": steps, "import_seconds": round(import_s, 2)},
        table,
        "python benchmarks/report_time.py" + (f" --n {args.n}" if args.n != 200 else "") + (f" --file {args.file}" if args.file else ""),
    )


if __name__ == "__main__":
    main()
