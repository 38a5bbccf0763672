"""run_experiment: one experiment is one bluesky run, on the real RunEngine."""

from collections.abc import Mapping

import pytest
from bluesky import RunEngine

from labflow.devices import ParameterLimitError
from labflow.errors import DeviceError, DeviceTimeoutError, UnitError
from labflow.lab import Station, parse_lab_config
from labflow.plans import extract_outcomes, run_experiment
from labflow.sim import Input, Landscape, Output, SampleHandoff, make_sim_instrument, make_sim_station
from labflow.units import Quantity

RECIPE_POINT = {"temperature": Quantity(150, "degC"), "time": Quantity(20, "min"), "dopant_fraction": 0.3}


def materials_lab(**overrides):
    config = {
        "name": "test-lab",
        "kind": "simulated",
        "stations": 1,
        "landscape": {"name": "materials", "noise_std": {"product_yield": 0.5}},
        "durations": {"set": "5 s", "synthesize": "20 min", "measure": "5 min"},
        **overrides,
    }
    return parse_lab_config(config).build(seed=0)


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


@pytest.fixture
def docs(RE):
    collected: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: collected.append((name, doc)))
    return collected


def only(docs, name):
    found = [d for n, d in docs if n == name]
    assert len(found) == 1, f"expected one {name} document, got {len(found)}"
    return found[0]


def test_one_experiment_is_one_run(RE, docs):
    lab = materials_lab()
    station = lab.stations[0]
    (uid,) = RE(run_experiment(station, RECIPE_POINT, {"candidate_uid": "c-1", "campaign": "demo"}))

    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]
    start, event, stop = only(docs, "start"), only(docs, "event"), only(docs, "stop")
    assert start["uid"] == uid and start["candidate_uid"] == "c-1" and start["campaign"] == "demo"
    assert start["station"] == "station1" and start["plan_name"] == "run_experiment"
    assert stop["exit_status"] == "success"

    data = event["data"]
    assert data["station1_synthesis_temperature"] == pytest.approx(423.15)  # 150 degC, set in kelvin
    assert data["station1_synthesis_time"] == pytest.approx(1200.0)  # 20 min, set in seconds
    outcomes = extract_outcomes(station, event, ["product_yield"])
    clean = lab.landscape.evaluate({"temperature": 423.15, "time": 1200.0, "dopant_fraction": 0.3})
    assert outcomes["product_yield"] == pytest.approx(clean["product_yield"], abs=3)  # noise_std 0.5 %
    units = only(docs, "descriptor")["data_keys"]
    assert units[station.reading_key("product_yield")]["units"] == "percent"
    assert units["station1_synthesis_temperature"]["units"] == "K"
    lab.close()


def test_text_and_plain_numbers_are_accepted(RE, docs):
    lab = materials_lab()
    params = {"temperature": "200 degC", "time": 600.0, "dopant_fraction": 0.5}  # 600.0: device unit (s)
    RE(run_experiment(lab.stations[0], params, {}))
    data = only(docs, "event")["data"]
    assert data["station1_synthesis_temperature"] == pytest.approx(473.15)
    assert data["station1_synthesis_time"] == 600.0
    assert only(docs, "start")["parameters"]["time"] == 600.0


def test_a_unit_mismatch_fails_the_run_before_anything_moves(RE, docs):
    lab = materials_lab()
    station = lab.stations[0]
    bad = {**RECIPE_POINT, "time": Quantity(3, "m")}
    with pytest.raises(UnitError) as info:
        RE(run_experiment(station, bad, {}))
    assert "time" in str(info.value) and "m" in str(info.value) and "s ([time])" in str(info.value)
    stop = only(docs, "stop")
    assert stop["exit_status"] == "fail" and "time" in stop["reason"]
    assert station.synthesis.temperature.get() == 323.15  # untouched: nothing moved
    assert station.synthesis.handoff.current is None


def test_a_value_outside_the_limits_fails_before_anything_moves(RE, docs):
    lab = materials_lab()
    station = lab.stations[0]
    with pytest.raises(ParameterLimitError, match=r"temperature: 773.15 K is outside the device limits \[323.15, 673.15\] K"):
        RE(run_experiment(station, {**RECIPE_POINT, "temperature": "500 degC"}, {}))
    assert station.synthesis.time.get() == 30.0
    assert only(docs, "stop")["exit_status"] == "fail"


def test_missing_and_unknown_parameters_are_named(RE):
    lab = materials_lab()
    with pytest.raises(DeviceError, match=r"unknown parameters \['pressure'\] and missing parameters \['dopant_fraction'\]"):
        RE(run_experiment(lab.stations[0], {"temperature": 400.0, "time": 60.0, "pressure": 1.0}, {}))


def test_an_instrument_fault_propagates_and_fails_the_run(RE, docs):
    lab = materials_lab(failure_rate=1.0)
    with pytest.raises(DeviceError, match="simulated instrument fault"):
        RE(run_experiment(lab.stations[0], RECIPE_POINT, {"candidate_uid": "c-2"}))
    stop = only(docs, "stop")
    assert stop["exit_status"] == "fail"
    assert "station1_instrument: simulated instrument fault" in stop["reason"]
    assert [n for n, _ in docs].count("event") == 0


def test_a_wait_past_the_timeout_names_what_hung(RE, docs):
    durations = {"set": "0 s", "synthesize": "20 min", "measure": "5 min"}
    lab = materials_lab(time_scale=1.0, durations=durations)  # real time: synthesis would take 20 minutes
    with pytest.raises(DeviceTimeoutError, match="synthesize: station1_synthesis did not finish within 0.2 s"):
        RE(run_experiment(lab.stations[0], RECIPE_POINT, {}, timeout=0.2))
    assert only(docs, "stop")["exit_status"] == "fail"
    lab.close()  # stops the synthesis still in progress


class Mixing(Landscape):
    """A tiny landscape with a categorical input, to show labels reach the device as labels."""

    name = "mixing"
    inputs = (Input("solvent", choices=("water", "ethanol")), Input("speed", 0.0, 1000.0, "rpm"))
    outputs = (Output("viscosity", "mPa*s", "minimize"),)

    def evaluate(self, values: Mapping) -> dict[str, float]:
        base = {"water": 1.0, "ethanol": 1.2}[values["solvent"]]
        return {"viscosity": base + values["speed"] / 1000}


def test_categoricals_are_set_as_labels(RE, docs):
    mixing, bench = Mixing(), SampleHandoff()
    station = Station("mixer", make_sim_station("mixer_synthesis", mixing, bench), make_sim_instrument("rheometer", mixing, bench))
    RE(run_experiment(station, {"solvent": "ethanol", "speed": Quantity(0.5, "revolution/s")}, {}))  # = 30 rpm
    data = only(docs, "event")["data"]
    assert data["mixer_synthesis_solvent"] == "ethanol"
    assert data["mixer_synthesis_speed"] == pytest.approx(30.0)
    assert data["rheometer_viscosity"] == pytest.approx(1.23)
    with pytest.raises(ParameterLimitError, match="'acetone' is not a known choice"):
        RE(run_experiment(station, {"solvent": "acetone", "speed": 10.0}, {}))
