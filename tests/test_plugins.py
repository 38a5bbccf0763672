"""Plug-ins by entry points: a tiny third-party package, installed into this environment with pip,
adds a planner, a lab kind and an executor, and a recipe that names them runs a campaign.

The package uses only public API: ``Planner.propose`` (the public hook), ``SimulatedLabConfig``
and ``VirtualTimeExecutor``; it is uninstalled at the end whatever happens. The campaign runs in a
fresh interpreter, as a user's would, so that the plug-in's registrations do not outlive the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "labflow-corner-plugin"
version = "0.0.1"

[project.entry-points."labflow.planners"]
corner = "labflow_corner_plugin:CornerPlanner"

[project.entry-points."labflow.lab_kinds"]
corner-sim = "labflow_corner_plugin:CornerLabConfig"

[project.entry-points."labflow.executors"]
stepwise = "labflow_corner_plugin:StepwiseExecutor"
"""

MODULE = '''
"""A third-party labflow plug-in: a planner, a lab kind and an executor."""
from typing import Literal

import numpy as np

from labflow.executors.virtual import VirtualTimeExecutor
from labflow.lab import SimulatedLabConfig
from labflow.planners import Planner


class CornerPlanner(Planner):
    """Walks the corners of the unit cube, then the centre: predictable, and needs no model."""

    name = "corner"

    def propose(self, n, X_pending):
        self.last_generator = "corner"
        d = self.space.dim
        out = []
        for i in range(n):
            k = self._asked + i
            out.append(np.full(d, 0.5) if k >= 2 ** d else np.array([(k >> j) & 1 for j in range(d)], dtype=float))
        return np.array(out)


class CornerLabConfig(SimulatedLabConfig):
    """The simulated lab under another kind's name."""

    kind: Literal["corner-sim"] = "corner-sim"


class StepwiseExecutor(VirtualTimeExecutor):
    """Virtual time, one extra virtual second of overhead per experiment."""

    name = "stepwise"

    def __init__(self, **kw):
        super().__init__(overhead=1.0, **kw)
'''

LAB = """
name: corner-lab
kind: corner-sim
stations: 2
landscape: {name: branin}
"""

RECIPE = """
name: plugged
lab: lab.yaml
parameters:
  - {name: x1, low: -5, high: 10}
  - {name: x2, low: 0, high: 15}
objectives:
  - {name: y, direction: minimize}
planner: {kind: corner}
budget: 6
execution: {executor: stepwise}
"""


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture()
def corner_plugin(tmp_path):
    pkg = tmp_path / "plugin"
    (pkg / "labflow_corner_plugin").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (pkg / "labflow_corner_plugin" / "__init__.py").write_text(textwrap.dedent(MODULE))
    _pip("install", "--quiet", "--no-deps", "--no-build-isolation", str(pkg))
    try:
        yield
    finally:
        _pip("uninstall", "--yes", "--quiet", "labflow-corner-plugin")


CAMPAIGN = """
import json, sys
from pathlib import Path

from labflow import load_recipe
from labflow.executors import executor_names
from labflow.lab import lab_kinds
from labflow.launch import run_recipe
from labflow.planners import planner_names
from labflow.store import read_campaign

d = Path(sys.argv[1])
names = {"planners": planner_names(), "executors": executor_names(), "lab_kinds": lab_kinds()}
outcome = run_recipe(load_recipe(d / "recipe.yaml"), d / "runs", handle_signals=False)
rec = read_campaign(outcome.path)
print(json.dumps({**names, "completed": rec.summary()["completed"], "planner": rec.attrs["planner"],
                  "generators": sorted(set(rec.experiments["generator"])), "makespan": outcome.makespan,
                  "points": [[float(a), float(b)] for a, b in zip(rec.experiments["x1"], rec.experiments["x2"])]}))
"""


def test_a_pip_installed_plugin_is_named_in_a_recipe_and_runs_a_campaign(tmp_path, corner_plugin):
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(LAB))
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(RECIPE))
    proc = subprocess.run([sys.executable, "-c", CAMPAIGN, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "corner" in got["planners"] and "stepwise" in got["executors"] and "corner-sim" in got["lab_kinds"]
    assert got["completed"] == 6 and got["planner"] == "corner" and got["generators"] == ["corner"]
    assert {(-5.0, 0.0), (10.0, 0.0), (-5.0, 15.0), (10.0, 15.0)} <= {tuple(p) for p in got["points"]}
    assert got["makespan"] > 0


def test_an_uninstalled_plugin_is_gone(tmp_path):
    from labflow.planners import planner_names

    assert "corner" not in planner_names()


def test_unknown_plugin_names_are_refused_with_the_known_ones():
    from labflow.executors import make_executor
    from labflow.campaign import AttemptPolicy
    from labflow.planners import make_planner

    with pytest.raises(ValueError, match="unknown planner 'nope'.*bayesian"):
        make_planner("nope", None, [])  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="unknown executor 'nope'.*local"):
        make_executor("nope", policy=AttemptPolicy(), workers=1)
