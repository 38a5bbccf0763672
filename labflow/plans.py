"""bluesky plans: one experiment is one run.

Complete run
    :func:`run_experiment` -- open a run, set the parameters, synthesize, measure, close.
Stubs (no run of their own)
    :func:`set_parameters` -- convert and check every parameter, then set them together;
    :func:`synthesize` -- trigger the synthesis station and wait;
    :func:`measure` -- trigger the instrument, then read it (and anything else given) into
    one event;
    :func:`bounded_read` -- ``bps.read`` that gives up after a timeout.

A *station* is anything with ``name``, ``synthesis`` (a device with one settable child
per parameter that reports ``units`` and limits or ``enum_strs`` in ``describe()``) and
``instrument`` (a triggerable, readable device) -- :class:`labflow.lab.Station` is one.

Errors. Unit mismatches (:class:`~labflow.errors.UnitError`), unknown or missing parameters
and values outside the hard limits (:class:`~labflow.errors.DeviceError`) are raised after
the run opens but before anything moves. A device whose Status fails raises its own error
in the plan (e.g. ``DeviceError: ... simulated instrument fault``; bluesky's
``FailedStatus`` is its ``__cause__``); a wait past ``timeout`` raises
:class:`~labflow.errors.DeviceTimeoutError` naming what had not finished. Either way the
RunEngine closes the run with ``exit_status='fail'`` and the error's text as ``reason``,
then raises the error to the caller.

Reads are bounded too. bluesky calls a synchronous device's ``read()`` in the RunEngine's own
loop, so a ``read()`` that never returns would hang the station for good; :func:`measure`
therefore reads through :func:`bounded_read`, which runs ``read()`` in a thread of its own
and raises :class:`~labflow.errors.DeviceTimeoutError` naming the device when it has not
returned within the timeout. The RunEngine stays free, the run fails, the station goes on (the
abandoned call is left to finish, or not, in its daemon thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pint
from bluesky.run_engine import WaitForTimeoutError
from bluesky.utils import FailedStatus, short_uid

from labflow.devices.base import DEFAULT_TIMEOUT, to_device_values
from labflow.errors import DeviceError, DeviceTimeoutError, LabflowError

__all__ = ["bounded_read", "extract_outcomes", "measure", "run_experiment", "set_parameters", "synthesize", "wait_for"]


def _name(obj: Any) -> str:
    parent = getattr(obj, "parent", None)
    attr = getattr(obj, "attr_name", "")
    return f"{parent.name}.{attr}" if parent is not None and attr else str(getattr(obj, "name", obj))


def _rebuild(exc: BaseException) -> BaseException:
    """A fresh copy of a labflow error (same type, message, hint), to raise from FailedStatus
    without making a cycle of causes."""
    if isinstance(exc, LabflowError):
        fn, args = exc.__reduce__()[:2]
        try:
            return fn(*args)
        except Exception:  # a subclass with another signature: fall back to its family
            pass
    return DeviceError(str(exc))


def _raising_device_errors(plan_function):
    """Decorate a plan so that a failed Status raises the device's own error.

    bluesky raises ``FailedStatus`` (at the ``set``/``trigger`` when the Status has already
    failed, else at the ``wait``) with the device's exception as ``__cause__``; callers want
    the ``DeviceError`` itself. A fresh copy is raised from the ``FailedStatus``.
    """

    @functools.wraps(plan_function)
    def wrapper(*args, **kwargs):
        try:
            return (yield from plan_function(*args, **kwargs))
        except FailedStatus as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise _rebuild(cause) from exc

    return wrapper


def wait_for(group: str, statuses: Sequence[Any], what: str, *, timeout: float | None = None):
    """Wait for every Status of ``group``.

    ``what`` ("set", "synthesize", "measure") and the objects behind ``statuses`` name what
    hung when ``timeout`` (seconds; ``None``: rely on each Status's own timeout) passes:
    :class:`~labflow.errors.DeviceTimeoutError`.
    """
    try:
        yield from bps.wait(group, timeout=timeout)
    except WaitForTimeoutError as exc:
        hung = [_name(getattr(s, "obj", None) or s) for s in statuses if not s.done]
        raise DeviceTimeoutError(
            f"{what}: {', '.join(hung) or 'the devices'} did not finish within {timeout:g} s",
            hint="raise the timeout given to run_experiment if the step is legitimately slow",
        ) from exc


class _BoundedReadable:
    """``obj`` as the RunEngine sees it inside :func:`bounded_read`: everything is ``obj``'s own
    (name, describe, configuration, asset documents) except ``read()``, which returns an
    awaitable: the RunEngine awaits it without blocking its loop."""

    def __init__(self, obj: Any, timeout: float) -> None:
        self._obj = obj
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)

    def read(self, *args: Any, **kwargs: Any):
        return self._read(args, kwargs)

    async def _read(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        future: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = self._obj.read(*args, **kwargs)
            except BaseException as exc:  # handed to the awaiting plan, which raises it
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=call, name=f"read {_name(self._obj)}", daemon=True).start()
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except asyncio.TimeoutError:
            raise DeviceTimeoutError(
                f"read: {_name(self._obj)} did not return a reading within {self._timeout:g} s",
                hint="check the instrument and its connection, or raise the device's timeout if reading is legitimately slow",
            ) from None
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await asyncio.wait_for(result, self._timeout)  # an async device's read: bounded the same way
        return result


def read_timeout(obj: Any, timeout: float | None = None) -> float:
    """Seconds a read of ``obj`` may take: ``timeout`` if given, else the device's own ``timeout``
    attribute, else :data:`~labflow.devices.base.DEFAULT_TIMEOUT`."""
    for t in (timeout, getattr(obj, "timeout", None)):
        if isinstance(t, (int, float)) and t > 0:
            return float(t)
    return DEFAULT_TIMEOUT


def bounded_read(obj: Any, *, timeout: float | None = None):
    """``bps.read(obj)`` that raises :class:`~labflow.errors.DeviceTimeoutError` naming ``obj``
    when ``read()`` has not returned within :func:`read_timeout` seconds."""
    return (yield from bps.read(_BoundedReadable(obj, read_timeout(obj, timeout))))


@_raising_device_errors
def set_parameters(synthesis: Any, params: Mapping[str, pint.Quantity | str | float], *, timeout: float | None = None):
    """Set every parameter of ``synthesis`` together and wait for all of them.

    ``params``: name -> Quantity (converted to the signal's own unit from its
    ``describe()``), text such as ``"150 degC"``, a plain number (already in the device
    unit) or a label for a categorical. Everything is converted and checked before the first
    ``set``. Returns the values sent, in device units.
    """
    values = to_device_values(synthesis, params)  # raises before anything moves
    group = short_uid("set")
    statuses = []
    for name, value in values.items():
        st = yield from bps.abs_set(getattr(synthesis, name), value, group=group)
        statuses.append(st)
    yield from wait_for(group, statuses, "set", timeout=timeout)
    return values


@_raising_device_errors
def synthesize(synthesis: Any, *, timeout: float | None = None):
    """Trigger the synthesis station (make the sample) and wait."""
    group = short_uid("synthesize")
    st = yield from bps.trigger(synthesis, group=group)
    yield from wait_for(group, [st], "synthesize", timeout=timeout)


@_raising_device_errors
def measure(instrument: Any, *also_read: Any, timeout: float | None = None, stream: str = "primary"):
    """Trigger ``instrument``, wait, then read it and ``also_read`` into one event of ``stream``.

    ``also_read`` devices are read, not triggered (e.g. the synthesis station, so the event
    carries the settings as applied). Each read is bounded (:func:`bounded_read`) by
    ``timeout``, else the device's own timeout. Returns the merged readings.
    """
    group = short_uid("measure")
    st = yield from bps.trigger(instrument, group=group)
    yield from wait_for(group, [st], "measure", timeout=timeout)
    yield from bps.create(stream)
    readings: dict[str, Any] = {}
    for obj in (instrument, *also_read):
        reading = yield from bounded_read(obj, timeout=timeout)
        readings.update(reading or {})
    yield from bps.save()
    return readings


def _md_value(v: Any) -> Any:
    if isinstance(v, pint.Quantity):
        return str(v) if str(v.units) != "dimensionless" else float(v.magnitude)  # '150 degree_Celsius': pint reads it back
    if hasattr(v, "item"):
        return v.item()
    return v


def run_experiment(
    station: Any,
    params: Mapping[str, pint.Quantity | str | float],
    md: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
):
    """Run one experiment on ``station`` as one bluesky run.

    1. open a run with ``md`` in the start document (plus ``plan_name``, ``station``,
       ``parameters`` as given, ``detectors``; keys in ``md`` win);
    2. :func:`set_parameters` on ``station.synthesis`` (one group; wait bounded by ``timeout``);
    3. :func:`synthesize`;
    4. :func:`measure` ``station.instrument`` together with ``station.synthesis``: one event
       in the ``primary`` stream with the measured outputs and the settings as applied;
    5. close the run (``exit_status='success'``).

    Parameters
    ----------
    station:
        ``name``, ``synthesis``, ``instrument`` (see the module docstring).
    params:
        Parameter name -> Quantity, text or number in device units (labels for categoricals).
    md:
        Metadata for the start document (e.g. ``candidate_uid``, ``campaign``).
    timeout:
        Seconds each wait (set, synthesize, measure) may take; ``None`` relies on the
        devices' own Status timeouts.

    Returns the run's uid. Outcomes: ``event["data"][station.reading_key(output)]``, see
    :func:`extract_outcomes`.
    """
    synthesis, instrument = station.synthesis, station.instrument
    start_md = {
        "plan_name": "run_experiment",
        "station": getattr(station, "name", synthesis.name),
        "detectors": [instrument.name],
        "parameters": {k: _md_value(v) for k, v in params.items()},
        **dict(md or {}),
    }

    @bpp.run_decorator(md=start_md)
    def _inner():
        yield from set_parameters(synthesis, params, timeout=timeout)
        yield from synthesize(synthesis, timeout=timeout)
        yield from measure(instrument, synthesis, timeout=timeout)

    return (yield from _inner())


def extract_outcomes(station: Any, event: Mapping[str, Any], outputs: Sequence[str]) -> dict[str, float]:
    """Output name -> measured value, from an event document of :func:`run_experiment`.

    Raises :class:`~labflow.errors.DeviceError` naming the key when a reading is missing.
    """
    data = event["data"]
    out = {}
    for name in outputs:
        key = station.reading_key(name) if hasattr(station, "reading_key") else f"{station.instrument.name}_{name}"
        if key not in data:
            raise DeviceError(f"{getattr(station, 'name', station)}: the event has no reading {key!r} for output {name!r}")
        out[name] = float(data[key])
    return out
