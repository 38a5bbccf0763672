"""Simulated devices: a sample passes from station to instrument; noise is seeded; durations
delay Statuses by time_scale; faults are injected on purpose."""

import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from labflow.devices import OperationTimeoutError
from labflow.errors import DeviceError
from labflow.sim import (
    Branin,
    DurationModel,
    MaterialsLandscape,
    SampleHandoff,
    make_sim_instrument,
    make_sim_station,
)


def make_pair(landscape=None, **instrument_options):
    landscape = landscape or Branin()
    bench = SampleHandoff()
    common = {k: instrument_options.pop(k) for k in ("durations", "time_scale", "timeout") if k in instrument_options}
    station = make_sim_station("oven", landscape, bench, **common)
    instrument = make_sim_instrument("xrd", landscape, bench, **common, **instrument_options)
    return station, instrument


def make_and_measure(station, instrument, **params):
    for name, value in params.items():
        getattr(station, name).set(value)
    station.trigger()
    instrument.trigger()
    return instrument.read()["xrd_y"]["value"]


def test_a_sample_passes_from_station_to_instrument():
    station, instrument = make_pair()
    assert make_and_measure(station, instrument, x1=3.14159265, x2=2.275) == pytest.approx(0.397887, abs=1e-6)
    sample = station.handoff.current
    assert sample.station == "oven" and sample.params == {"x1": 3.14159265, "x2": 2.275}


def test_measuring_before_any_synthesis_fails():
    station, instrument = make_pair()
    status = instrument.trigger()
    assert "no sample to measure" in str(status.exception())


def test_noise_is_seeded_and_reproducible():
    readings = []
    for seed in (7, 7, 8):
        station, instrument = make_pair(noise_std={"y": 0.5}, seed=seed)
        readings.append([make_and_measure(station, instrument, x1=1.0, x2=2.0) for _ in range(3)])
    assert readings[0] == readings[1]
    assert readings[0] != readings[2]
    clean = Branin().evaluate({"x1": 1.0, "x2": 2.0})["y"]
    assert all(abs(r - clean) < 3 for r in readings[0]) and len(set(readings[0])) == 3


def test_time_scale_zero_is_instant():
    durations = DurationModel.parse({"set": "5 s", "synthesize": "20 min", "measure": "5 min"})
    station, instrument = make_pair(durations=durations, time_scale=0)
    assert station.x1.set(1.0).done
    assert station.trigger().done
    assert instrument.trigger().done


def test_a_small_time_scale_delays_the_status():
    durations = DurationModel.parse({"set": "100 s", "synthesize": "200 s", "measure": "100 s"})
    station, instrument = make_pair(durations=durations, time_scale=0.001)  # 0.1 s, 0.2 s, 0.1 s of wall time
    status = station.x1.set(2.0)
    assert not status.done  # 0.1 s of wall time to go
    status.wait(timeout=5)
    assert status.success and station.x1.get() == 2.0
    making = station.trigger()
    assert not making.done
    making.wait(timeout=5)
    measuring = instrument.trigger()
    assert not measuring.done
    measuring.wait(timeout=5)
    assert instrument.read()["xrd_y"]["value"] == pytest.approx(Branin().evaluate({"x1": 2.0, "x2": 0.0})["y"])


def test_synthesis_takes_its_duration_from_the_time_parameter():
    durations = DurationModel.parse({"set": "5 s", "synthesize": "20 min", "measure": "5 min"})
    station, _ = make_pair(MaterialsLandscape(), durations=durations)
    params = {"temperature": "150 degC", "time": "30 min", "dopant_fraction": 0.3}
    assert station.expected_duration(params) == pytest.approx(5 + 1800)
    branin_station, branin_instrument = make_pair(durations=durations)
    assert branin_station.expected_duration({"x1": 0.0, "x2": 0.0}) == pytest.approx(5 + 1200)
    assert branin_instrument.expected_duration() == pytest.approx(300)


def test_durations_parse_with_pint():
    d = DurationModel.parse({"set": "5 s", "synthesize": "20 min", "measure": 30})
    assert (d.set, d.synthesize, d.measure) == (5.0, 1200.0, 30.0)
    with pytest.raises(ValueError):
        DurationModel.parse({"set": "5 m"})  # metres are not a duration


def test_a_slow_instrument_times_out_naming_it():
    durations = DurationModel.parse({"measure": "10 min"})
    station, instrument = make_pair(durations=durations, time_scale=1.0, timeout=0.05)
    station.x1.set(1.0)
    exc = instrument.trigger().exception(timeout=5)
    assert isinstance(exc, OperationTimeoutError)
    assert "xrd: measure did not finish within 0.05 s" in str(exc)
    instrument.stop()


def test_failure_rate_one_ends_the_run_with_exit_status_fail():
    station, instrument = make_pair(failure_rate=1.0, seed=3)
    RE = RunEngine({}, context_managers=[])
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc), "stop")

    @bpp.run_decorator(md={"purpose": "fault injection"})
    def plan():
        yield from bps.trigger(station, wait=True)
        yield from bps.trigger_and_read([instrument])

    with pytest.raises(FailedStatus) as info:
        RE(plan())
    assert isinstance(info.value.__cause__, DeviceError)
    assert "simulated instrument fault" in str(info.value.__cause__)
    assert stops[0]["exit_status"] == "fail"


def test_failure_rate_is_seeded():
    outcomes = []
    for _ in range(2):
        station, instrument = make_pair(failure_rate=0.5, seed=11)
        station.trigger()
        outcomes.append([instrument.trigger().success for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert 0 < sum(outcomes[0]) < 20


def test_noise_for_an_unknown_output_is_rejected():
    with pytest.raises(ValueError, match="unknown outputs"):
        make_pair(noise_std={"z": 1.0})
