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
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "commit": commit,
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


def write_results(name: str, payload: dict[str, Any], table: str, command: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (table + the exact command)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "command": command, "environment": environment()}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    env = payload["environment"]
    md = (
        f"# {name}\n\nCommand: `{command}`\n\n"
        f"Machine: {env['cpus']} cores, Python {env['python']}, commit {env.get('commit')}, {env['date']}\n\n{table}\n"
    )
    (RESULTS / f"{name}.md").write_text(md)
    print(table)
    print(f"\nwrote {RESULTS / (name + '.json')} and .md", file=sys.stderr)
