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


class Ioc:
    """``labflow ioc CONFIG`` in a subprocess on loopback; ``kill()`` and ``start()`` again on the same port."""

    def __init__(self, tmp: Path, env: dict, config: Path) -> None:
        self.tmp, self.env, self.config = tmp, env, config
        self.proc: subprocess.Popen | None = None
        self.serving: Path | None = None
        self.starts = 0

    def ensure(self, config: Path | None = None) -> Ioc:
        """Serve ``config`` (the default one if None), restarting only if another one is served."""
        config = config or self.config
        if self.serving != config or self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start(config)
        return self

    def start(self, config: Path | None = None) -> Ioc:
        self.starts += 1
        self.serving = config or self.config
        ready = self.tmp / f"ready{self.starts}.txt"
        log = (self.tmp / f"ioc{self.starts}.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "labflow.cli", "ioc", str(config or self.config), "--ready-file", str(ready)],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert self.proc.poll() is None, (self.tmp / f"ioc{self.starts}.log").read_text()
            assert time.monotonic() < deadline, "the IOC did not start"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def ioc_process(tmp_path_factory):
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
    server = Ioc(tmp, env, CONFIGS / "instrument_pc_epics_materials.yaml")
    yield server
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture()
def ioc(ioc_process):
    """The materials IOC (restarted only when a test before this one served another lab)."""
    return ioc_process.ensure()


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


def test_a_lost_ioc_suspends_the_run_and_it_resumes_when_the_ioc_is_back(ioc, tmp_path):
    """kill -9 the IOC mid-synthesis, restart it 2 s later: the run is suspended, not failed."""
    import threading

    from labflow.campaign import Campaign, LocalExecutor, StationRunner
    from labflow.planners import make_planner

    slow = tmp_path / "slow_materials.yaml"
    slow.write_text((CONFIGS / "sim_materials.yaml").read_text().replace("time_scale: 0 ", "time_scale: 0.002 "))
    slow_ioc = tmp_path / "slow_ioc.yaml"
    slow_ioc.write_text(f"name: slow-ioc\nprefix: 'LF:'\nlab: {slow}\nseed: 0\ninterfaces: [127.0.0.1]\n")
    ioc.ensure(slow_ioc)  # a synthesis now takes seconds, long enough to lose the IOC in the middle of one
    epics = load_lab_config(CONFIGS / "lab_epics_materials.yaml")
    # a restarted IOC on a loaded CI machine can take more than the default 5 s to answer its first search
    cfg = type(epics).model_validate({**epics.model_dump(), "stations": epics.model_dump()["stations"][:1], "timeout": 60,
                                      "connection_timeout": 30})
    recipe = _recipe_on(cfg, budget=2)
    lab = cfg.build()
    station = lab.stations[0]
    docs: list[tuple[str, dict, float]] = []
    runner = StationRunner(station, recipe.space, recipe.objectives, subscribers=[lambda n, d: docs.append((n, d, time.monotonic()))],
                           timeout=recipe.spec.execution.timeout_s)
    executor = LocalExecutor(1)
    campaign = Campaign(planner=make_planner("random", recipe.space, recipe.objectives, seed=0), runners=[runner],
                        executor=executor, budget=2)
    errors: list[BaseException] = []

    def run():
        try:
            campaign.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while not any(n == "start" for n, _, _ in docs):
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.05)
        time.sleep(0.5)  # the parameters are set; the synthesis is under way
        ioc.kill()
        t_kill = time.monotonic()
        deadline = time.monotonic() + 30
        while station.connection.lost.get() != 1:
            assert time.monotonic() < deadline, "Channel Access did not notice the lost IOC"
            time.sleep(0.05)
        t_lost = time.monotonic()
        time.sleep(2.0)
        assert not any(n == "stop" for n, _, t in docs if t > t_kill), "no RunStop while suspended"
        ioc.start(slow_ioc)
        t_back = time.monotonic()
        thread.join(120)
        print(f"IOC lost {t_kill - docs[0][2]:.2f} s into the first run, noticed {t_lost - t_kill:.2f} s later; back after {t_back - t_kill:.2f} s; "
              + ", ".join(f"{n} at {t - t_kill:+.2f} s" for n, _, t in docs if n in ("start", "stop")))
        assert not thread.is_alive() and not errors, errors
    finally:
        executor.close()
        lab.close()
    assert campaign.state.completed == 2 and campaign.state.failed == 0
    stops = [(d, t) for n, d, t in docs if n == "stop"]
    assert [s["exit_status"] for s, _ in stops] == ["success", "success"]  # suspended, not failed
    assert stops[0][1] > t_kill + 2.0  # the first run was the one cut off: it waited for the IOC
    assert station.connection.lost.get() == 0 and station.connection.disconnected == []
