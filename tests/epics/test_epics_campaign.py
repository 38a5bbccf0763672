"""EPICS end to end: a simulated lab served as a real caproto IOC (separate process, loopback),
labflow devices on ophyd EpicsSignals, and the quickstart recipe run against it unchanged."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labflow.lab import SimulatedLabConfig, load_lab_config
from labflow.launch import run_recipe
from labflow.store.provenance import read_campaign

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ioc")
    port = _free_udp_port()
    env = {
        "EPICS_CA_SERVER_PORT": str(port),
        "EPICS_CAS_SERVER_PORT": str(port),
        "EPICS_CA_ADDR_LIST": "127.0.0.1",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # for this process's Channel Access client (read when it starts)
    ready = tmp / "ready.txt"
    log = (tmp / "ioc.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "labflow.cli", "ioc", str(CONFIGS / "instrument_pc_epics_materials.yaml"),
                             "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, (tmp / "ioc.log").read_text()
        assert time.monotonic() < deadline, "the IOC did not start"
        time.sleep(0.05)
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _recipe_on(lab_config, **changes):
    from labflow.recipe import Recipe, check_against_lab, load_recipe

    r = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(**changes)
    r = Recipe(r.spec, source=r.source, text=r.text, lab_path=None, lab_config=lab_config)
    assert check_against_lab(r, lab_config) == []
    return r


def test_epics_lab_reports_units_and_limits_from_the_ioc(ioc):
    cfg = load_lab_config(CONFIGS / "lab_epics_materials.yaml")
    limits, outputs = cfg.limits()
    local, local_out = load_lab_config(CONFIGS / "sim_materials.yaml").limits()
    for name, i in local.items():
        assert (limits[name].unit, limits[name].low, limits[name].high) == (i.unit, i.low, i.high)
    assert outputs["product_yield"].unit == "percent"


def test_quickstart_campaign_over_epics_matches_the_simulated_lab(ioc, tmp_path):
    epics = load_lab_config(CONFIGS / "lab_epics_materials.yaml")
    epics1 = type(epics).model_validate({**epics.model_dump(), "stations": epics.model_dump()["stations"][:1]})
    local1 = SimulatedLabConfig.model_validate({**load_lab_config(CONFIGS / "sim_materials.yaml").model_dump(), "stations": 1})
    out_e = run_recipe(_recipe_on(epics1, budget=4), tmp_path / "epics", executor="local")
    out_l = run_recipe(_recipe_on(local1, budget=4), tmp_path / "local", executor="local")
    assert out_e.state.completed == out_l.state.completed == 4
    rec_e, rec_l = read_campaign(out_e.path), read_campaign(out_l.path)
    for col in ("temperature", "time", "dopant_fraction", "product_yield"):
        for a, b in zip(rec_e.experiments[col], rec_l.experiments[col]):
            assert math.isclose(a, b, rel_tol=1e-9), col
    # the run's data keys carry the IOC's units
    import h5py

    with h5py.File(out_e.path, "r", locking=False) as f:
        run = next(iter(f["runs"].values()))
        assert run["primary/station1_instrument_product_yield"].attrs["units"] == "percent"
        assert run["primary/station1_synthesis_temperature"].attrs["units"] == "K"


def test_a_value_outside_the_ioc_limits_is_refused_before_anything_moves(ioc):
    from bluesky import RunEngine

    from labflow.errors import DeviceError
    from labflow.plans import run_experiment

    lab = load_lab_config(CONFIGS / "lab_epics_materials.yaml").build()
    try:
        st = lab.stations[1]
        before = st.synthesis.temperature.get()
        with pytest.raises(DeviceError, match="outside the device limits"):
            RunEngine({}, context_managers=[])(run_experiment(st, {"temperature": "900 degC", "time": "5 min", "dopant_fraction": 0.1}))
        assert st.synthesis.temperature.get() == before
    finally:
        lab.close()
