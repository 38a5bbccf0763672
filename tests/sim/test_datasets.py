"""Dataset descriptions and the loader: the five Liang pools and a lab's own CSV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from labflow.errors import RecipeError
from labflow.sim.datasets import (
    BUILTIN_DATASETS,
    DatasetDescription,
    describe_csv,
    load_dataset,
    load_description,
)
from labflow.space import Integer, Real

# name: (N, best aggregated value, direction, M = ceil(0.05 N), 5 % cut-off) from the data README
LIANG = {
    "p3ht": (178, 838.31, "maximize", 9, 696.39),
    "agnp": (164, 0.148361, "minimize", 9, 0.2281),
    "perovskite": (94, 27122.0, "minimize", 5, 73000.0),
    "crossed_barrel": (600, 46.7114, "maximize", 30, 34.47),
    "autoam": (100, 0.936549, "maximize", 5, 0.9021),
}


def write_csv(path, text: str, bom: bool = False) -> None:
    """Write ``text`` with CRLF line endings and no final newline, as the Liang files are."""
    data = text.strip("\n").replace("\n", "\r\n").encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def write_description(path, **fields) -> None:
    path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")


FILMS = """
Anneal T (C),Spin speed,PCE (%)
100,1000,10.0
100,1000,10.0
100,1000,16.0
150,2000,12.0
200,3000,8.0
"""

FILMS_DESCRIPTION = dict(
    name="films",
    file="films.csv",
    inputs=[
        {"column": "Anneal T (C)", "name": "anneal_temperature", "unit": "degC"},
        {"column": "Spin speed", "name": "spin_speed", "unit": "rpm", "type": "integer"},
    ],
    objective={"column": "PCE (%)", "name": "pce", "unit": "percent", "direction": "maximize"},
)


@pytest.fixture
def films(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS, bom=True)
    write_description(tmp_path / "films.yaml", **FILMS_DESCRIPTION)
    return tmp_path / "films.yaml"


# -- the five Liang pools ------------------------------------------------------------
@pytest.mark.needs_data
@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_liang_pool_sizes_best_values_and_directions(name, data_dir):
    n, best, direction, m, cutoff = LIANG[name]
    ds = load_dataset(name, data_dir=data_dir)
    assert ds.n == n
    assert ds.objective.direction == direction
    assert ds.best_value() == pytest.approx(best, rel=1e-5)
    good = ds.good_set(0.05)
    assert len(good) == m == math.ceil(0.05 * n)
    assert ds.y[good[0]] == pytest.approx(best, rel=1e-5)
    assert ds.y[good[-1]] == pytest.approx(cutoff, rel=1e-3)  # the M-th best is the README's cut-off
    assert list(ds.frame.columns) == ds.space.names + [ds.objective.name]
    assert ds.frame[ds.space.names].duplicated().sum() == 0  # one row per unique input vector


@pytest.mark.needs_data
def test_perovskite_byte_order_mark_is_stripped(data_dir):
    desc, _ = load_description("perovskite")
    assert desc.inputs[0].column == "CsPbI"  # not "\ufeffCsPbI"
    ds = load_dataset("perovskite", data_dir=data_dir)
    assert ds.space.names == ["cs_fraction", "fa_fraction", "ma_fraction"]
    assert len(ds.raw) == 139


@pytest.mark.needs_data
def test_crossed_barrel_is_a_grid_with_an_integer_column(data_dir):
    ds = load_dataset("crossed_barrel", data_dir=data_dir)
    assert isinstance(ds.space["n_columns"], Integer)
    assert isinstance(ds.space["radius"], Real) and ds.space["radius"].unit == "mm"
    assert list(ds.levels["n_columns"]) == [6, 8, 10, 12]
    assert set(ds.replicates) == {3}  # 1,800 rows = 600 designs x 3
    assert ds.replicate_noise() > 0


@pytest.mark.needs_data
def test_composition_pools_carry_their_sum_constraint(data_dir):
    ds = load_dataset("p3ht", data_dir=data_dir)
    (c,) = ds.constraints
    assert c.total == 100 and len(c.inputs) == 5
    assert np.abs(ds.constraint_residuals()[0]).max() <= c.tolerance


def test_shipped_descriptions_name_their_file_only():
    for name in BUILTIN_DATASETS:
        desc, path = load_description(name)
        assert path.name == f"{name}.yaml"
        assert "/" not in desc.file and desc.file.endswith(".csv")


# -- a lab's own CSV: quirks ---------------------------------------------------------
def test_bom_crlf_and_replicates_mean_of_distinct_values(films):
    ds = load_dataset(films)
    assert ds.n == 3
    assert ds.space.names == ["anneal_temperature", "spin_speed"]
    # (100, 1000) was measured 10, 10, 16: Liang's rule averages the distinct values -> 13, not 12
    row = ds.frame[(ds.frame.anneal_temperature == 100)].iloc[0]
    assert row["pce"] == pytest.approx(13.0)
    assert list(ds.replicates) == [3, 1, 1]
    assert ds.space["spin_speed"].low == 1000 and ds.space["spin_speed"].high == 3000  # bounds from the data
    assert ds.good_set(0.05).tolist() == [0]  # ceil(0.05*3) = 1: the best


def test_replicates_plain_mean_when_asked(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS)
    write_description(tmp_path / "films.yaml", **{**FILMS_DESCRIPTION, "replicates": "mean"})
    ds = load_dataset(tmp_path / "films.yaml")
    assert ds.frame.loc[0, "pce"] == pytest.approx(12.0)


def test_good_set_follows_the_direction(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS)
    obj = {**FILMS_DESCRIPTION["objective"], "direction": "minimize"}
    write_description(tmp_path / "films.yaml", **{**FILMS_DESCRIPTION, "objective": obj})
    ds = load_dataset(tmp_path / "films.yaml")
    assert ds.y[ds.good_set(0.05)].tolist() == [8.0]
    assert ds.scores().tolist() == (-ds.y).tolist()


def test_missing_column_names_the_file_and_the_column(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS.replace("Spin speed", "Spin rate"))
    write_description(tmp_path / "films.yaml", **FILMS_DESCRIPTION)
    with pytest.raises(RecipeError) as err:
        load_dataset(tmp_path / "films.yaml")
    (problem,) = err.value.problems
    assert problem.path == "inputs[1].column"
    assert "'Spin speed'" in problem.message and "films.csv" in problem.message and "Spin rate" in problem.message


def test_missing_file_says_where_it_looked_and_how_to_fix(tmp_path):
    write_description(tmp_path / "films.yaml", **FILMS_DESCRIPTION)
    with pytest.raises(RecipeError) as err:
        load_dataset(tmp_path / "films.yaml", data_dir=tmp_path / "nowhere")
    assert "films.csv" in str(err.value) and "LABFLOW_DATA" in str(err.value)
    assert err.value.problems[0].path == "file"


def test_data_folder_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "films.csv", FILMS)
    desc = DatasetDescription.model_validate(FILMS_DESCRIPTION)
    monkeypatch.setenv("LABFLOW_DATA", str(tmp_path / "data"))
    assert load_dataset(desc).n == 3


def test_description_refuses_unknown_keys_and_keyword_names(tmp_path):
    bad = {**FILMS_DESCRIPTION, "colour": "blue"}
    bad["inputs"] = [{**FILMS_DESCRIPTION["inputs"][0], "name": "lambda"}, FILMS_DESCRIPTION["inputs"][1]]
    write_description(tmp_path / "bad.yaml", **bad)
    with pytest.raises(RecipeError) as err:
        load_dataset(tmp_path / "bad.yaml")
    paths = {p.path for p in err.value.problems}
    assert {"colour", "inputs.0.name"} <= paths


def test_values_off_the_declared_levels_are_refused(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS)
    inputs = [{**FILMS_DESCRIPTION["inputs"][0], "levels": [100, 200]}, FILMS_DESCRIPTION["inputs"][1]]
    write_description(tmp_path / "films.yaml", **{**FILMS_DESCRIPTION, "inputs": inputs})
    with pytest.raises(RecipeError, match="not among the levels") as err:
        load_dataset(tmp_path / "films.yaml")
    assert err.value.problems[0].path == "inputs[0].levels"


def test_violated_sum_constraint_is_reported(tmp_path):
    write_csv(tmp_path / "mix.csv", "A,B,y\n0.5,0.5,1\n0.2,0.7,2\n0.9,0.1,3")
    write_description(
        tmp_path / "mix.yaml",
        name="mix",
        file="mix.csv",
        inputs=[{"column": "A", "name": "a"}, {"column": "B", "name": "b"}],
        objective={"column": "y", "name": "y", "direction": "maximize"},
        constraints=[{"type": "sum", "inputs": ["a", "b"], "total": 1, "tolerance": 0.01}],
    )
    with pytest.raises(RecipeError, match="constraints violated") as err:
        load_dataset(tmp_path / "mix.yaml")
    assert err.value.problems[0].path == "constraints[0]"


def test_describe_csv_drafts_a_description(tmp_path):
    write_csv(tmp_path / "films.csv", FILMS, bom=True)
    desc = describe_csv(tmp_path / "films.csv", direction="maximize")
    assert [i.name for i in desc.inputs] == ["anneal_t_c", "spin_speed"]
    assert desc.objective.column == "PCE (%)" and desc.objective.name == "pce"
    assert load_dataset(desc, data_dir=tmp_path).n == 3
