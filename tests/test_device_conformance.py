"""`labflow.testing.check_device`: the simulated devices pass; broken drivers fail with a message that says why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ophyd import Component, Device, Signal
from ophyd.status import StatusBase

from labflow.lab import load_lab_config
from labflow.testing import check_device, device_checks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab():
    lab = load_lab_config(ROOT / "configs" / "sim_materials.yaml").build(seed=0)
    yield lab
    lab.close()


def test_simulated_stations_pass_every_check(lab):
    for station in lab.stations:
        check_device(station)


@pytest.mark.parametrize("check", device_checks(), ids=lambda c: c.__name__)
def test_each_check_on_the_simulated_devices(check, lab):
    check(lab.stations[0].synthesis)
    check(lab.stations[0].instrument)


def test_scaled_time_devices_pass_too():
    lab = load_lab_config(ROOT / "configs" / "sim_branin.yaml").build(seed=0, time_scale=1e-5)
    try:
        check_device(lab.stations[0])
    finally:
        lab.close()


class _NoUnits(Device):
    reading = Component(Signal, value=1.0, kind="hinted")

    def trigger(self):
        st = StatusBase(timeout=1.0)
        st.set_finished()
        return st


class _Unbounded(Device):
    def describe(self):
        return {}

    def read(self):
        return {}

    def trigger(self):  # a Status with no timeout that never finishes
        return StatusBase()


class _LyingStatus(StatusBase):
    """Claims a 0.2 s timeout but never fails when the time is up."""

    @property
    def timeout(self):
        return 0.2


class _Hangs(_Unbounded):
    def trigger(self):
        return _LyingStatus()


class _StopFails(_NoUnits):
    def describe(self):
        return {k: {**v, "units": "K"} for k, v in super().describe().items()}

    def stop(self, *, success=False):
        if getattr(self, "_stopped", False):
            raise RuntimeError("already stopped")
        self._stopped = True


class _BackInTime(_NoUnits):
    def describe(self):
        return {k: {**v, "units": "K"} for k, v in super().describe().items()}

    def read(self):
        self._t = getattr(self, "_t", time.time()) - 10
        return {k: {**v, "timestamp": self._t} for k, v in super().read().items()}


@pytest.mark.parametrize(
    "device, message",
    [
        (_NoUnits(name="dev"), "numeric key 'dev_reading' has no 'units'"),
        (_Unbounded(name="dev"), "without a finite timeout"),
        (_Hangs(name="dev"), "did not finish within its own timeout"),
        (_StopFails(name="dev"), "stop() raised RuntimeError"),
        (_BackInTime(name="dev"), "timestamp went backwards"),
    ],
    ids=["units", "timeout", "hang", "stop", "timestamps"],
)
def test_broken_devices_fail_with_a_message(device, message):
    with pytest.raises(AssertionError) as info:
        check_device(device)
    assert message in str(info.value)
