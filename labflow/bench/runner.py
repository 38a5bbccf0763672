"""`labflow bench`: planners against baselines on real datasets, through the real loop, in virtual time.

Each run is one campaign on a dataset served as a pool (``kind: dataset``): the planner,
``run_experiment`` on the RunEngine, the simulated devices and the campaign loop are the
same as in a real campaign; only time is virtual (:class:`~labflow.sim.clock.VirtualTimeExecutor`).
A run stops at its budget, or once every target is reached and at least ``20*d``
experiments were made (enough for the enhancement factor at 20*d).

Runs are independent, so they are spread over processes (one per core by default).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATASETS = ("crossed_barrel", "p3ht", "agnp", "autoam", "perovskite")
DEFAULT_PLANNERS = ("bayesian", "random", "sobol", "lhs", "grid", "ofat")


@dataclass
class RunResult:
    """One campaign of the benchmark: what it measured, in the order results came back, and when."""

    dataset: str
    planner: str
    seed: int
    instruments: int
    trace: list[int]
    times: list[float]
    plan_latency: list[float]
    fallbacks: int
    wall_s: float


@dataclass
class BenchSpec:
    """What to run. ``budget=None``: ``min(N, DEFAULT_BUDGET)`` experiments for *every* planner (one rule,
    so that no planner is censored later than another). Every run also stops early once every target
    is reached and 20*d experiments are made. Runs censored by the budget make an AF a bound, and
    the tables say so in every column."""

    datasets: Sequence[str] = DEFAULT_DATASETS
    planners: Sequence[str] = DEFAULT_PLANNERS
    seeds: int = 30
    budget: int | None = None
    instruments: Sequence[int] = (1,)
    q: float = 0.05
    data_dir: str | None = None
    t_exp: float = 3600.0
    planner_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The conventional lab of the headline lab-time table: its working hours and its design
    #: ("best": whichever of grid, sobol, lhs and random needs the fewest experiments at P = 1).
    work_hours: float = 8.0
    work_days: int = 5
    conventional: str = "best"
    #: labflow's orchestration overhead per experiment [s] in the lab-time table (planning is measured).
    t_orch: float = 0.0
    #: The planner whose lab time is tabulated (labflow's default).
    method: str = "bayesian"
    #: Seeds and numbers of instruments of every other planner (the baselines), when they differ
    #: from the method's (None: the same). The headline lab-time table needs baselines at P = 1 only.
    baseline_seeds: int | None = None
    baseline_instruments: Sequence[int] | None = None

    def seeds_for(self, planner: str) -> int:
        """Seeded runs of ``planner`` per dataset and number of instruments."""
        return self.seeds if planner == self.method or self.baseline_seeds is None else int(self.baseline_seeds)

    def instruments_for(self, planner: str) -> list[int]:
        """The numbers of instruments ``planner`` is run with."""
        if planner == self.method or self.baseline_instruments is None:
            return [int(p) for p in self.instruments]
        return [int(p) for p in self.instruments if int(p) in {int(b) for b in self.baseline_instruments}]

    def jobs(self) -> list[tuple[str, str, int, int]]:
        """Every (dataset, planner, seed, instruments) run, in the order results are reported."""
        return [
            (d, p, s, P)
            for d in self.datasets
            for P in self.instruments
            for p in self.planners
            if P in self.instruments_for(p)
            for s in range(self.seeds_for(p))
        ]

    def __post_init__(self) -> None:
        from labflow.bench.metrics import WorkingHours

        WorkingHours(self.work_hours, self.work_days)  # validates both, naming the field
        if self.conventional not in CONVENTIONAL_CHOICES:
            raise ValueError(f"conventional must be one of {list(CONVENTIONAL_CHOICES)}, got {self.conventional!r}")
        if not (math.isfinite(self.t_orch) and self.t_orch >= 0):
            raise ValueError(f"t_orch must be a duration >= 0 seconds, got {self.t_orch!r}")
        bad = [p for p in self.instruments if int(p) < 1]
        if bad:
            raise ValueError(f"instruments must be whole numbers >= 1, got {list(self.instruments)}")
        if self.baseline_seeds is not None and int(self.baseline_seeds) < 1:
            raise ValueError(f"baseline_seeds must be a whole number >= 1, got {self.baseline_seeds!r}")
        if self.baseline_instruments is not None:
            extra = sorted({int(b) for b in self.baseline_instruments} - {int(p) for p in self.instruments})
            if extra or not self.baseline_instruments:
                raise ValueError(f"baseline_instruments must be some of instruments {list(self.instruments)}, "
                                 f"got {list(self.baseline_instruments)}")


#: Non-adaptive designs a conventional lab might run, in the order they are preferred on ties.
NON_ADAPTIVE = ("grid", "sobol", "lhs", "random")
CONVENTIONAL_CHOICES = ("best", *NON_ADAPTIVE)

#: What each baseline is in pool mode, printed in bench.md so nobody has to guess.
BASELINE_NOTES = {
    "random": "uniformly random unmeasured pool rows (the published protocol's reference, run through the loop)",
    "sobol": "a scrambled Sobol sequence laid over the pool's rows in rank space (each column mapped to its empirical "
             "quantile, each point matched to the nearest untaken row: pool_design=rank, docs/decisions/0005)",
    "lhs": "Latin hypercube blocks of 16 laid over the pool's rows in rank space, like sobol (pool_design=rank)",
    "grid": "a 5-level full-factorial grid in the parameters' unit cube, visited in a seeded order, each point "
            "snapped to the nearest unmeasured row (conventional design of experiments)",
    "ofat": "one factor at a time from the centre, snapped to the nearest unmeasured row (a strawman when factors interact)",
}


#: The default number of experiments per run, for every planner alike (capped by the pool size N).
DEFAULT_BUDGET = 250


def _budget(spec_budget: int | None, planner: str, n: int) -> int:
    """Experiments for one run: ``min(budget, N)``, with ``budget`` defaulting to :data:`DEFAULT_BUDGET`.

    The same for every planner (``planner`` is accepted only to make that explicit in call sites).
    """
    return min(DEFAULT_BUDGET if spec_budget is None else int(spec_budget), n)


def run_one(
    dataset: str,
    planner: str,
    seed: int,
    *,
    budget: int | None = None,
    instruments: int = 1,
    q: float = 0.05,
    data_dir: str | None = None,
    t_exp: float = 3600.0,
    planner_options: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run one seeded pool campaign through the loop and return its trace."""
    from labflow.bench.metrics import standard_targets
    from labflow.campaign import Campaign, StationRunner
    from labflow.lab import DurationsConfig
    from labflow.planners import make_planner
    from labflow.sim.lab import DatasetLabConfig

    t0 = time.perf_counter()
    config = DatasetLabConfig(
        name=f"{dataset}-pool", dataset=dataset, mode="pool", data_dir=data_dir, stations=instruments,
        durations=DurationsConfig(set=0.0, synthesize=t_exp, measure=0.0, synthesize_from=None),
    )
    lab = config.build(seed=seed, time_scale=0.0)
    pool = lab.landscape
    ds = pool.dataset
    n_budget = _budget(budget, planner, ds.n)
    objectives = [ds.objective]
    plan = make_planner(planner, ds.space, objectives, seed=seed, **dict(planner_options or {}))
    latencies: list[float] = []
    timed = _TimedPlanner(plan, latencies)
    runners = [StationRunner(st, ds.space, objectives) for st in lab.stations]
    executor = _TracingExecutor()
    targets = standard_targets(ds.y, q, ds.objective.direction)
    min_n = 20 * len(ds.space)
    campaign: Campaign | None = None

    def choices():  # the pool minus what is on an instrument now
        free = pool.choices()
        busy = [c.params for c in (campaign.state.busy.values() if campaign else [])]
        if busy and len(free):
            X = ds.space.encode(free)
            B = ds.space.encode(busy)
            keep = ~(np.abs(X[:, None, :] - B[None, :, :]).max(axis=2) < 1e-9).any(axis=1)
            free = free[keep]
        return free

    def stop_when_done(event: str, state: Any) -> None:
        if event != "finished":
            return
        found = set(pool.trace)
        done = all(len(found & set(t.members)) >= t.k for t in targets.values())
        if done and state.finished >= min_n:
            state.budget = min(state.budget, state.started)  # no new experiments; in-flight ones finish

    campaign = Campaign(planner=timed, runners=runners, executor=executor, budget=n_budget, choices=choices,
                        listeners=[stop_when_done])
    campaign.run()
    lab.close()
    by_uid = dict(zip(executor.order, pool.trace))
    trace = [int(by_uid[r.candidate.uid]) for r in campaign.results]
    times = [float(r.t_finished) for r in campaign.results]
    fallbacks = sum(1 for r in campaign.results if r.candidate.generator == "fallback")
    return RunResult(dataset, planner, seed, instruments, trace, times, latencies, fallbacks, time.perf_counter() - t0)


class _TimedPlanner:
    """Delegates to a planner, timing each ``ask`` (planning latency for the lab-time model)."""

    def __init__(self, planner: Any, latencies: list[float]) -> None:
        self._planner = planner
        self._latencies = latencies

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = self._planner.ask(*args, **kwargs)
        self._latencies.append(time.perf_counter() - t0)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._planner, name)


def _tracing_executor_class():
    from labflow.sim.clock import VirtualTimeExecutor

    class TracingExecutor(VirtualTimeExecutor):
        """Virtual time, remembering the order experiments were submitted (= measured on the pool)."""

        def __init__(self) -> None:
            super().__init__()
            self.order: list[str] = []

        def submit(self, runner: Any, candidate: Any, md: Mapping[str, Any]) -> None:
            self.order.append(candidate.uid)
            super().submit(runner, candidate, md)

    return TracingExecutor


def _TracingExecutor():  # noqa: N802 - a factory standing in for a class defined lazily
    return _tracing_executor_class()()


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # one process per core: threads within a process only contend


def run_bench(
    spec: BenchSpec,
    *,
    workers: int | None = None,
    progress: Callable[[RunResult, int, int], None] | None = None,
    journal: Path | None = None,
    run_missing: bool = True,
    cluster: str | None = None,
) -> list[RunResult]:
    """Run every (dataset, planner, seed, instruments) combination; results in a stable order.

    With ``journal`` (a JSON-lines file), each finished run is appended as it completes and runs
    already in the journal are not run again: an interrupted benchmark continues where it stopped.
    ``run_missing=False`` runs nothing: it returns what the journal holds and raises ``ValueError``
    if a run of the spec is not there (re-tabulating old runs with today's metrics).

    ``cluster`` (``"local:N"`` or a Dask scheduler address) runs the missing runs on a Dask
    distributed cluster instead of ``workers`` local processes (:mod:`labflow.bench.cluster`);
    the journal and the results are the same.
    """
    from labflow.bench.cluster import parse_cluster

    where = parse_cluster(cluster) if cluster is not None else None  # a bad address fails before anything runs
    jobs = spec.jobs()
    workers = workers or os.cpu_count() or 1
    results: list[RunResult] = []
    if journal is not None and journal.exists():
        wanted = set(jobs)
        for line in journal.read_text().splitlines():
            if line.strip():
                r = RunResult(**json.loads(line))
                if (r.dataset, r.planner, r.seed, r.instruments) in wanted:
                    results.append(r)
        done = {(r.dataset, r.planner, r.seed, r.instruments) for r in results}
        jobs_to_run = [j for j in jobs if j not in done]
    else:
        jobs_to_run = list(jobs)
    if jobs_to_run and not run_missing:
        d, p, s, P = jobs_to_run[0]
        raise ValueError(f"{len(jobs_to_run)} of the {len(jobs)} runs asked for are not in the journal {journal}, "
                         f"e.g. dataset {d}, planner {p}, seed {s}, {P} instrument(s)")

    def finished(r: RunResult) -> None:
        results.append(r)
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            with journal.open("a") as fh:
                fh.write(json.dumps(asdict(r)) + "\n")
        if progress:
            progress(r, len(results), len(jobs))

    kwargs = dict(q=spec.q, data_dir=spec.data_dir, t_exp=spec.t_exp)
    if where is not None:
        from labflow.bench.cluster import run_on_cluster
        from labflow.sim.datasets import shipped_data_dir

        if not where.is_local and spec.data_dir is not None and Path(spec.data_dir).resolve() == shipped_data_dir().resolve():
            kwargs["data_dir"] = None  # the copy shipped in each worker's own labflow (or its $LABFLOW_DATA)
        run_on_cluster(where, run_one, ({"dataset": d, "planner": p, "seed": s, "budget": spec.budget, "instruments": P,
                                         "planner_options": spec.planner_options.get(p), **kwargs} for d, p, s, P in jobs_to_run),
                       finished)
    elif workers == 1:
        _worker_init()
        for d, p, s, P in jobs_to_run:
            finished(run_one(d, p, s, budget=spec.budget, instruments=P, planner_options=spec.planner_options.get(p), **kwargs))
    elif jobs_to_run:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
            futures = [
                pool.submit(run_one, d, p, s, budget=spec.budget, instruments=P, planner_options=spec.planner_options.get(p), **kwargs)
                for d, p, s, P in jobs_to_run
            ]
            for fut in as_completed(futures):
                finished(fut.result())
    order = {job: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order[(r.dataset, r.planner, r.seed, r.instruments)])
    return results


def report(results: Sequence[RunResult], spec: BenchSpec, out: Path, command: str | None = None) -> dict[str, Any]:
    """Write bench.json, bench.md and one PNG per dataset; return the JSON payload.

    ``command`` is the command line to record (without absolute paths: :func:`portable_path`);
    the git commit and the machine are recorded beside it.
    """
    from labflow.bench.metrics import budget_warnings, geometric_mean_af, markdown_table, summarize
    from labflow.bench.plots import plot_fraction_found
    from labflow.sim.datasets import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    lab_time: list[dict[str, Any]] = []
    same_p: list[dict[str, Any]] = []
    lab_notes: list[str] = []
    plots: list[str] = []
    p_min = min(spec.instruments)
    for name in dict.fromkeys(r.dataset for r in results):
        ds = load_dataset(name, data_dir=Path(spec.data_dir) if spec.data_dir else None)
        traces: dict[str, list[list[int]]] = {}
        for r in results:
            if r.dataset == name and r.instruments == p_min:
                traces.setdefault(r.planner, []).append(r.trace)
        ref = "sobol" if "sobol" in traces else ("lhs" if "lhs" in traces else None)
        ds_rows = summarize(traces, ds, q=spec.q, reference_planner=ref, n_boot=2000, seed=0)
        for row in ds_rows:
            row["instruments"] = p_min
            lat = [x for r in results if r.dataset == name and r.planner == row["planner"] for x in r.plan_latency]
            row["plan_latency_median_s"] = float(np.median(lat)) if lat else None
            row["fallbacks"] = int(sum(r.fallbacks for r in results if r.dataset == name and r.planner == row["planner"]))
        rows.extend(ds_rows)
        png = out / f"{name}_fraction_found.png"
        plot_fraction_found(traces, ds, png, q=spec.q)
        plots.append(png.name)
        same_p.extend(_lab_time_rows(results, ds, spec))
        ds_lab, note = conventional_lab_rows(results, ds, spec)
        lab_time.extend(ds_lab)
        if note:
            lab_notes.append(note)
    geo = geometric_mean_af(rows)  # per target and over "first" and "80%" together
    lab_summary = _lab_time_summary(lab_time)
    prov = provenance(command, spec)
    payload = {
        "provenance": prov,
        "spec": _portable_spec(spec),
        "baselines": {p: BASELINE_NOTES[p] for p in spec.planners if p in BASELINE_NOTES},
        "results": rows,
        "geometric_mean_af": geo,
        "lab_time": lab_time,
        "lab_time_summary": lab_summary,
        "lab_time_notes": lab_notes,
        "lab_time_same_instruments": same_p,
        "plots": plots,
        # the runs themselves (traces, times, latencies) are in the journal beside this file, runs.jsonl;
        # these keys say which of its lines the tables were made from
        "runs": [{"dataset": r.dataset, "planner": r.planner, "seed": r.seed, "instruments": r.instruments} for r in results],
    }
    (out / "bench.json").write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    md = ["# labflow bench", "",
          f"Command: `{prov['command']}`  ", f"Commit: `{prov['git_commit']}`  ", f"Machine: {prov['machine_summary']}  ",
          f"Data: {prov['data']}", "",
          f"Datasets: {', '.join(spec.datasets)}; planners: {', '.join(spec.planners)}; "
          f"seeds: {spec.seeds}" + (f" ({spec.baseline_seeds} for each baseline)" if spec.baseline_seeds else "")
          + f"; q = {spec.q}; instruments: {list(spec.instruments)}"
          + (f" (baselines: {list(spec.baseline_instruments)})" if spec.baseline_instruments else "") + "; budget: "
          + (f"{spec.budget}" if spec.budget else f"min(N, {DEFAULT_BUDGET})") + " experiments for every planner.", ""]
    notes = [f"- `{p}`: {BASELINE_NOTES[p]}" for p in spec.planners if p in BASELINE_NOTES]
    if notes:
        md += ["What the baselines are, in pool mode:", "", *notes, ""]
    censored = budget_warnings(rows)
    if censored:
        md += ["## Warnings: budget too small", "", *[f"- warning: {w}" for w in censored], ""]
    md += ["AF = the exact median first-passage count of random sampling (negative hypergeometric law; its mean "
           "k(N+1)/(M+1) is the column `random_reference_mean`) / the planner's median over seeds: medians with medians. "
           "`<=`/`>=` mark upper/lower bounds where runs were censored by the budget, `?` a figure whose direction is "
           "unknown (both sides censored); the marks reach every column made from a censored median. "
           "Ceiling = (N+1)/(M+1).", "",
           markdown_table(rows, ["dataset", "planner", "target", "median_n", "iqr", "reached_fraction", "random_reference",
                                 "random_reference_mean", "af_vs_random", "af_ci", "af_vs_sobol", "af_vs_sobol_ci",
                                 "ceiling", "ef_10d", "ef_max", "seeds", "budget"]), "",
           "## Geometric mean of AF across datasets", "",
           "Per target, and over both targets together (`first+80%`), the figure the default planner is chosen by.", "",
           markdown_table(geo, ["planner", "target", "datasets", "cells", "gmean_af_vs_random", "gmean_af_vs_sobol",
                                "gmean_ceiling", "bounds"]) if geo else "(none)", ""]
    md += _lab_time_markdown(lab_time, lab_summary, lab_notes, spec)
    (out / "bench.md").write_text("\n".join(md))
    return payload


def conventional_lab_rows(results: Sequence[RunResult], ds: Any, spec: BenchSpec) -> tuple[list[dict[str, Any]], str | None]:
    """The headline lab-time rows of one dataset (targets "first" and "80%"), or none and the reason why.

    labflow's planner (``spec.method``) at every P measured, around the clock, against the
    conventional design on one instrument within ``spec.work_hours`` x ``spec.work_days``
    (:func:`~labflow.bench.metrics.conventional_lab_table`). The medians come from the runs made
    with each P (real asynchronous batches); the planning latency is the method's measured median.
    """
    from labflow.bench.metrics import (
        MedianCount,
        WorkingHours,
        conventional_lab_table,
        first_passage_counts,
        median_censored,
        overhead_break_even,
        standard_targets,
    )

    if spec.method not in spec.planners:
        return [], f"{ds.name}: no lab-time table: the method {spec.method!r} was not among the planners run"
    if 1 not in spec.instruments:
        return [], f"{ds.name}: no lab-time table: it needs runs with one instrument (add 1 to --instruments)"
    candidates = NON_ADAPTIVE if spec.conventional == "best" else (spec.conventional,)
    present = [p for p in candidates if p in spec.planners]
    if not present:
        return [], f"{ds.name}: no lab-time table: none of the conventional designs {list(candidates)} was run"

    def median(planner: str, P: int, target: Any) -> MedianCount | None:
        runs = [r for r in results if r.dataset == ds.name and r.planner == planner and r.instruments == P]
        if not runs:
            return None
        counts = first_passage_counts([r.trace for r in runs], target.members, target.k)
        value, exact = median_censored(counts, np.array([len(r.trace) for r in runs], dtype=float))
        return MedianCount(value, exact)

    latency = [x for r in results if r.dataset == ds.name and r.planner == spec.method for x in r.plan_latency]
    t_plan = float(np.median(latency)) if latency else 0.0
    hours = WorkingHours(spec.work_hours, spec.work_days)
    rows: list[dict[str, Any]] = []
    for tname, target in standard_targets(ds.y, spec.q, ds.objective.direction, names=("first", "80%")).items():
        n_method = {P: m for P in spec.instruments if (m := median(spec.method, P, target)) is not None}
        conv = {p: m for p in present if (m := median(p, 1, target)) is not None}
        # the best conventional design: the fewest experiments (a censored median counts as its bound, last on ties)
        best = min(conv, key=lambda p: (conv[p].value, not conv[p].exact, present.index(p)))
        for row in conventional_lab_table(n_method, conv[best], t_plan=t_plan, t_orch=spec.t_orch, hours=hours,
                                          instruments=sorted(n_method)):
            rows.append({"dataset": ds.name, "target": tname, "method": spec.method, "conventional": best,
                         "break_even_t_exp_s": overhead_break_even(t_plan, spec.t_orch), **row})
    return rows, None


def _lab_time_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Geometric mean over datasets of each factor, per (target, P, t_exp), bounds combined."""
    from labflow.bench.metrics import combine_bounds, format_duration, geometric_mean

    factors = ("speedup", "algorithmic", "parallel", "hours", "overhead")
    out = []
    keys = list(dict.fromkeys((r["target"], r["P"], r["t_exp_s"]) for r in rows))
    for target, P, te in keys:
        cell = [r for r in rows if (r["target"], r["P"], r["t_exp_s"]) == (target, P, te)]
        row: dict[str, Any] = {"dataset": f"gmean of {len({r['dataset'] for r in cell})}", "target": target, "P": P,
                               "t_exp_s": te, "t_exp": format_duration(te)}
        for f in factors:
            row[f] = geometric_mean(r[f] for r in cell)
            bounds = [r[f"{f}_bound"] for r in cell]
            # a geometric mean grows with each input, except where an input's direction is unknown
            row[f"{f}_bound"] = combine_bounds(bounds)
        out.append(row)
    return out


def _lab_time_markdown(rows: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]], notes: Sequence[str],
                       spec: BenchSpec) -> list[str]:
    from labflow.bench.metrics import format_duration, markdown_table

    md = ["## Lab time: labflow around the clock vs a conventional lab", ""]
    md += [f"labflow's `{spec.method}` planner on P instruments running around the clock (asynchronously: a free "
           "instrument gets the next suggestion while others are busy; the experiment counts are measured with P "
           "instruments, never n(1)/P) against a conventional campaign: the best non-adaptive design "
           + ("(the fewest experiments among grid, sobol, lhs and random)" if spec.conventional == "best" else f"(`{spec.conventional}`)")
           + f" on ONE instrument, run {spec.work_hours:g} h a day on {spec.work_days} days a week. An experiment "
           "that does not fit in what is left of the working day waits for the next opening; one longer than a working "
           "day starts at an opening and runs on unattended. The conventional design is planned in advance (no latency); "
           f"labflow's measured median planning latency and an orchestration overhead of {spec.t_orch:g} s per experiment "
           "count against it.", "",
           "speedup = algorithmic x parallel x hours x overhead, exactly: algorithmic = n_conventional / n_method(P=1) "
           "(fewer experiments); parallel = n_method(1) t_exp / makespan of n_method(P) on P instruments (P instruments "
           "including the asynchronous penalty n_method(1)/n_method(P)); hours = calendar time of the conventional "
           "campaign / the same experiments back to back; overhead = labflow's makespan without / with planning and "
           "orchestration. Bounds (`<=`, `>=`, `?`) follow the censored medians into every column.", ""]
    md += [f"- {n}" for n in notes]
    if notes:
        md.append("")
    if not rows:
        return md
    for target in dict.fromkeys(r["target"] for r in rows):
        sel = [r for r in rows if r["target"] == target]
        md += [f"### Target: {target} of the top {100 * spec.q:g}%", "",
               markdown_table(sel, ["dataset", "P", "t_exp", "conventional", "n_conventional", "n_method", "T_conventional",
                                    "T_method", "speedup", "algorithmic", "parallel", "async_penalty", "hours", "overhead"]), "",
               "Geometric mean over datasets:", "",
               markdown_table([r for r in summary if r["target"] == target],
                              ["dataset", "P", "t_exp", "speedup", "algorithmic", "parallel", "hours", "overhead"]), ""]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        r0 = next(r for r in rows if r["dataset"] == name)
        md.append(f"- {name}: median planning latency {r0['t_plan_s']:.3g} s; planning exceeds 5% of a cycle for "
                  f"t_exp below {format_duration(r0['break_even_t_exp_s'])}.")
    md.append("")
    return md


def portable_path(path: str | os.PathLike[str]) -> str:
    """A path fit for a shared report: relative to the working directory when under it, else only its name."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return f"<{p.name}>"


def _data_source(spec: BenchSpec) -> str:
    from labflow.sim.datasets import DATA_ENV, shipped_data_dir

    if spec.data_dir is None or Path(spec.data_dir).resolve() == shipped_data_dir().resolve():
        return "the datasets shipped in labflow/datasets/liang2021 (sha256 in checksums.sha256)"
    if os.environ.get(DATA_ENV) and Path(os.environ[DATA_ENV]).resolve() == Path(spec.data_dir).resolve():
        return f"${DATA_ENV} ({portable_path(spec.data_dir)})"
    return f"--data-dir {portable_path(spec.data_dir)}"


def _portable_spec(spec: BenchSpec) -> dict[str, Any]:
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}
    d["data_dir"] = None if spec.data_dir is None else _data_source(spec)
    return d



def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; what ``platform`` knows elsewhere), for result files."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def provenance(command: str | None, spec: BenchSpec) -> dict[str, Any]:
    """What made a report: the command, the git commit of labflow's source, the machine and versions. No absolute paths."""
    import subprocess

    src = Path(__file__).resolve().parents[2]
    commit = "unknown: labflow is not running from a git checkout"
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            commit = head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired) as exc:
        commit = f"unknown: git could not be run ({type(exc).__name__})"
    versions = {}
    for mod in ("labflow", "numpy", "scipy", "torch", "botorch", "gpytorch"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError) as exc:
            versions[mod] = f"unavailable ({type(exc).__name__})"
    machine = {"system": platform.system(), "machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
               "python": platform.python_version()}
    return {
        "command": command or "labflow.bench.runner.report (called from Python)",
        "git_commit": commit,
        "machine": machine,
        "machine_summary": f"{machine['system']} {machine['machine']}, {machine['cpu']}, {machine['cpu_count']} cores, Python {machine['python']}",
        "versions": versions,
        "data": _data_source(spec),
    }


def _lab_time_rows(results: Sequence[RunResult], ds: Any, spec: BenchSpec) -> list[dict[str, Any]]:
    """Speed-up in lab time of the method over the best non-adaptive baseline at the *same* P (bench.json only)."""
    from labflow.bench.metrics import first_passage_counts, lab_time_table, median_censored, standard_targets

    if spec.method not in spec.planners:
        return []
    target = standard_targets(ds.y, spec.q, ds.objective.direction)["80%"]
    n_at: dict[str, dict[int, float | None]] = {}
    latency: list[float] = []
    for P in spec.instruments:
        for planner in spec.planners:
            runs = [r for r in results if r.dataset == ds.name and r.planner == planner and r.instruments == P]
            if not runs:
                continue
            counts = first_passage_counts([r.trace for r in runs], target.members, target.k)
            med, exact = median_censored(counts, np.array([len(r.trace) for r in runs]))
            n_at.setdefault(planner, {})[P] = med if exact else None
            if planner == spec.method:
                latency += [x for r in runs for x in r.plan_latency]
    baselines = [p for p in ("sobol", "lhs", "grid", "random") if p in n_at]
    if not baselines:
        return []
    best = min(baselines, key=lambda p: n_at[p].get(min(spec.instruments)) or math.inf)
    t_plan = float(np.median(latency)) if latency else 0.0
    rows = lab_time_table(n_at[spec.method], n_at[best], t_plan_method=t_plan, t_plan_baseline=0.0)
    for row in rows:
        row["dataset"] = ds.name
        row["baseline"] = best
    return rows


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)
