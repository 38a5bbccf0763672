"""Device roles (synthesis station, characterization instrument) on ophyd, and the unit
conversion at the device boundary. See :mod:`labflow.devices.base`."""

from labflow.devices.base import (
    DEFAULT_TIMEOUT,
    CharacterizationInstrument,
    DeviceDefinitionError,
    MeasurementSignal,
    OperationStatus,
    OperationTimeoutError,
    ParameterLimitError,
    ParameterSignal,
    SynthesisStation,
    characterization_instrument_class,
    make_characterization_instrument,
    make_synthesis_station,
    run_operation,
    synthesis_station_class,
    to_device_value,
    to_device_values,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "CharacterizationInstrument",
    "DeviceDefinitionError",
    "MeasurementSignal",
    "OperationStatus",
    "OperationTimeoutError",
    "ParameterLimitError",
    "ParameterSignal",
    "SynthesisStation",
    "characterization_instrument_class",
    "make_characterization_instrument",
    "make_synthesis_station",
    "run_operation",
    "synthesis_station_class",
    "to_device_value",
    "to_device_values",
]
