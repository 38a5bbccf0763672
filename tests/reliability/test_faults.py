"""Fault injection through the real loop: F1 hung set, F2 failing read and the failure budget,
F3 NaN/inf/text readings, F12 a planner that fails, P6 abandoned candidates, suspenders."""

from __future__ import annotations

import json
import math
import threading
import time

import h5py
import numpy as np
import pytest

from labflow import load_recipe
from labflow.campaign import Campaign, FailureBudget, LocalExecutor, StationRunner
from labflow.errors import FailureRateExceeded
from labflow.planners import make_planner
from labflow.planners.baselines import SobolPlanner
from labflow.records import Status
from labflow.store.provenance import ProvenanceWriter, read_campaign
from labflow.testing.faults import GloveboxOxygen, inject_fault, oxygen_interlock

from .helpers import wait_for, write_recipe


class Rig:
    """A recipe, its lab, a planner, a provenance file and the stations' runners, in process."""

    def __init__(self, tmp_path, *, budget=4, stations=1, timeout="1 s", retries=0, planner="sobol", time_scale=0.0,
                 synthesize=0, measure=0, suspenders=(), planner_obj=None):
        self.recipe = load_recipe(write_recipe(tmp_path, budget=budget, stations=stations, timeout=timeout, retries=retries,
                                               planner=planner, time_scale=time_scale, synthesize=synthesize, measure=measure))
        self.lab = self.recipe.lab_config.build(seed=0, time_scale=time_scale)
        r = self.recipe
        self.planner = planner_obj or make_planner(r.spec.planner.kind, r.space, r.objectives, seed=0)
        self.told = []
        real_tell = self.planner.tell

        def tell(obs):
            self.told.extend([obs] if not isinstance(obs, list) else obs)
            real_tell(obs)

        self.planner.tell = tell
        self.path = tmp_path / "p.h5"
        self.writer = ProvenanceWriter(self.path, campaign=r.name, space=r.space, objectives=r.objectives)
        self.runners = [StationRunner(st, r.space, r.objectives, subscribers=[self.writer], timeout=r.spec.execution.timeout_s,
                                      suspenders=suspenders) for st in self.lab.stations]
        self.executor = LocalExecutor(len(self.runners), retries=retries)

    def campaign(self, **kw):
        return Campaign(planner=self.planner, runners=self.runners, executor=self.executor, budget=self.recipe.budget,
                        writer=self.writer, **kw)

    def close(self):
        self.executor.close()
        self.writer.close()
        self.lab.close()


@pytest.fixture()
def rig(tmp_path):
    made = []

    def make(**kw):
        r = Rig(tmp_path, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_f1_a_hung_set_times_out_naming_device_signal_and_timeout_and_the_campaign_goes_on(rig):
    r = rig(budget=3, timeout="1 s")
    inj = inject_fault(r.lab.stations[0], "set", "hang", calls={1, 2})  # the first experiment's two parameters
    t0 = time.monotonic()
    state = r.campaign().run()
    wall = time.monotonic() - t0
    r.writer.close()
    rec = read_campaign(r.path)
    assert inj.fired == 2 and (state.failed, state.completed) == (1, 2)
    reason = rec.experiments["reason"].iloc[0]
    assert "station1_synthesis.x1" in reason and "1 s" in reason and "did not finish" in reason, reason
    blocked = rec.experiments["t_finished"].iloc[0] - rec.experiments["t_started"].iloc[0]
    assert blocked <= 1.0 + 1.0, blocked  # P5: blocked time <= timeout + 1 s
    assert wall < 10
    with h5py.File(r.path, "r") as f:
        (run_uid,) = rec.experiments["run_uids"].iloc[0].split(",")
        assert f[f"runs/{run_uid}"].attrs["exit_status"] == "fail"
    assert r.told[0].status is Status.FAILED  # the planner was told; the next experiment started


def test_f1_a_hung_measurement_is_bounded_by_the_device_status_timeout(rig):
    r = rig(budget=2, timeout="10 s")
    inject_fault(r.lab.stations[0], "measure", "hang", calls={1}, timeout=0.5)
    t0 = time.monotonic()
    state = r.campaign().run()
    assert time.monotonic() - t0 < 5 and (state.failed, state.completed) == (1, 1)
    reason = read_campaign(r.path).experiments["reason"].iloc[0]
    assert "station1_instrument" in reason and "measure" in reason and "0.5 s" in reason, reason


def test_f2_a_failing_read_is_recorded_and_the_campaign_continues(rig):
    r = rig(budget=4)
    inject_fault(r.lab.stations[0], "read", "raise", calls={2})
    state = r.campaign().run()
    rec = read_campaign(r.path)
    assert (state.completed, state.failed) == (3, 1)
    assert rec.experiments["status"].tolist() == ["completed", "failed", "completed", "completed"]
    assert "injected fault: raise on read" in rec.experiments["reason"].iloc[1]
    assert [o.status for o in r.told].count(Status.FAILED) == 1


def test_f2_p6_every_read_failing_stops_the_campaign_after_five_failures(rig):
    r = rig(budget=50)
    inject_fault(r.lab.stations[0], "read", "raise")
    with pytest.raises(FailureRateExceeded, match="5 of 5 experiments failed"):
        r.campaign().run()
    assert len(read_campaign(r.path).experiments) == 5  # stopped within 1 trial of crossing the threshold


def test_p6_the_failure_budget_is_configurable(rig):
    r = rig(budget=6)
    inject_fault(r.lab.stations[0], "read", "raise", calls={1, 2, 3})
    state = r.campaign(failure_budget=FailureBudget(max_fraction=0.9, min_failures=10)).run()
    assert (state.failed, state.completed) == (3, 3)


def test_f2_two_stations_stop_within_one_trial_and_the_in_flight_one_is_interrupted_not_failed(rig):
    r = rig(budget=50, stations=2, time_scale=1.0, synthesize=0.05)
    for st in r.lab.stations:
        inject_fault(st, "read", "raise")
    with pytest.raises(FailureRateExceeded):
        r.campaign().run()
    rec = read_campaign(r.path)
    assert len(rec.experiments) <= 6 and (rec.experiments["status"] == "failed").sum() >= 5


class _SamePoint(SobolPlanner):
    """A planner that insists on one point (to prove the loop, not the planner, abandons it)."""

    name = "same-point"

    def _propose(self, n, X_pending):
        self.last_generator = "same"
        return np.full((n, self.space.dim), 0.5)


def test_p6_a_candidate_failing_twice_for_the_same_reason_is_abandoned(rig, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r0", budget=4))
    r = rig(budget=4, retries=1, planner_obj=_SamePoint(recipe.space, recipe.objectives, seed=0))
    centre = {"x1": 2.5, "x2": 7.5}
    real_read = r.lab.stations[0].instrument.read

    def read():
        sample = r.lab.stations[0].synthesis.values()
        if all(abs(sample[k] - v) < 1e-9 for k, v in centre.items()):
            raise RuntimeError("detector saturated at this composition")
        return real_read()

    r.lab.stations[0].instrument.read = read
    state = r.campaign().run()
    rec = read_campaign(r.path)
    assert rec.experiments["abandoned"].tolist()[0] == 1 and rec.experiments["attempts"].iloc[0] == 2
    later = rec.experiments.iloc[1:]
    assert not ((later["x1"] - 2.5).abs().lt(1e-9) & (later["x2"] - 7.5).abs().lt(1e-9)).any()  # never proposed again
    assert set(later["generator"]) == {"fallback"} and state.abandoned == 1


def test_f3_nan_inf_and_text_readings_are_stored_raw_and_never_told_as_numbers(rig):
    r = rig(budget=5)
    st = r.lab.stations[0]
    inject_fault(st, "read", "nan", calls={1}, output="y")
    inject_fault(st, "read", "inf", calls={2}, output="y")
    inject_fault(st, "read", "-inf", calls={3}, output="y")
    inject_fault(st, "read", "text", calls={4}, output="y")
    state = r.campaign().run()
    assert (state.completed, state.failed) == (1, 4)
    r.writer.close()
    rec = read_campaign(r.path)
    assert rec.experiments["status"].tolist()[:4] == ["invalid"] * 4
    raws = [json.loads(x)["y"] for x in rec.experiments["raw"]]
    assert raws[0] == {"$float": "nan"}  # strict JSON: no NaN literal in the file's raw column
    assert raws[1:4] == [{"$float": "inf"}, {"$float": "-inf"}, "overload"]
    assert all("invalid reading" in x for x in rec.experiments["reason"][:4])
    with h5py.File(r.path, "r") as f:  # the run data keep the raw readings verbatim
        values = []
        for run_uids in rec.experiments["run_uids"][:4]:
            ds = f[f"runs/{run_uids}/primary/station1_instrument_y"][()]
            values.append(ds[0].decode() if isinstance(ds[0], bytes) else ds[0])
        assert np.isnan(values[0]) and values[1] == np.inf and values[2] == -np.inf and values[3] == "overload"
    told_numbers = [v for o in r.told for v in o.outcomes.values()]
    assert all(math.isfinite(v) for v in told_numbers) and len(told_numbers) == 1  # NaN in tell() = 0


class _Broken(SobolPlanner):
    name = "broken"

    def _propose(self, n, X_pending):
        raise RuntimeError("model fitting failed: not positive definite")


def test_f12_p14_a_planner_that_raises_cannot_wedge_the_loop(rig, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r0", budget=4))
    r = rig(budget=4, planner_obj=_Broken(recipe.space, recipe.objectives, seed=0))
    state = r.campaign().run()
    rec = read_campaign(r.path)
    assert state.completed == 4 and state.fallbacks == 4
    assert set(rec.experiments["generator"]) == {"fallback"}
    assert rec.experiments["x1"].between(-5, 10).all() and rec.experiments["x2"].between(0, 15).all()


def test_f12_the_bayesian_planner_falls_back_when_fitting_fails(rig, monkeypatch):
    from labflow.planners import bayesian

    def boom(*a, **k):
        raise RuntimeError("ModelFittingError: injected")

    monkeypatch.setattr(bayesian.BayesianPlanner, "_fit", boom)
    r = rig(budget=6, planner="bayesian")
    r.planner.n_initial = 2
    state = r.campaign().run()
    gens = read_campaign(r.path).experiments["generator"].tolist()
    assert state.completed == 6 and gens[:2] == ["sobol", "sobol"] and set(gens[2:]) == {"fallback"}, gens


def test_p8_an_interlock_suspends_the_campaign_and_it_resumes_when_the_signal_recovers(rig):
    oxygen = GloveboxOxygen(value=0.5)
    r = rig(budget=6, stations=2, time_scale=1.0, synthesize=0.2, suspenders=[lambda: oxygen_interlock(oxygen, max_ppm=10, resume_below=5)])
    c = r.campaign()
    done = threading.Event()
    errors = []

    def run():
        try:
            c.run()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=run)
    t.start()
    try:
        wait_for(lambda: c.state.finished >= 1, 20, "a first experiment")
        oxygen.put(50.0)  # oxygen out of range: runs suspend
        time.sleep(0.5)
        held = c.state.finished
        time.sleep(1.0)
        assert c.state.finished == held, "experiments finished while the interlock was tripped"
        oxygen.put(1.0)  # recovered: runs resume by themselves
        assert done.wait(30)
    finally:
        oxygen.put(1.0)
        t.join(30)
    assert not errors and c.state.completed == 6
    r.writer.close()
    rec = read_campaign(r.path)
    with h5py.File(r.path, "r") as f:  # resumed runs carry no duplicate events
        for run_uid in rec.experiments["run_uids"]:
            stop = json.loads(f[f"runs/{run_uid}"].attrs["stop"])
            assert stop["exit_status"] == "success" and stop["num_events"]["primary"] == 1


def test_p8_pause_and_resume_in_process(rig):
    r = rig(budget=4, stations=1, time_scale=1.0, synthesize=0.5)
    c = r.campaign()
    t = threading.Thread(target=c.run)
    t.start()
    try:
        wait_for(lambda: c.state.busy, 20, "an experiment in flight")
        c.request_pause(defer=False)
        time.sleep(1.0)
        held = c.state.finished
        time.sleep(0.8)
        assert c.state.finished == held and c.control.state == "paused"
        c.resume()
    finally:
        c.resume()
        t.join(60)
    assert c.state.completed == 4 and c.state.interrupted == 0


def test_f1_a_read_that_never_returns_fails_its_experiment_naming_the_device_and_the_station_goes_on(rig):
    r = rig(budget=3, timeout="0.5 s")
    inj = inject_fault(r.lab.stations[0], "read", "hang", calls={1}, timeout=60)  # the first read blocks for a minute
    try:
        t0 = time.monotonic()
        state = r.campaign().run()
        wall = time.monotonic() - t0
    finally:
        inj.release.set()  # let the abandoned read thread finish
    assert inj.fired == 1 and (state.failed, state.completed) == (1, 2)
    assert wall < 20, wall  # far less than the minute the read would have blocked
    rec = read_campaign(r.path)
    reason = rec.experiments["reason"].iloc[0]
    assert "read: station1_instrument did not return a reading within 0.5 s" in reason, reason
    assert list(rec.experiments["status"]) == ["failed", "completed", "completed"]
