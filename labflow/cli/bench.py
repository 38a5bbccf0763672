"""``labflow bench``: measure how many fewer experiments, and how much less lab time, a planner needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def _default_data_dir() -> Path:
    from labflow.sim.datasets import default_data_dir

    return Path(default_data_dir())


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def bench(
    datasets: str = typer.Option("crossed_barrel,p3ht,agnp,autoam,perovskite", "--datasets", help="comma-separated dataset names (or description YAML paths)"),
    planners: str = typer.Option("bayesian,random,sobol,lhs,grid,ofat", "--planners", help="comma-separated planner names"),
    seeds: int = typer.Option(30, "--seeds", min=1, help="seeded runs per planner and dataset"),
    budget: Optional[int] = typer.Option(None, "--budget", min=2, help="experiments per run (default: see docs)"),
    instruments: str = typer.Option("1", "--instruments", help="comma-separated numbers of parallel instruments, e.g. 1,4,16"),
    out: Path = typer.Option(Path("bench"), "--out", help="directory for bench.json, bench.md and plots"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder of the CSVs (default: $LABFLOW_DATA, else the copies shipped in labflow/datasets)"),
    workers: int = typer.Option(0, "--workers", min=0, help="processes (0: one per core)"),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="run on Dask distributed instead: local:N (N worker processes here) or a scheduler address such as tcp://10.0.0.5:8786 (needs labflow[cluster])"),
    work_hours: float = typer.Option(8.0, "--work-hours", help="lab-time table: hours a day the conventional lab runs experiments, in (0, 24]"),
    work_days: int = typer.Option(5, "--work-days", help="lab-time table: working days a week of the conventional lab, 1 to 7"),
    conventional: str = typer.Option("best", "--conventional", help="lab-time table: the conventional design, one of best, grid, sobol, lhs, random (best: the fewest experiments at P = 1)"),
    baseline_seeds: Optional[int] = typer.Option(None, "--baseline-seeds", min=1, help="seeded runs of each baseline (default: --seeds)"),
    baseline_instruments: Optional[str] = typer.Option(None, "--baseline-instruments", help="numbers of instruments the baselines run with, some of --instruments (default: all of them; the headline lab-time table needs 1)"),
    report_only: bool = typer.Option(False, "--report-only", help="run nothing: tabulate the runs already in OUT/runs.jsonl with today's metrics"),
    t_orch: float = typer.Option(0.0, "--t-orch", help="lab-time table: labflow's orchestration overhead per experiment [s] (planning latency is measured)"),
) -> None:
    """Run planners against the baselines on real datasets, in virtual time, and write the metrics.

    Each finished run is appended to OUT/runs.jsonl; running the same command again skips the runs
    already there, so an interrupted benchmark continues where it stopped, with or without --cluster.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labflow.bench.cluster import ClusterUnavailable
    from labflow.bench.runner import BenchSpec, report, run_bench
    from labflow.planners import PLANNERS
    from labflow.sim.datasets import dataset_available

    console = Console()
    names = _split(datasets)
    bad_planners = [p for p in _split(planners) if p not in PLANNERS]
    if bad_planners:
        console.print(f"[red]error:[/] unknown planners {bad_planners}; expected some of {PLANNERS}")
        raise typer.Exit(2)
    try:
        n_instruments = [int(x) for x in _split(instruments)]
        n_baseline_instruments = [int(x) for x in _split(baseline_instruments)] if baseline_instruments else None
    except ValueError:
        console.print(f"[red]error:[/] --instruments and --baseline-instruments take comma-separated integers, "
                      f"got {instruments!r} and {baseline_instruments!r}")
        raise typer.Exit(2) from None
    if cluster is not None:
        from labflow.bench.cluster import parse_cluster

        try:
            parse_cluster(cluster)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}", soft_wrap=True)
            console.print("[yellow]hint:[/] local:2 runs two worker processes here; start a cluster with `dask scheduler` and `dask worker ADDRESS`")
            raise typer.Exit(2) from None
        if workers:
            console.print(f"[red]error:[/] --workers {workers} and --cluster {cluster} both say where to run; give one")
            console.print("[yellow]hint:[/] with --cluster local:N, N is the number of worker processes")
            raise typer.Exit(2)
    folder = data_dir or _default_data_dir()
    missing = [n for n in names if not dataset_available(n, data_dir=folder)]
    if missing:
        console.print(f"[red]error:[/] dataset(s) {missing} not found in {folder}", soft_wrap=True)
        console.print("[yellow]hint:[/] pass --data-dir or set LABFLOW_DATA to the folder holding the CSV files")
        raise typer.Exit(2)
    try:
        spec = BenchSpec(datasets=names, planners=_split(planners), seeds=seeds, budget=budget,
                         instruments=n_instruments, data_dir=str(folder), work_hours=work_hours, work_days=work_days,
                         conventional=conventional, t_orch=t_orch, baseline_seeds=baseline_seeds,
                         baseline_instruments=n_baseline_instruments)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    command = (_command_line(spec, out, data_dir, workers) + (f" --cluster {cluster.strip()}" if cluster else "")
               + (" --report-only" if report_only else ""))
    with Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bench", total=len(spec.jobs()), last="")

        def tick(r, i, n):  # noqa: ANN001
            progress.update(task, completed=i, last=f"{r.dataset}/{r.planner}/seed {r.seed}: {len(r.trace)} experiments")

        try:
            results = run_bench(spec, workers=workers or os.cpu_count() or 1, progress=tick, journal=out / "runs.jsonl",
                                run_missing=not report_only, cluster=cluster)
        except ClusterUnavailable as exc:  # no scheduler, no workers, another labflow, no Dask: nothing ran there
            console.print(f"[red]error:[/] {exc}", soft_wrap=True)
            console.print(f"[yellow]hint:[/] finished runs are kept in {out / 'runs.jsonl'}; run the same command again to continue")
            raise typer.Exit(1) from None
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}", soft_wrap=True)
            console.print("[yellow]hint:[/] --report-only tabulates finished runs only; drop it to run the missing ones")
            raise typer.Exit(2) from None
    payload = report(results, spec, out, command=command)
    console.print((out / "bench.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and {len(payload['plots'])} plot(s)", soft_wrap=True)


def _command_line(spec, out: Path, data_dir: Optional[Path], workers: int) -> str:  # noqa: ANN001 - BenchSpec
    """The command that reproduces a report, every option spelled out and no absolute path in it."""
    from labflow.bench.runner import portable_path

    parts = ["labflow bench", f"--datasets {','.join(spec.datasets)}", f"--planners {','.join(spec.planners)}",
             f"--seeds {spec.seeds}"]
    if spec.budget is not None:
        parts.append(f"--budget {spec.budget}")
    parts += [f"--instruments {','.join(str(p) for p in spec.instruments)}", f"--work-hours {spec.work_hours:g}",
              f"--work-days {spec.work_days}", f"--conventional {spec.conventional}", f"--t-orch {spec.t_orch:g}",
              *([f"--baseline-seeds {spec.baseline_seeds}"] if spec.baseline_seeds is not None else []),
              *([f"--baseline-instruments {','.join(str(p) for p in spec.baseline_instruments)}"]
                if spec.baseline_instruments is not None else []),
              f"--out {portable_path(out)}"]
    if data_dir is not None:
        parts.append(f"--data-dir {portable_path(data_dir)}")
    if workers:
        parts.append(f"--workers {workers}")
    return " ".join(parts)


def register(app: typer.Typer) -> None:
    """Add ``bench``."""
    app.command(name="bench")(bench)
