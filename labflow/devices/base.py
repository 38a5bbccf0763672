"""Device roles of a self-driving lab, thin on ophyd.

Two roles cover a synthesis-and-characterization lab:

* a :class:`SynthesisStation` *makes a sample*: it has one settable
  :class:`ParameterSignal` per process parameter (``temperature``, ``time``, ...), each
  with its device unit and hard limits, and its ``trigger()`` performs the synthesis;
* a :class:`CharacterizationInstrument` *measures a sample*: ``trigger()`` runs the
  measurement, then ``read()`` reports one read-only :class:`MeasurementSignal` per output.

Both follow bluesky's protocols (``Movable`` signals, ``Triggerable``/``Readable`` devices),
and nothing above this module depends on these classes: any bluesky-protocol device whose
parameter children report ``units`` (and limits or ``enum_strs``) in ``describe()`` can
stand in for them.

Theory of operation of a Status
-------------------------------
Every ``set`` and ``trigger`` returns an :class:`OperationStatus` at once. The work (a
``put``, a synthesis, a measurement) is done by an *action* that runs after a wall-clock
``delay`` (0 = synchronously, before the Status is returned). Every Status has a finite
``timeout``; when it expires first, the Status fails with :class:`OperationTimeoutError`,
which names the device, the signal and the operation, and the action is skipped when its
timer fires later. When the action raises, the Status fails with that exception, which
bluesky's RunEngine then raises in the plan (wrapped in ``FailedStatus``).

Timeouts: a device's ``timeout`` (seconds) bounds each of its operations. ``None`` means
"the operation's expected delay plus :data:`DEFAULT_TIMEOUT`" -- never unbounded.
"""

from __future__ import annotations

import keyword
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pint
from ophyd import Component, Device, Kind, Signal
from ophyd.signal import InternalSignal
from ophyd.status import StatusBase
from ophyd.utils.errors import InvalidState, LimitError, StatusTimeoutError

from labflow.errors import DeviceError, DeviceTimeoutError, UnitError
from labflow.units import dimension_name, parse_quantity, parse_unit

if TYPE_CHECKING:  # imported for annotations only: devices sit below sim in the layers
    from labflow.sim.base import Input, Output

DEFAULT_TIMEOUT = 30.0
"""Seconds an operation may run beyond its expected duration before it fails."""

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
    "settle_status",
    "synthesis_station_class",
    "to_device_value",
    "to_device_values",
]


# -- errors ----------------------------------------------------------------------
class ParameterLimitError(DeviceError, LimitError):
    """A parameter was set outside its hard limits, or to a choice the device does not know.

    Also an ophyd ``LimitError`` (and so a ``ValueError``), so generic bluesky code catches it.
    """


class OperationTimeoutError(DeviceTimeoutError, StatusTimeoutError):
    """An operation (set, synthesize, measure) did not finish within its Status's timeout.

    Also an ophyd ``StatusTimeoutError``, so ophyd keeps treating the Status as timed out.
    """


class DeviceDefinitionError(DeviceError, ValueError):
    """A device cannot be built as described (a parameter named ``class``, a duplicate)."""


# -- status ----------------------------------------------------------------------
def _label(obj: Any) -> str:
    """'station1_synthesis.temperature' for a child signal, else the object's name."""
    parent = getattr(obj, "parent", None)
    attr = getattr(obj, "attr_name", "")
    if parent is not None and attr:
        return f"{parent.name}.{attr}"
    return str(getattr(obj, "name", obj))


class OperationStatus(StatusBase):
    """The Status of one operation on one device or signal, with a mandatory timeout.

    Parameters
    ----------
    obj:
        The device or signal doing the work (named in errors).
    operation:
        What it does: ``"set"``, ``"synthesize"``, ``"measure"``.
    timeout:
        Seconds (finite, > 0) before the Status fails with :class:`OperationTimeoutError`.
    """

    def __init__(self, obj: Any, operation: str, *, timeout: float, watchdog: bool = True) -> None:
        timeout = float(timeout)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"{_label(obj)}: a {operation} timeout must be a finite number of seconds > 0, got {timeout}")
        self.obj = obj
        self.operation = operation
        self._bound = timeout
        # ophyd watches a Status with a timeout from a thread of its own. An operation that runs to
        # completion before its Status is returned (``watchdog=False``) needs no watchdog: nothing
        # is left that could hang, and the thread (started and joined five times an experiment)
        # was a measurable part of the loop's overhead. Its callbacks then run on the caller's thread.
        super().__init__(timeout=timeout if watchdog else None)

    @property
    def timeout(self) -> float:
        """Seconds the operation was allowed (its bound, whether or not a watchdog thread ran)."""
        return self._bound

    def _settled(self) -> None:
        # ophyd's hook between "timed out or finished" and "done": name what hung.
        exc = self._exception
        if isinstance(exc, StatusTimeoutError) and not isinstance(exc, OperationTimeoutError):
            self._exception = OperationTimeoutError(
                f"{_label(self.obj)}: {self.operation} did not finish within {self.timeout:g} s",
                hint="check the instrument, or raise the device's timeout if the operation is legitimately slow",
            )

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("done" if self.success else "failed")
        return f"OperationStatus({_label(self.obj)!r}, {self.operation!r}, {state})"

    __str__ = __repr__


def _timeout_for(delay: float, timeout: float | None) -> float:
    return float(timeout) if timeout is not None else float(delay) + DEFAULT_TIMEOUT


def run_operation(
    obj: Any,
    operation: str,
    action: Callable[[], Any],
    *,
    delay: float = 0.0,
    timeout: float | None = None,
    pending: set | None = None,
) -> OperationStatus:
    """Run ``action`` after ``delay`` wall-clock seconds; return its Status at once.

    ``delay <= 0`` runs the action before returning (the Status is already done). The
    Status fails with the action's exception, or with :class:`OperationTimeoutError` after
    ``timeout`` seconds (``None``: ``delay + DEFAULT_TIMEOUT``); an action whose Status has
    already timed out is skipped. ``pending`` (a set owned by the device) tracks
    ``(timer, status)`` pairs so that :meth:`stop` can cancel them.
    """
    status = OperationStatus(obj, operation, timeout=_timeout_for(delay, timeout), watchdog=delay > 0)

    def finish(entry: tuple | None = None) -> None:
        if pending is not None and entry is not None:
            pending.discard(entry)
        if status.done:  # timed out (or stopped) already: leave the world as it is
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - the Status carries it to whoever waits
            settle_status(status, exc)
        else:
            settle_status(status)  # the timeout may have fired while the action ran

    if delay <= 0:
        finish()  # with no watchdog thread, the Status is done (callbacks run) when this returns
    else:
        timer = threading.Timer(float(delay), lambda: finish(entry))
        timer.daemon = True
        entry = (timer, status)
        if pending is not None:
            pending.add(entry)
        timer.start()
    return status


def settle_status(status: StatusBase, exc: BaseException | None = None) -> bool:
    """Finish ``status`` (fail it with ``exc`` when one is given) unless it has settled already.

    A Status settles once: its own timeout, a stop or the operation's completion may race to
    settle it, and the loser gets ophyd's :class:`~ophyd.utils.errors.InvalidState`. That one
    error means "already settled, nothing to add" and is the only one caught; returns whether
    this call settled the Status.
    """
    try:
        if exc is None:
            status.set_finished()
        else:
            status.set_exception(exc)
    except InvalidState:
        return False
    return True


def _stop_pending(obj: Any, pending: set) -> None:
    for timer, status in list(pending):
        timer.cancel()
        pending.discard((timer, status))
        if not status.done:
            settle_status(status, DeviceError(f"{_label(obj)}: {status.operation} was stopped"))


# -- signals ---------------------------------------------------------------------
class ParameterSignal(Signal):
    """A settable process parameter with a device unit and hard limits (or choices).

    Parameters
    ----------
    units:
        The device's unit for this parameter (pint syntax, "" for dimensionless), reported
        by ``describe()`` as ``units``.
    low, high:
        Hard limits in ``units`` (inclusive), reported as ``lower_ctrl_limit`` /
        ``upper_ctrl_limit``. ``None`` for no limit on that side.
    choices:
        For a categorical parameter: the labels it accepts (reported as ``enum_strs``).
    integer:
        Accept whole numbers only.
    delay:
        Wall-clock seconds a ``set`` takes before its Status completes (0 = at once).
    timeout:
        Seconds a ``set`` may take before its Status fails (``None``: ``delay + DEFAULT_TIMEOUT``).

    ``set()`` and ``put()`` check the value first and raise :class:`ParameterLimitError`
    (naming device, signal, value and limits) without changing anything.
    """

    def __init__(
        self,
        *,
        name: str,
        units: str = "",
        low: float | None = None,
        high: float | None = None,
        choices: Sequence[str] | None = None,
        integer: bool = False,
        value: Any = None,
        delay: float = 0.0,
        timeout: float | None = None,
        kind: Kind | str = Kind.normal,
        **kwargs: Any,
    ) -> None:
        self.choices = tuple(str(c) for c in choices) if choices is not None else None
        self.units = "" if self.choices else str(units or "")
        self.low = None if low is None else float(low)
        self.high = None if high is None else float(high)
        self.integer = bool(integer)
        self.delay = float(delay)
        self.timeout = timeout
        if self.choices is not None and not self.choices:
            raise DeviceDefinitionError(f"{name}: a categorical parameter needs at least one choice")
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise DeviceDefinitionError(f"{name}: low limit {self.low} is above high limit {self.high}")
        if self.choices is None:
            parse_unit(self.units)  # raises UnitError for an unknown unit
        if value is None:
            if self.choices is not None:
                value = self.choices[0]
            elif self.low is not None:
                value = self.low
            else:
                value = 0.0
            if self.integer and self.choices is None:
                value = int(math.ceil(value))
        super().__init__(name=name, value=value, kind=kind, **kwargs)
        self._pending: set = set()

    # -- facts ------------------------------------------------------------------
    @property
    def limits(self) -> tuple[float, float]:
        """``(low, high)``; ophyd's convention ``(0, 0)`` means "no limits"."""
        if self.choices is not None or (self.low is None and self.high is None):
            return (0, 0)
        return (self.low if self.low is not None else -math.inf, self.high if self.high is not None else math.inf)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        entry = desc[self.name]
        if self.choices is not None:
            entry["dtype"] = "string"
            entry["enum_strs"] = list(self.choices)
        else:
            entry["units"] = self.units
            if self.low is not None:
                entry["lower_ctrl_limit"] = self.low
            if self.high is not None:
                entry["upper_ctrl_limit"] = self.high
        return desc

    def _limits_text(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        unit = f" {self.units}" if self.units else ""
        return f"[{lo}, {hi}]{unit}"

    # -- checks -------------------------------------------------------------------
    def validate(self, value: Any) -> Any:
        """The value this signal would apply, or :class:`ParameterLimitError` saying why not.

        Numbers within a relative 1e-9 of a limit are clamped onto it (unit conversions
        round, e.g. 100 degC -> 373.15000000000003 K).
        """
        where = _label(self)
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.choices:
                raise ParameterLimitError(
                    f"{where}: {value!r} is not a known choice; expected {self._limits_text()}",
                    hint="use one of the labels the device lists in describe()['enum_strs']",
                )
            return value
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterLimitError(
                f"{where}: expected a number in {self.units or 'dimensionless'}, got {type(value).__name__} {value!r}",
                hint="give a plain number in the device's unit, or a Quantity through labflow.plans",
            )
        v = float(value)
        if not math.isfinite(v):
            raise ParameterLimitError(f"{where}: {v} is not a finite value; limits are {self._limits_text()}")
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        tol = 1e-9 * max(abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0, 1.0)
        if v < lo - tol or v > hi + tol:
            unit = f" {self.units}" if self.units else ""
            raise ParameterLimitError(
                f"{where}: {v:g}{unit} is outside the limits {self._limits_text()}",
                hint="choose a value within the device's hard limits (see describe())",
            )
        v = min(max(v, lo), hi)
        if self.integer:
            if v != round(v):
                raise ParameterLimitError(f"{where}: expected a whole number, got {v:g}")
            return int(round(v))
        return v

    def check_value(self, value: Any) -> None:
        self.validate(value)

    # -- actions ------------------------------------------------------------------
    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None, **kwargs: Any) -> OperationStatus:
        """Apply ``value`` (in ``units``, or a label) and return a Status.

        Raises :class:`ParameterLimitError` at once, before anything changes, for a value
        outside the limits. The value is applied when the Status completes, after ``delay``
        (+ ``settle_time``) seconds.
        """
        clean = self.validate(value)
        delay = self.delay + float(settle_time or 0.0)
        return run_operation(
            self,
            "set",
            lambda: Signal.put(self, clean, force=True),
            delay=delay,
            timeout=timeout if timeout is not None else self.timeout,
            pending=self._pending,
        )

    def stop(self, *, success: bool = False) -> None:
        """Cancel a ``set`` still in progress (its Status fails)."""
        _stop_pending(self, self._pending)


class MeasurementSignal(InternalSignal):
    """A read-only reading of an instrument, in ``units`` (reported by ``describe()``).

    Only its device writes it (``put(value, internal=True)``); it reads NaN until the
    first measurement.
    """

    def __init__(self, *, name: str, units: str = "", value: float = math.nan, kind: Kind | str = Kind.hinted, **kwargs: Any) -> None:
        parse_unit(units)
        self.units = str(units or "")
        super().__init__(name=name, value=value, kind=kind, **kwargs)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name]["units"] = self.units
        return desc


# -- devices ---------------------------------------------------------------------
class _Role(Device):
    """Shared plumbing: a timeout for every operation, and stop() cancelling them."""

    def __init__(self, prefix: str = "", *, name: str, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        if timeout is not None and not (math.isfinite(float(timeout)) and float(timeout) > 0):
            raise DeviceDefinitionError(f"{name}: timeout must be a finite number of seconds > 0, got {timeout}")
        self.timeout = None if timeout is None else float(timeout)
        self._pending: set = set()

    def _operation(self, operation: str, action: Callable[[], Any], delay: float) -> OperationStatus:
        return run_operation(self, operation, action, delay=delay, timeout=self.timeout, pending=self._pending)

    def stop(self, *, success: bool = False) -> None:
        """Cancel operations in progress: their Statuses fail with ``DeviceError``."""
        _stop_pending(self, self._pending)
        for child in self.walk_signals():
            stop = getattr(child.item, "stop", None)
            if stop is not None:
                stop(success=success)


class SynthesisStation(_Role):
    """Role: makes a sample from process parameters.

    Subclasses get one :class:`ParameterSignal` component per parameter (build them with
    :func:`synthesis_station_class` / :func:`make_synthesis_station`) and override
    :meth:`_synthesize` (do the work) and :meth:`_synthesis_delay` (how long it takes).

    ``trigger()`` snapshots the current parameter values (device units) and performs the
    synthesis with them; it returns an :class:`OperationStatus`.
    """

    inputs: ClassVar[tuple[Input, ...]] = ()

    @property
    def parameter_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def parameters(self) -> dict[str, ParameterSignal]:
        """Parameter name -> its signal."""
        return {n: getattr(self, n) for n in self.parameter_names}

    def values(self) -> dict[str, float | str]:
        """Current settings, in device units (labels for categoricals)."""
        return {n: sig.get() for n, sig in self.parameters().items()}

    def trigger(self) -> OperationStatus:
        params = self.values()
        return self._operation("synthesize", lambda: self._synthesize(params), self._synthesis_delay(params))

    def _synthesize(self, params: Mapping[str, Any]) -> None:
        """Make a sample with ``params`` (device units). The base role does nothing."""

    def _synthesis_delay(self, params: Mapping[str, Any]) -> float:
        """Wall-clock seconds a synthesis with ``params`` takes (0 = instant)."""
        return 0.0


class CharacterizationInstrument(_Role):
    """Role: measures a sample.

    Subclasses get one :class:`MeasurementSignal` component per output (build them with
    :func:`characterization_instrument_class` / :func:`make_characterization_instrument`)
    and override :meth:`_measure` (return ``{output: value}`` in each output's unit) and
    :meth:`_measure_delay`. ``trigger()`` measures; ``read()`` then reports the readings
    under ``f"{name}_{output}"``.
    """

    outputs: ClassVar[tuple[Output, ...]] = ()

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def trigger(self) -> OperationStatus:
        def action() -> None:
            values = self._measure()
            missing = [n for n in self.output_names if n not in values]
            if missing:
                raise DeviceError(f"{self.name}: measurement returned no value for {missing}")
            for n in self.output_names:
                getattr(self, n).put(float(values[n]), internal=True)

        return self._operation("measure", action, self._measure_delay())

    def _measure(self) -> Mapping[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must implement _measure()")

    def _measure_delay(self) -> float:
        """Wall-clock seconds one measurement takes (0 = instant)."""
        return 0.0


def _check_component_names(names: Iterable[str], base: type, what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise DeviceDefinitionError(f"{base.__name__}: {what} name {n!r} is not a valid identifier")
        if keyword.iskeyword(n):
            raise DeviceDefinitionError(
                f"{base.__name__}: {what} name {n!r} is a Python keyword, which ophyd cannot use as a component",
                hint=f"rename it, e.g. {n + '_'!r}",
            )
        if n.startswith("_"):
            raise DeviceDefinitionError(f"{base.__name__}: {what} name {n!r} must not start with an underscore")
        if hasattr(base, n):
            raise DeviceDefinitionError(
                f"{base.__name__}: {what} name {n!r} clashes with an attribute of the device class",
                hint="rename the parameter (e.g. add a prefix such as 'p_')",
            )
        if n in seen:
            raise DeviceDefinitionError(f"{base.__name__}: duplicate {what} name {n!r}")
        seen.add(n)


def synthesis_station_class(inputs: Sequence[Input], *, base: type[SynthesisStation] = SynthesisStation) -> type[SynthesisStation]:
    """A subclass of ``base`` with one :class:`ParameterSignal` component per input.

    ``inputs`` are :class:`labflow.sim.base.Input` records (name, device unit, limits or
    choices). Raises :class:`DeviceDefinitionError` for names ophyd cannot use.
    """
    inputs = tuple(inputs)
    if not inputs:
        raise DeviceDefinitionError(f"{base.__name__}: a synthesis station needs at least one parameter")
    _check_component_names([i.name for i in inputs], base, "parameter")
    attrs: dict[str, Any] = {"inputs": inputs, "__module__": base.__module__}
    for i in inputs:
        attrs[i.name] = Component(
            ParameterSignal,
            units=i.unit,
            low=i.low,
            high=i.high,
            choices=i.choices,
            integer=i.integer,
            kind=Kind.normal,
            doc=f"process parameter {i.name}" + (f" [{i.unit}]" if i.unit else ""),
        )
    return type(base.__name__, (base,), attrs)


def make_synthesis_station(
    name: str, inputs: Sequence[Input], *, base: type[SynthesisStation] = SynthesisStation, **kwargs: Any
) -> SynthesisStation:
    """Build a synthesis station named ``name`` with one parameter signal per input.

    ``kwargs`` go to the constructor of ``base`` (e.g. ``timeout``).
    """
    return synthesis_station_class(inputs, base=base)(name=name, **kwargs)


def characterization_instrument_class(
    outputs: Sequence[Output], *, base: type[CharacterizationInstrument] = CharacterizationInstrument
) -> type[CharacterizationInstrument]:
    """A subclass of ``base`` with one hinted :class:`MeasurementSignal` per output."""
    outputs = tuple(outputs)
    if not outputs:
        raise DeviceDefinitionError(f"{base.__name__}: an instrument needs at least one output")
    _check_component_names([o.name for o in outputs], base, "output")
    attrs: dict[str, Any] = {"outputs": outputs, "__module__": base.__module__}
    for o in outputs:
        attrs[o.name] = Component(
            MeasurementSignal, units=o.unit, kind=Kind.hinted, doc=f"measured {o.name}" + (f" [{o.unit}]" if o.unit else "")
        )
    return type(base.__name__, (base,), attrs)


def make_characterization_instrument(
    name: str, outputs: Sequence[Output], *, base: type[CharacterizationInstrument] = CharacterizationInstrument, **kwargs: Any
) -> CharacterizationInstrument:
    """Build an instrument named ``name`` with one read-only signal per output."""
    return characterization_instrument_class(outputs, base=base)(name=name, **kwargs)


# -- unit conversion at the device boundary ---------------------------------------------
def to_device_value(signal: Any, value: Any, *, parameter: str | None = None) -> float | str:
    """Convert ``value`` to what ``signal`` takes, reading its unit and limits from ``describe()``.

    * a pint Quantity or text such as ``"150 degC"`` is converted to the signal's ``units``;
    * a plain number is taken as already in the signal's unit;
    * a categorical signal (``enum_strs`` in describe) takes a label.

    Works with any bluesky-protocol signal. Raises :class:`~labflow.errors.UnitError` naming
    the parameter and both units when the dimensions differ, and
    :class:`ParameterLimitError` for a value outside ``lower/upper_ctrl_limit`` or not in
    ``enum_strs``. Nothing is moved.
    """
    desc = next(iter(signal.describe().values()))
    where = parameter or _label(signal)
    enum = desc.get("enum_strs")
    if enum:
        if isinstance(value, str) and value in enum:
            return value
        raise ParameterLimitError(f"{where}: {value!r} is not a known choice; expected one of {list(enum)}")
    unit_text = desc.get("units") or ""
    try:
        unit = parse_unit(unit_text)
    except UnitError as exc:
        raise UnitError(f"{where}: the device reports an unknown unit {unit_text!r}") from exc
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        q = value if isinstance(value, pint.Quantity) else parse_quantity(value, unit)
        try:
            number = float(q.to(unit).magnitude)
        except pint.errors.DimensionalityError as exc:
            raise UnitError(
                f"{where}: {q:~} is in {q.units:~} ({dimension_name(q.units)}), "
                f"but the device takes {unit:~} ({dimension_name(unit)})",
                hint=f"give {where} in a unit convertible to {unit:~}",
            ) from exc
    lo, hi = desc.get("lower_ctrl_limit"), desc.get("upper_ctrl_limit")
    if lo is not None and hi is not None and not (lo == 0 and hi == 0):  # (0, 0): EPICS for "no limits"
        tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
        if not (lo - tol <= number <= hi + tol) or not math.isfinite(number):
            raise ParameterLimitError(
                f"{where}: {number:g} {unit:~} is outside the device limits [{lo:g}, {hi:g}] {unit:~}".replace("  ", " "),
                hint="choose a value within the device's hard limits",
            )
        number = min(max(number, lo), hi)
    return number


def to_device_values(device: Any, params: Mapping[str, Any]) -> dict[str, float | str]:
    """Convert every parameter of ``params`` with :func:`to_device_value`, checking names.

    ``device`` exposes one child signal per parameter (``getattr(device, name)``). Every
    parameter the device declares (``device.parameter_names`` where it has one) must be
    given, and every name given must be a child of the device; otherwise
    :class:`DeviceError` lists what is missing or unknown.
    """
    declared = list(getattr(device, "parameter_names", []) or [])
    unknown = [n for n in params if not hasattr(getattr(device, n, None), "set")]
    missing = [n for n in declared if n not in params]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown parameters {unknown}")
        if missing:
            parts.append(f"missing parameters {missing}")
        raise DeviceError(
            f"{getattr(device, 'name', device)}: " + " and ".join(parts),
            hint=f"the device takes {declared}" if declared else None,
        )
    return {n: to_device_value(getattr(device, n), v, parameter=n) for n, v in params.items()}
