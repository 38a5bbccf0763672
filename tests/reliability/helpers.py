"""Shared helpers of the reliability tests: small recipes, CLI subprocesses, waiting on conditions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

from labflow.store.campaign_dir import CampaignDir, find_campaign_dir

LAB = """
name: rel-lab
kind: simulated
stations: {stations}
landscape: {{name: branin}}
failure_rate: {failure_rate}
time_scale: {time_scale}
durations: {{set: 0 s, synthesize: {synthesize} s, measure: {measure} s}}
"""

RECIPE = """
name: {name}
lab: lab.yaml
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: {planner}}}
budget: {budget}
seed: {seed}
execution: {{executor: {executor}, retries: {retries}, timeout: {timeout}}}
"""


def write_recipe(d: Path, *, name="rel", budget=8, stations=2, planner="sobol", seed=0, executor="local", retries=0,
                 timeout="30 s", failure_rate=0.0, time_scale=0.0, synthesize=0, measure=0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "lab.yaml").write_text(textwrap.dedent(LAB.format(stations=stations, failure_rate=failure_rate, time_scale=time_scale,
                                                           synthesize=synthesize, measure=measure)))
    p = d / "recipe.yaml"
    p.write_text(textwrap.dedent(RECIPE.format(name=name, budget=budget, planner=planner, seed=seed, executor=executor,
                                               retries=retries, timeout=timeout)))
    return p


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``labflow ARGS`` in a new process. Forked from a fork server (started once with
    ``sys.executable``, labflow preloaded) so that each process starts in milliseconds instead of
    seconds; it is still a separate process, killed for real by SIGKILL."""
    proc = start_forked(*args, env=env)
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join(10)
        raise AssertionError(f"labflow {' '.join(args)} did not finish within {timeout} s")
    return subprocess.CompletedProcess(args, proc.exitcode, proc.out.read_text(), proc.err.read_text())


_ctx = None


def _forkserver():
    global _ctx
    if _ctx is None:
        import multiprocessing as mp

        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(["labflow.cli", "labflow.launch", "labflow.testing.crash", "labflow.testing.faults"])
    return _ctx


def _child(args, env, out, err):  # runs in the forked process
    fo, fe = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fo, 1)
    os.dup2(fe, 2)
    os.environ.clear()
    os.environ.update(env)
    from labflow.cli import app

    try:
        app(list(args), standalone_mode=True)
    except SystemExit as exc:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
    os._exit(0)


def start_forked(*args: str, env: dict | None = None):
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="labflow-child-"))
    proc = _forkserver().Process(target=_child, args=(args, dict(env if env is not None else child_env()), str(d / "out"), str(d / "err")))
    proc.out, proc.err = d / "out", d / "err"
    proc.start()
    return proc


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labflow.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def campaign_dir(out: Path) -> CampaignDir | None:
    dirs = sorted(out.glob("*.labflow"))
    return CampaignDir(dirs[-1]) if dirs else None


def ledger_kinds(out: Path) -> list[str]:
    cd = campaign_dir(out)
    if cd is None or not cd.exists():
        return []
    from labflow.store.ledger import read_records

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [r.get("k") for r in read_records(cd.ledger_path)]
        except Exception:  # noqa: BLE001 - mid-write: try again
            return []


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LABFLOW_CRASHPOINT"}
    env.update(extra)
    return env


__all__ = ["campaign_dir", "child_env", "cli", "find_campaign_dir", "ledger_kinds", "start_cli", "wait_for", "write_recipe"]
