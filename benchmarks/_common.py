"""Helpers shared by the benchmark scripts: pinning threads, tables, writing results."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def pin_threads(n: int | None = None) -> int:
    """Pin torch and BLAS threads to the machine's cores (or ``n``) so figures are comparable."""
    n = n or os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def median_seconds(fn: Any, repeats: int) -> tuple[float, list[float]]:
    """Run ``fn()`` ``repeats`` times; the median wall time and every time (seconds). Timings are
    never one shot: a busy machine makes single runs scatter by a factor of several."""
    import statistics

    times = []
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def machine() -> dict[str, Any]:
    """The CPU, its core count and the load average when measured (the development machine is shared)."""
    from labflow.bench.runner import cpu_model

    cpu = cpu_model()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"system": platform.system(), "cpu": cpu, "cores": os.cpu_count(), "load_average_1_5_15_min": load}


def environment() -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for name in ("labflow", "bluesky", "ophyd", "botorch", "torch", "prefect", "h5py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown: not a git checkout"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.TimeoutExpired) as exc:
        commit = f"unknown: git could not be run ({type(exc).__name__})"
    return {
        "commit": commit,
        "machine_info": machine(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "versions": versions,
    }


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def portable(value: Any) -> Any:
    """``value`` with the absolute paths of this machine (the checkout, the home folder) made relative."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, str):
        for prefix, short in ((str(ROOT) + os.sep, ""), (str(ROOT), "."), (str(Path.home()) + os.sep, "~/")):
            value = value.replace(prefix, short)
        return value
    return value


def write_results(name: str, payload: dict[str, Any], table: str, command: str, *, note: str = "") -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (table + the exact command, the git
    commit and the machine; no absolute paths). ``note``: how to read the figures (e.g. a busy machine)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = portable({**payload, "command": command, "environment": environment(), **({"note": note} if note else {})})
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    env = payload["environment"]
    m = env["machine_info"]
    md = (
        f"# {name}\n\nCommand: `{payload['command']}`\n\n"
        f"Commit: {env['commit']}\n\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_1_5_15_min']} (1, 5, 15 min) at the end, "
        f"Python {env['python']}, {env['date']}\n\n" + (f"{note}\n\n" if note else "") + f"{table}\n"
    )
    (RESULTS / f"{name}.md").write_text(md)
    print(table)
    print(f"\nwrote {RESULTS / (name + '.json')} and .md", file=sys.stderr)
