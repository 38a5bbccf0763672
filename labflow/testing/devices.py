"""Conformance checks for devices: what any instrument driver, labflow's or a lab's own, must do.

Run them on your driver before it touches a campaign::

    from labflow.testing import check_device
    check_device(my_furnace)              # one device
    check_device(station)                 # a labflow.lab.Station: both devices, then a whole experiment

or one pytest test per check (as scikit-learn's ``parametrize_with_checks``)::

    @pytest.mark.parametrize("check", device_checks(), ids=lambda c: c.__name__)
    def test_my_furnace(check):
        check(make_furnace())

Each check raises ``AssertionError`` with a message that names the device, the key or the
operation, and what to change.

The checks
----------
``check_describe_read_agree``   ``describe()`` and ``read()`` report the same keys (and the configuration pair too)
``check_units``                 every numeric key in ``describe()`` has a ``units`` entry that labflow's unit registry knows
``check_timeouts``              ``trigger()`` and every settable child's ``set()`` return a Status with a finite timeout,
                                and the Status finishes (done or failed) within that timeout
``check_set_applies``           a settable child set to a value within its limits reads that value back
``check_stop_idempotent``       ``stop()`` may be called twice in a row (and with ``success=True``) without raising
``check_timestamps``            reading timestamps are finite UNIX times, not in the future, and never go backwards

A :class:`~labflow.lab.Station` is checked device by device, then once more as a whole:
parameters set, synthesis triggered, measurement triggered, and every reading finite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from labflow.errors import UnitError
from labflow.units import parse_unit

__all__ = [
    "DEVICE_CHECKS",
    "check_describe_read_agree",
    "check_device",
    "check_set_applies",
    "check_station_experiment",
    "check_stop_idempotent",
    "check_timeouts",
    "check_timestamps",
    "check_units",
    "device_checks",
]

SLACK = 1.0
"""Seconds a Status may take beyond its own timeout before the check calls it hung."""


def _name(device: Any) -> str:
    return f"{type(device).__name__} {getattr(device, 'name', '?')!r}"


def _settable(device: Any) -> dict[str, Any]:
    """Children that take ``set()``: signals whose ``describe()`` gives limits or choices."""
    out = {}
    for attr in getattr(device, "component_names", ()):
        child = getattr(device, attr)
        if not hasattr(child, "set") or not hasattr(child, "describe"):
            continue
        try:
            desc = next(iter(child.describe().values()))
        except Exception:  # noqa: BLE001 - a child that cannot describe itself is caught by check_describe_read_agree
            continue
        if any(k in desc for k in ("lower_ctrl_limit", "upper_ctrl_limit", "enum_strs")):
            out[attr] = (child, desc)
    return out


def _target(child: Any, desc: dict[str, Any]) -> Any:
    """A value inside the child's limits: its first choice, or the middle of its range."""
    if desc.get("enum_strs"):
        return desc["enum_strs"][0]
    lo, hi = desc.get("lower_ctrl_limit"), desc.get("upper_ctrl_limit")
    if lo is None and hi is None:
        v = 0.0
    elif lo is None:
        v = float(hi) - 1.0
    elif hi is None:
        v = float(lo) + 1.0
    else:
        v = (float(lo) + float(hi)) / 2
    if desc.get("dtype") == "integer" or getattr(child, "integer", False):
        v = int(math.ceil(v))
    return v


def _finish(status: Any, device: Any, operation: str) -> BaseException | None:
    """Wait for ``status`` within its own timeout (+ SLACK); return its exception (None on success)."""
    timeout = getattr(status, "timeout", None)
    if timeout is None or not math.isfinite(float(timeout)) or float(timeout) <= 0:
        raise AssertionError(
            f"{_name(device)}: {operation} returned a Status without a finite timeout ({timeout!r}); "
            "every operation must be bounded: pass timeout= to the Status (labflow.devices.run_operation does)"
        )
    try:
        return status.exception(timeout=float(timeout) + SLACK)
    except Exception as exc:  # ophyd raises WaitTimeoutError when the Status is still not done
        raise AssertionError(
            f"{_name(device)}: {operation} did not finish within its own timeout of {float(timeout):g} s "
            f"(waited {float(timeout) + SLACK:g} s): the Status must fail when the timeout expires"
        ) from exc


# -- the checks ---------------------------------------------------------------------------
def check_describe_read_agree(device: Any) -> None:
    desc, reading = device.describe(), device.read()
    if set(desc) != set(reading):
        raise AssertionError(
            f"{_name(device)}: describe() and read() disagree: only in describe {sorted(set(desc) - set(reading))}, "
            f"only in read {sorted(set(reading) - set(desc))}"
        )
    for key, r in reading.items():
        if not isinstance(r, dict) or "value" not in r or "timestamp" not in r:
            raise AssertionError(f"{_name(device)}: read()[{key!r}] must be a dict with 'value' and 'timestamp', got {r!r}")
    if hasattr(device, "describe_configuration") and hasattr(device, "read_configuration"):
        dc, rc = device.describe_configuration(), device.read_configuration()
        if set(dc) != set(rc):
            raise AssertionError(f"{_name(device)}: describe_configuration() and read_configuration() disagree: "
                                 f"{sorted(set(dc) ^ set(rc))}")


def check_units(device: Any) -> None:
    for key, d in device.describe().items():
        if d.get("dtype") not in ("number", "integer"):
            continue
        if "units" not in d:
            raise AssertionError(
                f"{_name(device)}: numeric key {key!r} has no 'units' in describe(); "
                "report its unit (pint syntax, '' for dimensionless) so labflow can convert at the boundary"
            )
        try:
            parse_unit(d["units"])
        except UnitError as exc:
            raise AssertionError(f"{_name(device)}: key {key!r} has units {d['units']!r} that labflow does not know: {exc.message}") from exc


def check_timeouts(device: Any) -> None:
    for attr, (child, desc) in _settable(device).items():
        _finish(child.set(_target(child, desc)), device, f"{attr}.set()")
    if hasattr(device, "trigger"):
        _finish(device.trigger(), device, "trigger()")


def check_set_applies(device: Any) -> None:
    for attr, (child, desc) in _settable(device).items():
        value = _target(child, desc)
        exc = _finish(child.set(value), device, f"{attr}.set({value!r})")
        if exc is not None:
            raise AssertionError(f"{_name(device)}: {attr}.set({value!r}) within the limits failed: {exc}")
        got = child.get()
        same = got == value if isinstance(value, str) else math.isclose(float(got), float(value), rel_tol=1e-9, abs_tol=1e-12)
        if not same:
            raise AssertionError(f"{_name(device)}: {attr} was set to {value!r} but reads back {got!r}")


def check_stop_idempotent(device: Any) -> None:
    for kwargs in ({}, {}, {"success": True}):
        try:
            device.stop(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the point of the check
            raise AssertionError(f"{_name(device)}: stop({', '.join(f'{k}={v}' for k, v in kwargs.items())}) raised "
                                 f"{type(exc).__name__}: {exc}; stop() must be safe to call at any time, twice") from exc


def check_timestamps(device: Any) -> None:
    first = device.read()
    if hasattr(device, "trigger"):
        _finish(device.trigger(), device, "trigger()")
    second = device.read()
    now = time.time()
    for key in first:
        t1, t2 = first[key]["timestamp"], second.get(key, first[key])["timestamp"]
        for t in (t1, t2):
            if not isinstance(t, (int, float)) or not math.isfinite(t) or t > now + 60 or t < 946684800:  # 2000-01-01
                raise AssertionError(f"{_name(device)}: key {key!r} has timestamp {t!r}; expected a UNIX time (time.time())")
        if t2 < t1:
            raise AssertionError(f"{_name(device)}: key {key!r}: timestamp went backwards from {t1} to {t2}")


def check_station_experiment(station: Any) -> None:
    """A whole experiment on a station: set every parameter, synthesize, measure, read finite values."""
    syn, ins = station.synthesis, station.instrument
    for attr, (child, desc) in _settable(syn).items():
        exc = _finish(child.set(_target(child, desc)), syn, f"{attr}.set()")
        if exc is not None:
            raise AssertionError(f"station {station.name!r}: setting {attr} failed: {exc}")
    for dev, what in ((syn, "synthesize (trigger)"), (ins, "measure (trigger)")):
        exc = _finish(dev.trigger(), dev, what)
        if exc is not None:
            raise AssertionError(f"station {station.name!r}: {what} on {dev.name!r} failed: {exc}")
    for key, r in ins.read().items():
        v = r["value"]
        if isinstance(v, (int, float)) and not math.isfinite(float(v)):
            raise AssertionError(f"station {station.name!r}: reading {key!r} is {v} after a successful measurement")


DEVICE_CHECKS: list[Callable[[Any], None]] = [
    check_describe_read_agree,
    check_units,
    check_timeouts,
    check_set_applies,
    check_stop_idempotent,
    check_timestamps,
]


def device_checks() -> list[Callable[[Any], None]]:
    """The device checks, for ``pytest.mark.parametrize``."""
    return list(DEVICE_CHECKS)


def check_device(device: Any, *, skip: Sequence[str] = ()) -> None:
    """Run every device check on ``device`` (or on both devices of a Station, then a whole experiment).

    ``skip`` names checks to leave out. Raises ``AssertionError`` at the first failure.
    """
    if hasattr(device, "synthesis") and hasattr(device, "instrument"):
        for dev in (device.synthesis, device.instrument):
            check_device(dev, skip=skip)
        if "check_station_experiment" not in skip:
            check_station_experiment(device)
        return
    for check in DEVICE_CHECKS:
        if check.__name__ not in skip:
            check(device)
