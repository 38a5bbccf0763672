"""The closed loop end to end: recipe -> planner -> bluesky/ophyd -> HDF5 -> planner."""

import json
import time
import textwrap
from pathlib import Path

import h5py
import numpy as np

from labflow import load_recipe
from labflow.launch import run_recipe
from labflow.store import read_campaign

ROOT = Path(__file__).resolve().parents[1]


def recipe_with_lab(tmp_path, lab_yaml: str, budget: int = 8, planner: str = "sobol", executor: str = "local"):
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(lab_yaml))
    (tmp_path / "r.yaml").write_text(textwrap.dedent(f"""
        name: faulty
        lab: lab.yaml
        parameters:
          - {{name: x1, low: -5, high: 10}}
          - {{name: x2, low: 0, high: 15}}
        objectives:
          - {{name: y, direction: minimize}}
        planner: {{kind: {planner}}}
        budget: {budget}
        execution: {{executor: {executor}, retries: 0}}
    """))
    return load_recipe(tmp_path / "r.yaml")


BRANIN_LAB = """
    name: branin-lab
    kind: simulated
    stations: {stations}
    landscape: {{name: branin}}
    failure_rate: {failure_rate}
"""


def test_quickstart_runs_on_prefect_with_every_document_recorded(tmp_path, prefect_server):
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    n_initial = recipe.spec.planner.options["n_initial"]
    budget = n_initial + 2  # past the initial design: the GP proposes the last two experiments
    outcome = run_recipe(recipe, tmp_path, budget=budget, executor="prefect")
    rec = read_campaign(outcome.path)
    assert outcome.path.parent == tmp_path and outcome.path.name.startswith("quickstart-")
    assert (rec.summary()["experiments"], rec.summary()["completed"]) == (budget, budget)
    assert set(rec.experiments["station"]) == {"station1", "station2"}  # one experiment in flight per station
    with h5py.File(outcome.path, "r") as f:
        for uid, run_uids in zip(rec.experiments["uid"], rec.experiments["run_uids"]):
            (run_uid,) = run_uids.split(",")
            start = json.loads(f[f"runs/{run_uid}"].attrs["start"])
            assert start["experiment_uid"] == uid
            assert start["campaign_id"] == rec.attrs["campaign_id"]
            assert start["recipe_hash"] == rec.attrs["recipe_hash"]
            assert (start["planner"], start["seed"]) == ("bayesian", 0)
            assert f[f"runs/{run_uid}"].attrs["exit_status"] == "success"
        # Units travel with the data: the recipe's degC in the table, the device's kelvin in the run.
        assert f["experiments/temperature"].attrs["units"] == "degC"
        run = f[f"runs/{run_uid}/primary"]
        (key,) = [k for k in run if k.endswith("_synthesis_temperature")]
        assert run[key].attrs["units"] == "K"
    # each suggestion is stored with the planner state that produced it
    assert len(rec.suggestions) == budget and rec.suggestions["n_observations"].iloc[0] == 0
    generators = list(rec.suggestions["generator"])
    assert generators[:n_initial] == ["sobol"] * n_initial
    model_made = rec.suggestions.iloc[n_initial:]
    assert all(g not in ("sobol", "fallback") for g in model_made["generator"]), generators
    assert all("model" in json.loads(d) for d in model_made["decision"])  # a fitted GP made these
    # In the Prefect UI each experiment is a task run named by its number and station.
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60)  # task runs reach the server as events
    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[outcome.path.stem])))
        deadline = time.monotonic() + 60
        while len(names := {t.name for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run.id]}))}) < budget:
            assert time.monotonic() < deadline, names
            time.sleep(0.5)
    assert {n.rsplit("-", 1)[0] for n in names} == {f"experiment-{i:04d}" for i in range(1, budget + 1)}, names
    assert {n.rsplit("-", 1)[1] for n in names} == {"station1", "station2"}, names


def test_same_seed_same_campaign(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "branin.yaml").replace(budget=8)
    a = read_campaign(run_recipe(recipe, tmp_path / "a", executor="local").path).experiments
    b = read_campaign(run_recipe(recipe, tmp_path / "b", executor="local").path).experiments
    np.testing.assert_array_equal(a[["x1", "x2", "y"]].to_numpy(), b[["x1", "x2", "y"]].to_numpy())


def test_bayesian_campaign_beats_its_initial_design_on_branin(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "branin.yaml")  # 6 Sobol points, then 14 BO steps
    rec = read_campaign(run_recipe(recipe, tmp_path, executor="local").path)
    initial = rec.experiments["y"].iloc[:6].min()
    final = rec.experiments["y"].min()
    assert final < initial and final < 1.0, (initial, final)


def test_instrument_failures_are_recorded_and_the_campaign_goes_on(tmp_path):
    recipe = recipe_with_lab(tmp_path, BRANIN_LAB.format(stations=2, failure_rate=0.5), budget=10)
    outcome = run_recipe(recipe, tmp_path / "out")
    rec = read_campaign(outcome.path)
    failed = rec.experiments[rec.experiments["status"] == "failed"]
    assert len(rec.experiments) == 10 and 0 < len(failed) < 10
    assert failed["reason"].str.contains("simulated instrument fault").all()
    with h5py.File(outcome.path, "r") as f:
        for run_uid in failed["run_uids"]:
            assert f[f"runs/{run_uid}"].attrs["exit_status"] == "fail"


def test_busy_stations_never_get_the_same_point(tmp_path):
    recipe = recipe_with_lab(tmp_path, BRANIN_LAB.format(stations=3, failure_rate=0.0), budget=9, planner="bayesian")
    rec = read_campaign(run_recipe(recipe, tmp_path / "out").path)
    points = rec.experiments[["x1", "x2"]].round(6)
    assert not points.duplicated().any()


def test_virtual_time_gives_a_deterministic_makespan(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"}, budget=12)
    a = run_recipe(recipe, tmp_path / "a", executor="virtual")
    b = run_recipe(recipe, tmp_path / "b", executor="virtual")
    assert a.makespan == b.makespan > 3600  # 12 experiments of minutes each on 2 stations, in virtual seconds
    assert 0.5 < a.utilization <= 1.0  # the last experiment runs while the other station idles
    ea, eb = read_campaign(a.path).experiments, read_campaign(b.path).experiments
    np.testing.assert_array_equal(ea["t_finished"], eb["t_finished"])
