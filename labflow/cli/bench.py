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
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder of the CSVs (default: $LABFLOW_DATA or ../shared/data/liang2021)"),
    workers: int = typer.Option(0, "--workers", min=0, help="processes (0: one per core)"),
) -> None:
    """Run planners against the baselines on real datasets, in virtual time, and write the metrics.

    Each finished run is appended to OUT/runs.jsonl; running the same command again skips the runs
    already there, so an interrupted benchmark continues where it stopped.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    except ValueError:
        console.print(f"[red]error:[/] --instruments takes comma-separated integers, got {instruments!r}")
        raise typer.Exit(2) from None
    folder = data_dir or _default_data_dir()
    missing = [n for n in names if not dataset_available(n, data_dir=folder)]
    if missing:
        console.print(f"[red]error:[/] dataset(s) {missing} not found in {folder}", soft_wrap=True)
        console.print("[yellow]hint:[/] pass --data-dir or set LABFLOW_DATA to the folder holding the CSV files")
        raise typer.Exit(2)
    spec = BenchSpec(datasets=names, planners=_split(planners), seeds=seeds, budget=budget,
                     instruments=n_instruments, data_dir=str(folder))
    with Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("bench", total=len(names) * len(spec.planners) * seeds * len(n_instruments), last="")

        def tick(r, i, n):  # noqa: ANN001
            progress.update(task, completed=i, last=f"{r.dataset}/{r.planner}/seed {r.seed}: {len(r.trace)} experiments")

        results = run_bench(spec, workers=workers or os.cpu_count() or 1, progress=tick, journal=out / "runs.jsonl")
    payload = report(results, spec, out)
    console.print((out / "bench.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'bench.json'}, {out / 'bench.md'} and {len(payload['plots'])} plot(s)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``bench``."""
    app.command(name="bench")(bench)
