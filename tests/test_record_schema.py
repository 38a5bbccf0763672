"""One schema for the record: every /experiments column is declared once (labflow.store.columns),
and the loop, the HDF5 writer and the export agree with the declaration."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from labflow import load_recipe
from labflow.launch import run_recipe
from labflow.store.columns import EXPERIMENT_COLUMNS, column, experiment_row_values

ROOT = Path(__file__).resolve().parents[1]


def test_the_file_has_the_declared_columns_with_their_units(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "random"})
    outcome = run_recipe(recipe.replace(budget=3), tmp_path, executor="virtual", handle_signals=False)
    with h5py.File(outcome.path, "r") as f:
        exp = f["experiments"]
        names = list(exp)
        expected = [c.name for c in EXPERIMENT_COLUMNS] + recipe.space.names + [o.name for o in recipe.objectives]
        assert sorted(names) == sorted(expected)
        for c in EXPERIMENT_COLUMNS:
            unit = exp[c.name].attrs.get("units")
            if c.unit not in (None, "cost"):
                assert unit == c.unit, c.name
            assert exp[c.name].shape == (3,)
        for p in recipe.space.parameters:
            assert exp[p.name].attrs["units"] == (p.unit or "")


def test_a_row_must_give_exactly_the_declared_columns():
    values = {c.name: 0 for c in EXPERIMENT_COLUMNS if c.name not in ("cost", "hypervolume")}
    row = experiment_row_values(values, {"x": 1.0}, {"y": 2.0}, ["y"])
    assert list(row)[: len(values)] == list(values) and row["x"] == 1.0 and row["y"] == 2.0
    with pytest.raises(ValueError, match="undeclared \\['colour'\\]"):
        experiment_row_values({**values, "colour": "blue"}, {}, {}, [])
    with pytest.raises(ValueError, match="missing \\['uid'\\]"):
        experiment_row_values({k: v for k, v in values.items() if k != "uid"}, {}, {}, [])
    assert column("t_finished").unit == "s" and column("attempts").dtype == "int32"
