"""Simulated synthesis stations and instruments, built on the device roles.

A simulated station and its instrument share a :class:`SampleHandoff` (the bench between
them). The station's ``trigger()`` makes a :class:`SimSample` recording the parameters it
was made with (device units); the instrument's ``trigger()`` takes the sample on the bench,
evaluates the landscape on those parameters and adds Gaussian noise (``noise_std`` per
output, seeded), or fails with a "simulated instrument fault" at ``failure_rate``.

Time
----
A :class:`DurationModel` gives each step's *simulated* duration in seconds (``set``,
``synthesize``, ``measure``); when the station has a parameter named ``synthesize_from``
(``"time"`` by default), that parameter is the synthesis duration. ``time_scale`` maps
simulated to wall-clock time: 0 = instant (tests, CI; every Status is done when returned),
1 = real time, 0.001 = a thousand times faster. :meth:`SimSynthesisStation.expected_duration`
answers the simulated duration of an experiment without sleeping (for virtual-time executors).

Sample faults
-------------
When the landscape says a sample is bad (``landscape.sample_fault(values)`` returns a
reason: the film did not form, it cracked), the instrument fails the measurement with
:class:`SampleFault` instead of reading it. The campaign tells the two kinds of failure apart
by the exception, not by its text: any exception with a true ``sample_fault`` attribute (as
:class:`SampleFault` has) is the sample's fault and teaches the planner where samples fail; any
other (a timeout, a disconnect, "simulated instrument fault") is the instrument's and teaches
it nothing. Drivers of real instruments can raise :class:`SampleFault` (or set the attribute on
their own exception) when they detect a bad sample.

Randomness: the instrument draws from its own generator, seeded by ``seed``, one failure
draw and one noise draw per output for every measurement (even with ``failure_rate=0`` or
``noise_std=0``), so a seed gives the same readings whatever the other settings.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labflow.devices.base import (
    CharacterizationInstrument,
    SynthesisStation,
    make_characterization_instrument,
    make_synthesis_station,
    to_device_values,
)
from labflow.errors import DeviceError
from labflow.sim.base import Landscape
from labflow.units import convert

__all__ = [
    "DurationModel",
    "SampleFault",
    "SampleHandoff",
    "SimInstrument",
    "SimSample",
    "SimSynthesisStation",
    "make_sim_instrument",
    "make_sim_station",
]


class SampleFault(DeviceError):
    """The sample itself failed (it did not form, the film cracked): not the instrument's fault.

    ``sample_fault = True`` is what the campaign looks for (on any exception in the chain), so
    a driver may also mark an exception of its own that way.
    """

    sample_fault = True


def _seconds(value: Any, what: str) -> float:
    s = convert(value, "s")  # plain numbers are seconds; raises UnitError for '5 m'
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"{what}: a duration must be finite and >= 0 s, got {s:g} s")
    return s


@dataclass(frozen=True)
class DurationModel:
    """Simulated duration of each step of an experiment, in seconds.

    ``set``: applying parameters (all parameters are set together); ``synthesize``: one
    synthesis, unless the station has a parameter named ``synthesize_from`` (a duration),
    which then gives it; ``measure``: one measurement.
    """

    set: float = 0.0
    synthesize: float = 0.0
    measure: float = 0.0
    synthesize_from: str | None = "time"

    def __post_init__(self) -> None:
        for f in ("set", "synthesize", "measure"):
            object.__setattr__(self, f, _seconds(getattr(self, f), f))

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None = None, **more: Any) -> DurationModel:
        """From pint-parsable text, e.g. ``{"set": "5 s", "synthesize": "20 min", "measure": "5 min"}``."""
        return cls(**{**dict(spec or {}), **more})


@dataclass(frozen=True)
class SimSample:
    """A simulated sample: which station made it, and with which parameters (device units)."""

    uid: str
    station: str
    params: Mapping[str, Any] = field(default_factory=dict)


class SampleHandoff:
    """The bench between a station and its instrument: holds the last sample made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: SimSample | None = None
        self.made = 0

    def put(self, sample: SimSample) -> None:
        with self._lock:
            self._current = sample
            self.made += 1

    @property
    def current(self) -> SimSample | None:
        with self._lock:
            return self._current

    def take(self, instrument: str) -> SimSample:
        """The sample on the bench; :class:`DeviceError` when none was made yet."""
        sample = self.current
        if sample is None:
            raise DeviceError(f"{instrument}: no sample to measure", hint="trigger the synthesis station first")
        return sample


class SimSynthesisStation(SynthesisStation):
    """A simulated synthesis station: records a :class:`SimSample` on the bench.

    Build it with :func:`make_sim_station` (one parameter per landscape input).

    Parameters
    ----------
    handoff:
        The bench shared with the instrument.
    durations:
        Simulated step durations.
    time_scale:
        Wall-clock seconds per simulated second (0 = instant).
    timeout:
        Seconds each operation may take (``None``: its scaled duration + ``DEFAULT_TIMEOUT``).
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        name: str,
        handoff: SampleHandoff,
        durations: DurationModel | None = None,
        time_scale: float = 0.0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prefix, name=name, timeout=timeout, **kwargs)
        if not (math.isfinite(float(time_scale)) and time_scale >= 0):
            raise ValueError(f"{name}: time_scale must be >= 0, got {time_scale}")
        self.handoff = handoff
        self.durations = durations or DurationModel()
        self.time_scale = float(time_scale)
        self._count = itertools.count(1)
        for sig in self.parameters().values():
            sig.delay = self.durations.set * self.time_scale
            sig.timeout = timeout

    def synthesis_seconds(self, values: Mapping[str, Any]) -> float:
        """Simulated seconds one synthesis takes with ``values`` (device units)."""
        key = self.durations.synthesize_from
        if key is not None and key in self.parameter_names:
            unit = getattr(getattr(self, key), "units", "") or "s"  # a unitless duration counts seconds
            return _seconds(convert(values[key], "s", from_unit=unit), f"{self.name}.{key}")
        return self.durations.synthesize

    def expected_duration(self, params: Mapping[str, Any]) -> float:
        """Simulated seconds to set ``params`` and synthesize (no sleeping, no moving).

        ``params`` as for :func:`labflow.plans.run_experiment` (Quantities, text, or numbers
        in device units).
        """
        return self.durations.set + self.synthesis_seconds(to_device_values(self, params))

    def _synthesis_delay(self, params: Mapping[str, Any]) -> float:
        return self.synthesis_seconds(params) * self.time_scale

    def _synthesize(self, params: Mapping[str, Any]) -> None:
        self.handoff.put(SimSample(uid=f"{self.name}-{next(self._count)}", station=self.name, params=dict(params)))


class SimInstrument(CharacterizationInstrument):
    """A simulated instrument: evaluates a landscape on the sample on the bench, adds noise.

    Build it with :func:`make_sim_instrument` (one reading per landscape output).

    Parameters
    ----------
    landscape:
        The noise-free response.
    handoff:
        The bench shared with the station.
    noise_std:
        Output name -> standard deviation of Gaussian noise, in the output's unit.
    seed:
        Seeds the instrument's generator (noise and faults).
    failure_rate:
        Probability in [0, 1] that a measurement fails with a ``DeviceError``
        ("simulated instrument fault").

    A sample the landscape judges bad (``landscape.sample_fault``) fails with :class:`SampleFault`.
    durations, time_scale, timeout:
        As for :class:`SimSynthesisStation`.
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        name: str,
        landscape: Landscape,
        handoff: SampleHandoff,
        noise_std: Mapping[str, float] | None = None,
        seed: int = 0,
        failure_rate: float = 0.0,
        durations: DurationModel | None = None,
        time_scale: float = 0.0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prefix, name=name, timeout=timeout, **kwargs)
        noise = {k: float(v) for k, v in (noise_std or {}).items()}
        unknown = sorted(set(noise) - set(self.output_names))
        if unknown:
            raise ValueError(f"{name}: noise_std for unknown outputs {unknown}; outputs are {self.output_names}")
        bad = {k: v for k, v in noise.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"{name}: noise_std must be finite and >= 0, got {bad}")
        if not 0.0 <= float(failure_rate) <= 1.0:
            raise ValueError(f"{name}: failure_rate must lie in [0, 1], got {failure_rate}")
        if not (math.isfinite(float(time_scale)) and time_scale >= 0):
            raise ValueError(f"{name}: time_scale must be >= 0, got {time_scale}")
        self.landscape = landscape
        self.handoff = handoff
        self.noise_std = {n: noise.get(n, 0.0) for n in self.output_names}
        self.seed = int(seed)
        self.failure_rate = float(failure_rate)
        self.durations = durations or DurationModel()
        self.time_scale = float(time_scale)
        self._rng = np.random.default_rng(self.seed)
        self._rng_lock = threading.Lock()

    def expected_duration(self) -> float:
        """Simulated seconds one measurement takes."""
        return self.durations.measure

    def _measure_delay(self) -> float:
        return self.durations.measure * self.time_scale

    def _measure(self) -> dict[str, float]:
        sample = self.handoff.take(self.name)
        with self._rng_lock:
            fault = self._rng.random() < self.failure_rate
            noise = {n: float(self._rng.normal(0.0, self.noise_std[n])) for n in self.output_names}
        if fault:
            raise DeviceError(
                f"{self.name}: simulated instrument fault while measuring sample {sample.uid}",
                hint=f"failure_rate={self.failure_rate:g} injects faults on purpose; set it to 0 to disable them",
            )
        judge = getattr(self.landscape, "sample_fault", None)
        why = judge(sample.params) if judge is not None else None
        if why:
            raise SampleFault(f"{self.name}: sample {sample.uid}: {why}", hint="a property of the sample, not of the instrument")
        clean = self.landscape.evaluate(sample.params)
        # noise never takes a reading out of its physical range (a yield stays within 0-100 %)
        return {n: self.landscape.output(n).clip(float(clean[n]) + noise[n]) for n in self.output_names}


def make_sim_station(name: str, landscape: Landscape, handoff: SampleHandoff, **kwargs: Any) -> SimSynthesisStation:
    """A :class:`SimSynthesisStation` with one parameter per input of ``landscape``."""
    return make_synthesis_station(name, landscape.inputs, base=SimSynthesisStation, handoff=handoff, **kwargs)


def make_sim_instrument(name: str, landscape: Landscape, handoff: SampleHandoff, **kwargs: Any) -> SimInstrument:
    """A :class:`SimInstrument` with one reading per output of ``landscape``."""
    return make_characterization_instrument(name, landscape.outputs, base=SimInstrument, landscape=landscape, handoff=handoff, **kwargs)
