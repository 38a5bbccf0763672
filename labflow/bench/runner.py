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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    from labflow.sim.clock import VirtualTimeExecutor
    from labflow.sim.dataset_lab import DatasetLabConfig

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
) -> list[RunResult]:
    """Run every (dataset, planner, seed, instruments) combination; results in a stable order.

    With ``journal`` (a JSON-lines file), each finished run is appended as it completes and runs
    already in the journal are not run again: an interrupted benchmark continues where it stopped.
    """
    jobs = [
        (d, p, s, P)
        for d in spec.datasets
        for P in spec.instruments
        for p in spec.planners
        for s in range(spec.seeds)
    ]
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

    def finished(r: RunResult) -> None:
        results.append(r)
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            with journal.open("a") as fh:
                fh.write(json.dumps(asdict(r)) + "\n")
        if progress:
            progress(r, len(results), len(jobs))

    kwargs = dict(q=spec.q, data_dir=spec.data_dir, t_exp=spec.t_exp)
    if workers == 1:
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


def report(results: Sequence[RunResult], spec: BenchSpec, out: Path) -> dict[str, Any]:
    """Write bench.json, bench.md and one PNG per dataset; return the JSON payload."""
    from labflow.bench.metrics import geometric_mean_af, lab_time_table, markdown_table, summarize
    from labflow.bench.plots import plot_fraction_found
    from labflow.sim.datasets import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    lab_time: list[dict[str, Any]] = []
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
        lab_time.extend(_lab_time_rows(results, ds, spec))
    geo = geometric_mean_af(rows)  # per target and over "first" and "80%" together
    payload = {
        "spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()},
        "results": rows,
        "geometric_mean_af": geo,
        "lab_time": lab_time,
        "plots": plots,
        "runs": [asdict(r) for r in results],
    }
    (out / "bench.json").write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    md = ["# labflow bench", "", f"Datasets: {', '.join(spec.datasets)}; planners: {', '.join(spec.planners)}; "
          f"seeds: {spec.seeds}; q = {spec.q}; instruments: {list(spec.instruments)}.", "",
          "AF = the exact median first-passage count of random sampling (negative hypergeometric law; its mean "
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
    if lab_time:
        md += ["## Lab time (80% of the top 5%), bayesian vs the best non-adaptive baseline", "",
               markdown_table(lab_time, ["dataset", "baseline", "P", "t_exp_s", "n_method", "n_baseline", "speedup",
                                         "algorithmic", "timing", "automation", "break_even_t_exp_s"]), ""]
    (out / "bench.md").write_text("\n".join(md))
    return payload


def _lab_time_rows(results: Sequence[RunResult], ds: Any, spec: BenchSpec) -> list[dict[str, Any]]:
    """Speed-up in lab time of 'bayesian' over the best non-adaptive baseline, per P measured."""
    from labflow.bench.metrics import first_passage_counts, lab_time_table, median_censored, standard_targets

    if "bayesian" not in spec.planners:
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
            if planner == "bayesian":
                latency += [x for r in runs for x in r.plan_latency]
    baselines = [p for p in ("sobol", "lhs", "grid", "random") if p in n_at]
    if not baselines:
        return []
    best = min(baselines, key=lambda p: n_at[p].get(min(spec.instruments)) or math.inf)
    t_plan = float(np.median(latency)) if latency else 0.0
    rows = lab_time_table(n_at["bayesian"], n_at[best], t_plan_method=t_plan, t_plan_baseline=0.0)
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
