"""Simulated labs answer within physical ranges: a yield, an efficiency or a transparency lies
between 0 and 100 %, a conductivity is never negative -- noise included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from labflow.lab import load_lab_config, packaged_labs_folder
from labflow.sim.landscapes import LANDSCAPES, make_landscape

ROOT = Path(__file__).resolve().parents[2]


def _random_points(landscape, rng, n):
    for _ in range(n):
        point = {}
        for i in landscape.inputs:
            if i.choices is not None:
                point[i.name] = i.choices[rng.integers(len(i.choices))]
            else:
                point[i.name] = float(rng.uniform(i.low, i.high))
        yield point


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_every_landscape_stays_in_its_physical_range_over_many_random_points(name):
    landscape = make_landscape(name)
    rng = np.random.default_rng(16)
    bounded = [o for o in landscape.outputs if o.low is not None or o.high is not None]
    for point in _random_points(landscape, rng, 3000):
        out = landscape.evaluate(point)
        for o in bounded:
            v = out[o.name]
            assert (o.low is None or v >= o.low) and (o.high is None or v <= o.high), (name, o.name, v, point)


def test_a_noisy_simulated_lab_never_reports_a_negative_yield(tmp_path):
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe
    from labflow.store.provenance import read_campaign

    lab = yaml.safe_load((packaged_labs_folder() / "sim_materials.yaml").read_text())
    lab["landscape"]["noise_std"] = {"product_yield": 60.0}  # far more noise than the yields near 0 % can take
    (tmp_path / "noisy.yaml").write_text(yaml.safe_dump(lab))
    load_lab_config(tmp_path / "noisy.yaml")
    recipe_text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("lab: sim_materials", "lab: noisy.yaml")
    (tmp_path / "r.yaml").write_text(recipe_text)
    recipe = load_recipe(tmp_path / "r.yaml").replace(planner={"kind": "random"})
    outcome = run_recipe(recipe, tmp_path / "runs", budget=10, executor="virtual", handle_signals=False)
    yields = read_campaign(outcome.path).completed["product_yield"].to_numpy(dtype=float)
    assert len(yields) == 10 and yields.min() >= 0.0 and yields.max() <= 100.0
    assert (yields == 0.0).any()  # the noise did push some below 0: they are reported at the physical limit
