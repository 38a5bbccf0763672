"""The device roles: parameter signals with units and limits, stations built from inputs,
instruments that trigger then read, Statuses that always time out."""

import pytest
from bluesky.protocols import Movable, Readable, Triggerable
from ophyd.utils.errors import LimitError

from labflow.devices import (
    CharacterizationInstrument,
    DeviceDefinitionError,
    OperationTimeoutError,
    ParameterLimitError,
    ParameterSignal,
    SynthesisStation,
    make_characterization_instrument,
    make_synthesis_station,
    run_operation,
    to_device_value,
)
from labflow.errors import DeviceError, DeviceTimeoutError, UnitError
from labflow.sim.base import Input, Output
from labflow.units import Quantity

INPUTS = (
    Input("temperature", 323.15, 673.15, "K"),
    Input("time", 30.0, 7200.0, "s"),
    Input("solvent", choices=("water", "ethanol")),
    Input("layers", 1, 5, integer=True),
)


def test_parameter_signal_describes_units_and_limits():
    sig = ParameterSignal(name="oven_temperature", units="K", low=323.15, high=673.15)
    desc = sig.describe()["oven_temperature"]
    assert desc["units"] == "K"
    assert (desc["lower_ctrl_limit"], desc["upper_ctrl_limit"]) == (323.15, 673.15)
    assert desc["dtype"] == "number"
    assert sig.limits == (323.15, 673.15)
    assert isinstance(sig, Movable)


def test_categorical_signal_lists_its_choices():
    sig = ParameterSignal(name="solvent", choices=["water", "ethanol"])
    desc = sig.describe()["solvent"]
    assert desc["enum_strs"] == ["water", "ethanol"]
    assert desc["dtype"] == "string"
    assert sig.get() == "water"
    assert sig.set("ethanol").done and sig.get() == "ethanol"


def test_setting_outside_the_limits_names_device_signal_value_and_limits():
    station = make_synthesis_station("oven1", INPUTS)
    with pytest.raises(ParameterLimitError) as info:
        station.temperature.set(900.0)
    message = str(info.value)
    assert "oven1.temperature" in message and "900" in message and "[323.15, 673.15] K" in message
    assert isinstance(info.value, LimitError) and isinstance(info.value, DeviceError)
    assert station.temperature.get() == 323.15  # nothing changed
    with pytest.raises(ParameterLimitError, match="oven1.solvent: 'acetone' is not a known choice"):
        station.solvent.set("acetone")
    with pytest.raises(ParameterLimitError, match="whole number"):
        station.layers.set(2.5)
    with pytest.raises(ParameterLimitError):
        station.temperature.put(10.0)  # ophyd's put checks too


def test_set_returns_a_status_and_applies_the_value():
    station = make_synthesis_station("oven1", INPUTS)
    status = station.temperature.set(450.0)
    assert status.done and status.success
    assert station.temperature.get() == 450.0
    assert station.layers.set(3).done and station.layers.get() == 3


def test_station_class_is_built_from_inputs():
    station = make_synthesis_station("oven1", INPUTS, timeout=5.0)
    assert isinstance(station, SynthesisStation) and isinstance(station, Triggerable)
    assert station.parameter_names == ["temperature", "time", "solvent", "layers"]
    assert station.time.describe()["oven1_time"]["units"] == "s"
    assert station.values() == {"temperature": 323.15, "time": 30.0, "solvent": "water", "layers": 1}
    assert set(station.read()) == {"oven1_temperature", "oven1_time", "oven1_solvent", "oven1_layers"}
    status = station.trigger()
    assert status.done and status.success


@pytest.mark.parametrize("bad", ["class", "lambda", "_hidden", "read", "two words"])
def test_names_ophyd_cannot_use_are_rejected(bad):
    with pytest.raises(DeviceDefinitionError, match=repr(bad)):
        make_synthesis_station("oven1", [Input(bad, 0, 1)])


def test_duplicate_parameter_names_are_rejected():
    with pytest.raises(DeviceDefinitionError, match="duplicate"):
        make_synthesis_station("oven1", [Input("t", 0, 1), Input("t", 0, 2)])


class Thermometer(CharacterizationInstrument):
    """A minimal instrument: reports the temperature it was told about."""

    reading = 20.0

    def _measure(self):
        return {"temperature": self.reading}


def test_instrument_triggers_then_reads_with_units():
    meter = make_characterization_instrument("meter", [Output("temperature", "degC")], base=Thermometer)
    assert isinstance(meter, Readable) and isinstance(meter, Triggerable)
    desc = meter.describe()["meter_temperature"]
    assert desc["units"] == "degC"
    assert meter.read()["meter_temperature"]["value"] != meter.read()["meter_temperature"]["value"]  # NaN before measuring
    assert meter.trigger().done
    assert meter.read()["meter_temperature"]["value"] == 20.0
    assert meter.hints == {"fields": ["meter_temperature"]}
    with pytest.raises(Exception):  # read-only from outside
        meter.temperature.put(3.0)


def test_instrument_without_measure_fails_its_status():
    meter = make_characterization_instrument("meter", [Output("y")])
    status = meter.trigger()
    assert status.done and not status.success
    assert isinstance(status.exception(), NotImplementedError)


def test_an_operation_that_hangs_times_out_naming_device_and_signal():
    station = make_synthesis_station("oven1", INPUTS)
    station.temperature.delay = 60.0  # a set that would take a minute...
    status = station.temperature.set(400.0, timeout=0.05)  # ...with 50 ms allowed
    exc = status.exception(timeout=5)
    assert isinstance(exc, OperationTimeoutError) and isinstance(exc, DeviceTimeoutError)
    assert "oven1.temperature: set did not finish within 0.05 s" in str(exc)
    assert station.temperature.get() == 323.15  # the late action is skipped
    station.stop()


def test_stop_fails_operations_in_progress():
    station = make_synthesis_station("oven1", INPUTS)
    station.temperature.delay = 60.0
    status = station.temperature.set(400.0)
    assert not status.done
    station.stop()
    assert isinstance(status.exception(timeout=5), DeviceError)
    assert "stopped" in str(status.exception())


def test_run_operation_reports_the_action_error():
    def boom():
        raise DeviceError("pump: pressure fault")

    status = run_operation(object(), "pump", boom, timeout=1.0)
    assert status.done and "pressure fault" in str(status.exception())


def test_to_device_value_converts_at_the_boundary():
    station = make_synthesis_station("oven1", INPUTS)
    assert to_device_value(station.temperature, Quantity(150, "degC")) == pytest.approx(423.15)
    assert to_device_value(station.temperature, "150 degC") == pytest.approx(423.15)
    assert to_device_value(station.time, "2 min") == 120.0
    assert to_device_value(station.temperature, 400.0) == 400.0  # plain numbers are device units
    assert to_device_value(station.solvent, "ethanol") == "ethanol"
    with pytest.raises(UnitError, match=r"temperature: 3 s .*device takes K"):
        to_device_value(station.temperature, Quantity(3, "s"), parameter="temperature")
    with pytest.raises(ParameterLimitError, match="outside the device limits"):
        to_device_value(station.temperature, "500 degC")
