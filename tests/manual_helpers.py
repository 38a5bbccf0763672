"""Shared by the manual-station tests: a lab with no robot (a bench chemist), a lab whose robot works
beside a bench, and a recipe for either."""

from __future__ import annotations

import textwrap
from pathlib import Path

BENCH_LAB = """
name: bench-lab
kind: manual
timeout: {timeout}
stations: {stations}
parameters:
  - {{name: temperature, unit: degC, low: 20, high: 300}}
  - {{name: solvent, choices: [water, ethanol]}}
outputs:
  - {{name: product_yield, unit: percent, low: 0, high: 100}}
"""

BENCH_RECIPE = """
name: bench
lab: lab.yaml
parameters:
  - {{name: temperature, low: 50 degC, high: 250 degC}}
  - {{name: solvent, type: categorical, choices: [water, ethanol]}}
objectives:
  - {{name: product_yield, direction: maximize, unit: percent}}
planner: {{kind: sobol}}
budget: {budget}
seed: 0
execution: {{executor: {executor}, timeout: 5 s}}
"""

MIXED_LAB = """
name: robot-and-bench
kind: manual
timeout: {timeout}
stations: [{{name: bench}}]
automated: {{name: robot, kind: simulated, stations: 1, landscape: {{name: branin}}, time_scale: 1,
             durations: {{set: 0 s, synthesize: 0.05 s, measure: 0.05 s, synthesize_from: null}}}}
"""

MIXED_RECIPE = """
name: mixed
lab: lab.yaml
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: sobol}}
budget: {budget}
seed: 0
execution: {{executor: local, timeout: 5 s}}
"""


def write_bench(d: Path, *, budget: int = 2, stations: str = "[{name: bench}]", timeout: str = "60 s", executor: str = "local") -> Path:
    """A lab with no robot: one bench (or ``stations``) whose chemist reports a yield in percent."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "lab.yaml").write_text(textwrap.dedent(BENCH_LAB.format(timeout=timeout, stations=stations)))
    p = d / "recipe.yaml"
    p.write_text(textwrap.dedent(BENCH_RECIPE.format(budget=budget, executor=executor)))
    return p


def write_mixed(d: Path, *, budget: int = 5, timeout: str = "60 s") -> Path:
    """A simulated robot (Branin, 0.1 s an experiment) beside a bench whose chemist reports ``y``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "lab.yaml").write_text(textwrap.dedent(MIXED_LAB.format(timeout=timeout)))
    p = d / "recipe.yaml"
    p.write_text(textwrap.dedent(MIXED_RECIPE.format(budget=budget)))
    return p
