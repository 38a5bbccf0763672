"""The HDF5 provenance file: written as data arrives, readable by h5py and by labflow."""

import json

import h5py
import numpy as np
import pytest

from labflow import Objective, Real, Space
from labflow.errors import ProvenanceError
from labflow.store import ProvenanceWriter, read_campaign


@pytest.fixture()
def space():
    return Space([Real("temperature", 100, 300, unit="degC"), Real("time", 1, 60, unit="min")])


def _writer(path, space):
    return ProvenanceWriter(path, campaign="demo", space=space, objectives=[Objective("product_yield", unit="percent")],
                            recipe_text="name: demo\n", recipe={"name": "demo"}, recipe_hash="abc", seed=3, planner="sobol")


def test_experiments_and_suggestions_are_readable_while_the_file_is_open(tmp_path, space):
    path = tmp_path / "demo.h5"
    w = _writer(path, space)
    idx = w.record_suggestion(t=0.0, planner="sobol", generator="sobol", candidates=["u1"], n_observations=0,
                              state_hash="h", state={"seed": 3}, latency=0.01)
    w.record_experiment({"uid": "u1", "station": "s1", "status": "completed", "attempts": 1, "suggestion": idx,
                         "temperature": 150.0, "time": 30.0, "product_yield": 42.0, "t_started": 0, "t_finished": 1})
    # A reader sees the finished experiment before the writer closes (a crash would not lose it).
    rec = read_campaign(path)
    assert rec.summary()["completed"] == 1
    assert rec.best()["temperature"] == {"value": 150.0, "unit": "degC"}
    w.close()


def test_units_are_stored_as_attributes(tmp_path, space):
    path = tmp_path / "demo.h5"
    with _writer(path, space):
        pass
    with h5py.File(path, "r") as f:
        assert f["experiments/temperature"].attrs["units"] == "degC"
        assert f["experiments/product_yield"].attrs["units"] == "percent"
        assert f.attrs["recipe_hash"] == "abc"
        assert "bluesky" in f["versions"].attrs


def test_bluesky_documents_are_kept_whole_and_per_run(tmp_path, space):
    from bluesky import RunEngine
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    path = tmp_path / "demo.h5"
    RE = RunEngine({}, context_managers=[])
    with _writer(path, space) as w:
        RE.subscribe(w)
        (uid,) = RE(bp.scan([det], motor, -1, 1, 3, md={"experiment_uid": "u1"}))
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["documents/name"][()]]
        assert names[0] == "start" and names[-1] == "stop" and names.count("event") == 3
        run = f[f"runs/{uid}"]
        assert run.attrs["exit_status"] == "success"
        assert run["primary/det"].shape == (3,)
        assert json.loads(run.attrs["start"])["experiment_uid"] == "u1"


def test_a_campaign_file_is_never_overwritten(tmp_path, space):
    path = tmp_path / "demo.h5"
    _writer(path, space).close()
    with pytest.raises(ProvenanceError, match="already exists"):
        _writer(path, space)


def test_reading_a_file_that_is_not_a_campaign_names_the_problem(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ProvenanceError, match="not a labflow provenance file"):
        read_campaign(other)
    with pytest.raises(ProvenanceError, match="no provenance file"):
        read_campaign(tmp_path / "missing.h5")
