"""A campaign against device servers running in separate processes: the quickstart recipe runs
unchanged and gives the same results as against the local simulated lab."""

from __future__ import annotations

import math

import pytest

from labflow.lab import SimulatedLabConfig, load_lab_config
from labflow.launch import run_recipe
from labflow.records import Status
from labflow.store.provenance import read_campaign

from .helpers import CONFIGS, ServerProcess, pc_config, recipe_on, remote_lab


@pytest.fixture
def server(tmp_path):
    srv = ServerProcess(pc_config(tmp_path), tmp_path).start()
    yield srv
    srv.stop()


def test_the_shipped_remote_configs_load():
    from labflow.remote.lab import RemoteLabConfig, load_instrument_pc_config

    cfg = load_lab_config(CONFIGS / "lab_remote_materials.yaml")
    assert isinstance(cfg, RemoteLabConfig) and [s.name for s in cfg.stations] == ["station1", "station2"]
    pc, _ = load_instrument_pc_config(CONFIGS / "instrument_pc_materials.yaml")
    assert pc.endpoint.startswith("tcp://127.0.0.1:") and pc.serve is not None


def test_remote_lab_describes_itself_from_the_server(server):
    cfg = remote_lab(server.endpoint)
    limits, outputs = cfg.limits()
    local_limits, local_outputs = load_lab_config(CONFIGS / "sim_materials.yaml").limits()
    for name, i in local_limits.items():
        assert (limits[name].low, limits[name].high, limits[name].unit) == (i.low, i.high, i.unit)
    assert outputs["product_yield"].unit == "percent"


def test_quickstart_runs_unchanged_and_matches_the_local_lab(server, tmp_path):
    remote = recipe_on(remote_lab(server.endpoint, stations=("station1",)), budget=5)
    local_cfg = SimulatedLabConfig.model_validate({**load_lab_config(CONFIGS / "sim_materials.yaml").model_dump(), "stations": 1})
    local = recipe_on(local_cfg, budget=5)
    assert remote.spec == local.spec  # the same recipe: only the lab differs
    out_r = run_recipe(remote, tmp_path / "remote", executor="local")
    out_l = run_recipe(local, tmp_path / "local", executor="local")
    assert out_r.state.completed == out_l.state.completed == 5
    rec_r, rec_l = read_campaign(out_r.path), read_campaign(out_l.path)
    for col in ("temperature", "time", "dopant_fraction", "product_yield"):
        a, b = list(rec_r.experiments[col]), list(rec_l.experiments[col])
        assert all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b)), col
    assert set(rec_r.experiments["status"]) == {Status.COMPLETED.value}


def test_two_stations_share_one_server(server, tmp_path):
    r = recipe_on(remote_lab(server.endpoint), budget=6)
    out = run_recipe(r, tmp_path, executor="local")
    rec = read_campaign(out.path)
    assert out.state.completed == 6 and set(rec.experiments["station"]) == {"station1", "station2"}
