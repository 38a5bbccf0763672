"""Orchestration overhead per experiment, with an instant simulated lab.

Compares, in one run and on the same devices and plan:

* ``bare RunEngine``: the floor: on every station of the lab (as many as the labflow arms use),
  a bluesky RunEngine of its own, in a thread of its own, running ``run_experiment`` back to
  back (the experiments shared round-robin over the stations);
* ``labflow local``: the campaign loop with a random planner, provenance file, thread executor;
* ``labflow prefect``: the same loop with each experiment a Prefect task, against one Prefect API
  server started before timing (as on a facility server, ``PREFECT_API_URL``). Without that
  setting each campaign starts and stops a server of its own
  (:func:`labflow.executors.prefect_server.campaign_api`): a fixed cost per campaign, not per
  experiment, reported on its own row (``prefect: per-campaign server``, seconds);
* ``labflow virtual``: the discrete-event executor. It runs the stations' experiments one after
  another in the campaign's thread (that is what makes its traces deterministic), so its floor
  is the bare RunEngines run one after another (``bare RunEngine ... one after another``); the
  local and Prefect arms run the stations concurrently and are compared with the threaded floor.

The planner is random so that planning time is not counted; the figure is the loop's own cost.

With ``--big N`` it also runs one N-experiment campaign in virtual time (random planner, instant
simulated lab) against the bare RunEngine doing the same N runs, and reports the wall time and
the resident memory after 1,000 and after N experiments; ``--profile`` prints the top entries of
a cProfile of the local arm.

Every arm reports wall time and the CPU time of this process (all its threads) per experiment.
Wall time is the figure that matters in a lab; CPU time is the one to compare on a shared,
loaded machine, where wall time also measures the neighbours. The Prefect arm's server runs in
another process, so its CPU is not counted there.

    .venv/bin/python benchmarks/loop_overhead.py [--n 100] [--big 10000] [--profile]
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
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # a loaded machine starts it slowly


def bare_runengine(recipe, n: int, *, threads: bool = True) -> tuple[float, float]:
    """Seconds per experiment of bare RunEngines, one per station of the lab, on ``n`` points shared
    round-robin; each station's RunEngine runs in its own thread (``threads``), as labflow's do.
    Returns (wall seconds, CPU seconds of this process) per experiment."""
    import threading

    from bluesky import RunEngine

    from labflow.plans import run_experiment

    lab = recipe.lab_config.build(seed=0, time_scale=0.0)
    stations = list(lab.stations)
    engines = [RunEngine({}, context_managers=[]) for _ in stations]
    rows = recipe.space.sample(n, seed=0).to_dict("records")
    params = [recipe.space.to_quantities(row) for row in rows]

    def work(i: int) -> None:
        for p in params[i::len(stations)]:
            engines[i](run_experiment(stations[i], p, {"campaign": "bare"}))

    t0, c0 = time.perf_counter(), time.process_time()
    if threads:
        workers = [threading.Thread(target=work, args=(i,)) for i in range(len(stations))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    else:
        for i in range(len(stations)):
            work(i)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    lab.close()
    return dt / n, cpu / n


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def big_campaign(recipe, n: int, out: Path) -> dict:
    """An ``n``-experiment virtual-time campaign: wall time, and RSS after 1,000 and after ``n``."""
    from labflow.launch import run_recipe

    marks: dict[str, float] = {}

    def listener(event: str, state) -> None:
        if event == "finished" and state.finished in (1000, n):
            marks[f"rss_mb_at_{state.finished}"] = rss_mb()
            marks[f"s_at_{state.finished}"] = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    run_recipe(recipe.replace(budget=n), out / "big", executor="virtual", time_scale=0.0, listeners=[listener], handle_signals=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    bare, bare_cpu = (x * n for x in bare_runengine(recipe, n, threads=False))
    return {"n": n, "wall_s": wall, "bare_runengine_s": bare, "ratio_to_bare": wall / bare,
            "cpu_s": cpu, "bare_cpu_s": bare_cpu, "cpu_ratio_to_bare": cpu / bare_cpu, **marks}


def profile_local(recipe, n: int, out: Path, top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    labflow_loop(recipe, n, "local", out / "profiled")
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def cpu_parts(recipe, n: int, out: Path) -> dict[str, float]:
    """CPU milliseconds per experiment of a virtual-time campaign, in total and in the parts the
    profile pointed at (each measured with its own thread's CPU clock, whatever thread runs it)."""
    import collections

    from labflow.campaign import loop, proposer
    from labflow.launch import run_recipe
    from labflow.store import ledger, provenance

    spent: collections.Counter = collections.Counter()
    table_write = "extend" if hasattr(provenance._Table, "extend") else "append"  # before batching: a row at a time
    parts = [(provenance.ProvenanceWriter, "_write_run", "HDF5 run groups"), (provenance._Table, table_write, "HDF5 tables"),
             (provenance.ProvenanceWriter, "__call__", "HDF5 writer: document callback"), (ledger.Ledger, "append", "ledger append"),
             (proposer.Proposer, "ask", "planner ask"), (loop.Campaign, "snapshot", "snapshot")]
    originals = []
    for owner, name, label in parts:
        if not hasattr(owner, name):
            continue
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(self, *args, _f=original, _label=label, **kwargs):
            t0 = time.thread_time()
            try:
                return _f(self, *args, **kwargs)
            finally:
                spent[_label] += time.thread_time() - t0

        setattr(owner, name, timed)
    try:
        c0 = time.process_time()
        run_recipe(recipe.replace(budget=n), out / "parts", executor="virtual", time_scale=0.0, handle_signals=False)
        total = time.process_time() - c0
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    return {"total CPU": total / n * 1e3, **{k: v / n * 1e3 for k, v in spent.most_common()}}


def labflow_loop(recipe, n: int, executor: str, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per experiment of a labflow campaign."""
    from labflow.launch import run_recipe

    t0, c0 = time.perf_counter(), time.process_time()
    run_recipe(recipe.replace(budget=n), out / executor, executor=executor, time_scale=0.0, handle_signals=False)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="experiments per arm")
    parser.add_argument("--big", type=int, default=0, help="also run one campaign of this many experiments in virtual time")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the local arm")
    parser.add_argument("--arms", default="local,virtual,prefect", help="labflow executors to time")
    parser.add_argument("--parts", type=int, default=0, metavar="N",
                        help="only: CPU ms per experiment of an N-experiment virtual campaign, in total and by part, beside the bare RunEngine's")
    args = parser.parse_args()
    pin_threads()
    from labflow.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "random"})
    if args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            bare_runengine(recipe, 3)
            parts = cpu_parts(recipe, 2, Path(tmp) / "warm")  # imports and first-call costs are not counted
            bare_cpu = bare_runengine(recipe, args.parts)[1] * 1e3
            parts = cpu_parts(recipe, args.parts, Path(tmp))
        rows = [{"part": "bare RunEngine: total CPU", "cpu_ms_per_experiment": bare_cpu}] + [
            {"part": k, "cpu_ms_per_experiment": v} for k, v in parts.items()]
        table = markdown_table(rows, ["part", "cpu_ms_per_experiment"])
        print(table)
        write_results("loop_overhead_parts", {"n": args.parts, "rows": rows}, table,
                      f".venv/bin/python benchmarks/loop_overhead.py --parts {args.parts}")
        return
    import contextlib

    from labflow.executors.prefect_server import campaign_api

    one_station = recipe  # the sim lab has two stations; the loop keeps both busy
    arms = sorted((a for a in args.arms.split(",") if a), key=lambda a: a == "prefect")  # the server last: it uses CPU
    server_s = None
    stations = len(recipe.lab_config.build(seed=0, time_scale=0.0).stations)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # Warm-ups (imports, first calls) are not timed, for any arm.
        bare_runengine(recipe, 3)
        bare_runengine(recipe, 3, threads=False)
        floors = {"threads": bare_runengine(recipe, args.n), "serial": bare_runengine(recipe, args.n, threads=False)}
        rows = [{"arm": f"bare RunEngine ({stations} stations, concurrently)", "floor": "threads"},
                {"arm": f"bare RunEngine ({stations} stations, one after another)", "floor": "serial"}]
        for row in rows:
            wall, cpu = floors[row["floor"]]
            row.update({"ms_per_experiment": wall * 1e3, "cpu_ms_per_experiment": cpu * 1e3})
        for executor in arms:
            with contextlib.ExitStack() as stack:
                if executor == "prefect":  # one server for the Prefect arm, as PREFECT_API_URL gives a facility
                    t0 = time.perf_counter()
                    stack.enter_context(campaign_api())
                    server_s = time.perf_counter() - t0
                labflow_loop(one_station, 2, executor, out / "warm")
                per, cpu = labflow_loop(one_station, args.n, executor, out)
            rows.append({"arm": f"labflow {executor}", "floor": "serial" if executor == "virtual" else "threads",
                         "ms_per_experiment": per * 1e3, "cpu_ms_per_experiment": cpu * 1e3})
        big = big_campaign(recipe, args.big, out) if args.big else None
        if args.profile:
            print(profile_local(recipe, args.n, out))
    for r in rows:
        wall, cpu = floors[r["floor"]]
        r["overhead_ms"] = r["ms_per_experiment"] - wall * 1e3
        r["ratio_to_bare"] = r["ms_per_experiment"] / (wall * 1e3)
        r["cpu_overhead_ms"] = r["cpu_ms_per_experiment"] - cpu * 1e3
    table = markdown_table(rows, ["arm", "floor", "ms_per_experiment", "overhead_ms", "ratio_to_bare", "cpu_ms_per_experiment", "cpu_overhead_ms"])
    table += ("\n\n`floor`: the bare RunEngine row each arm is compared with (`threads`: the stations' RunEngines "
              "run concurrently, as the local and Prefect executors run them; `serial`: one after another, as the "
              "virtual-time executor runs them).")
    if server_s is not None:
        table += (f"\n\nprefect: per-campaign server: {server_s:.1f} s to start a campaign's own Prefect API server "
                  "(paid once per campaign when PREFECT_API_URL is not set; not in the rows above)")
    if big:
        table += "\n\n" + markdown_table([big], list(big))
    print(table)
    write_results("loop_overhead", {"n": args.n, "rows": rows, "big": big, "prefect_server_start_s": server_s}, table,
                  f".venv/bin/python benchmarks/loop_overhead.py --n {args.n}" + (f" --big {args.big}" if args.big else ""))


if __name__ == "__main__":
    main()
