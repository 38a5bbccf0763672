"""Campaign files for the report tests: one small virtual-time campaign per shipped recipe, a
campaign with failures, a two-objective file and an empty one (written directly)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
RUNNABLE_KINDS = ("simulated", "dataset")  # remote and EPICS labs need servers: their tests live with them


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Baseline re-runs are cached in a per-session folder, never in the user's ~/.cache."""
    monkeypatch.setenv("LABFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "labflow-cache"))


def run_small(recipe_path: Path, out: Path, budget: int = 8, seed: int = 1) -> Path:
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    kind = getattr(recipe.lab_config, "kind", "")
    if kind == "dataset":
        from labflow.sim.datasets import dataset_available

        if not dataset_available(recipe.lab_config.dataset, data_dir=recipe.lab_config.data_dir):
            pytest.skip(f"{recipe_path.name}: dataset {recipe.lab_config.dataset!r} is not available here")
    if kind not in RUNNABLE_KINDS:
        pytest.skip(f"{recipe_path.name}: a {kind!r} lab needs servers")
    outcome = run_recipe(recipe, out, budget=budget, seed=seed, executor="virtual")
    return outcome.path


class _Campaigns:
    """Runs each recipe's small campaign on first use (so that each test pays for its own recipe
    only) and keeps it, or the exception that stopped it, for the session."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._got: dict[str, Path | BaseException] = {}

    def __call__(self, name: str) -> Path:
        if name not in self._got:
            try:
                self._got[name] = run_small(ROOT / "recipes" / name, self.out)
            except (Exception, pytest.skip.Exception) as exc:  # noqa: BLE001 - re-raised below, for this recipe only
                self._got[name] = exc
        got = self._got[name]
        if isinstance(got, pytest.skip.Exception):
            pytest.skip(str(got))
        if isinstance(got, BaseException):
            raise got
        return got


@pytest.fixture(scope="session")
def campaign_file(tmp_path_factory) -> _Campaigns:
    """``campaign_file("quickstart.yaml")``: an 8-experiment virtual-time campaign of that shipped recipe."""
    return _Campaigns(tmp_path_factory.mktemp("campaigns"))


@pytest.fixture(scope="session")
def failing_campaign(tmp_path_factory) -> Path:
    """A quickstart-like campaign on a lab whose instrument fails a third of the time."""
    d = tmp_path_factory.mktemp("failing")
    (d / "flaky_lab.yaml").write_text(textwrap.dedent("""
        name: flaky-materials
        kind: simulated
        stations: 2
        landscape: {name: materials, noise_std: {product_yield: 0.5}}
        durations: {set: 5 s, synthesize: 20 min, measure: 5 min}
        failure_rate: 0.35
    """))
    (d / "flaky.yaml").write_text(textwrap.dedent("""
        name: flaky
        description: a lab with a flaky instrument
        lab: flaky_lab.yaml
        parameters:
          - {name: temperature, low: 100 degC, high: 300 degC}
          - {name: time, low: 1 min, high: 60 min, log: true}
          - {name: dopant_fraction, low: 0, high: 1}
        objectives:
          - {name: product_yield, direction: maximize, unit: percent}
        planner: {kind: sobol}
        budget: 16
        seed: 2
        execution: {executor: virtual, retries: 0, timeout: 2 min}
    """))
    return run_small(d / "flaky.yaml", d / "runs", budget=16, seed=2)


def write_two_objective_file(path: Path, n: int = 24, seed: int = 0) -> Path:
    """A provenance file with two objectives written row by row (no lab): for the Pareto figures."""
    from labflow.objectives import Objective
    from labflow.space import Categorical, Real, Space
    from labflow.store.provenance import ProvenanceWriter

    space = Space([Real("temperature", 20, 200, "degC"), Real("pressure", 1, 10, "bar", log=True), Categorical("solvent", ("water", "ethanol"))])
    objectives = [Objective("strength", "maximize", "MPa"), Objective("energy", "minimize", "kJ", threshold=12.0)]
    rng = np.random.default_rng(seed)
    with ProvenanceWriter(path, campaign="two-objectives", space=space, objectives=objectives, seed=seed, planner="random",
                          recipe={"name": "two-objectives", "budget": n}) as w:
        for i in range(n):
            t, p = rng.uniform(20, 200), float(np.exp(rng.uniform(0, np.log(10))))
            failed = i % 7 == 3
            w.record_experiment({
                "uid": f"exp-{i:03d}", "station": f"station{1 + i % 2}", "status": "failed" if failed else "completed",
                "reason": "station1: DeviceError: clogged nozzle" if failed else "", "attempts": 1, "generator": "random",
                "t_started": 600.0 * i, "t_finished": 600.0 * i + 550.0,
                "temperature": t, "pressure": p, "solvent": ["water", "ethanol"][i % 2],
                "strength": np.nan if failed else t / 4 + rng.normal(0, 3), "energy": np.nan if failed else 2 + t / 20 + p,
            })
        w.set_summary({"completed": n - n // 7, "executor": "local"})
    return path


@pytest.fixture(scope="session")
def two_objective_file(tmp_path_factory) -> Path:
    return write_two_objective_file(tmp_path_factory.mktemp("mo") / "two-objectives.h5")
