"""Fault injection for labs: hanging and failing devices, NaN readings, a full disk, an interlock.

Test your own lab the way labflow tests itself (``tests/reliability``)::

    from labflow.testing.faults import inject_fault
    lab = recipe.lab_config.build(seed=0)
    inj = inject_fault(lab.stations[0], "set", "hang")            # every set never completes
    inj = inject_fault(lab.stations[0], "read", "raise", calls={3})  # the 3rd read raises
    inj = inject_fault(lab.stations[0], "read", "nan", output="y")   # readings of y are NaN

Operations: ``set`` (every parameter signal), ``synthesize`` (the synthesis station's
trigger), ``measure`` (the instrument's trigger), ``read`` (the instrument's read).
Kinds: ``hang`` (a Status that never completes, so its timeout must fire; for ``read``, a
call that blocks for ``timeout`` seconds, or until ``release`` is set: ``measure`` bounds it), ``raise`` (a :class:`~labflow.errors.DeviceError` naming the injection),
``nan``, ``inf``, ``-inf``, ``text`` (the reading of ``output`` replaced by that value).
``calls``: which calls (1-based) misbehave; ``None`` = all. The returned :class:`FaultInjector`
counts calls and firings, and ``remove()`` undoes the patch.

:func:`full_disk` makes ledger writes fail with ``ENOSPC`` after a number of bytes (no
privileges needed); :class:`GloveboxOxygen` and :func:`oxygen_interlock` are a simulated
interlock signal and its bluesky suspender.
"""

from __future__ import annotations

import contextlib
import errno
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ophyd import Signal

from labflow.devices.base import DEFAULT_TIMEOUT, OperationStatus
from labflow.errors import DeviceError

__all__ = ["FaultInjector", "FaultyFile", "GloveboxOxygen", "full_disk", "inject_fault", "oxygen_interlock"]

_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "text": "overload"}


@dataclass
class FaultInjector:
    """One injected fault: where, what, and how often it fired."""

    target: str
    operation: str
    kind: str
    calls_: set[int] | None = None
    calls: int = 0
    fired: int = 0
    _undo: list = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hit(self) -> bool:
        with self._lock:
            self.calls += 1
            fire = self.calls_ is None or self.calls in self.calls_
            self.fired += int(fire)
            return fire

    def remove(self) -> None:
        for obj, name, old in reversed(self._undo):
            if old is None:
                obj.__dict__.pop(name, None)
            else:
                setattr(obj, name, old)
        self._undo.clear()


def _patch(inj: FaultInjector, obj: Any, name: str, new: Any) -> None:
    inj._undo.append((obj, name, obj.__dict__.get(name)))
    setattr(obj, name, new)


def _hung_status(obj: Any, operation: str, timeout: float | None) -> OperationStatus:
    """A Status that nobody will ever finish: only its timeout can end it."""
    return OperationStatus(obj, operation, timeout=timeout if timeout is not None else DEFAULT_TIMEOUT)


def _failed_status(obj: Any, operation: str, message: str) -> OperationStatus:
    st = OperationStatus(obj, operation, timeout=DEFAULT_TIMEOUT)
    st.set_exception(DeviceError(message))
    return st


def inject_fault(station: Any, operation: str, kind: str, *, calls: set[int] | None = None, output: str | None = None,
                 timeout: float | None = None) -> FaultInjector:
    """Make ``station`` misbehave (see the module docstring). ``timeout`` bounds a hung Status
    (default: the device's own timeout, else ``DEFAULT_TIMEOUT``)."""
    if operation not in ("set", "synthesize", "measure", "read"):
        raise ValueError(f"unknown operation {operation!r}; expected set, synthesize, measure or read")
    if kind not in ("hang", "raise", *_VALUES):
        raise ValueError(f"unknown fault kind {kind!r}; expected hang, raise, {', '.join(_VALUES)}")
    syn, ins = station.synthesis, station.instrument
    inj = FaultInjector(getattr(station, "name", str(station)), operation, kind, calls)
    message = f"injected fault: {kind} on {operation}"

    if operation == "set":
        if kind not in ("hang", "raise"):
            raise ValueError("set faults are 'hang' or 'raise'")
        for pname in syn.parameter_names:
            sig = getattr(syn, pname)
            real = sig.set

            def fake_set(value, *a, _sig=sig, _real=real, **kw):
                if not inj.hit():
                    return _real(value, *a, **kw)
                t = timeout if timeout is not None else (_sig.timeout or syn.timeout)
                return _hung_status(_sig, "set", t) if kind == "hang" else _failed_status(_sig, "set", f"{syn.name}.{pname}: {message}")

            _patch(inj, sig, "set", fake_set)
        return inj

    if operation in ("synthesize", "measure"):
        if kind not in ("hang", "raise"):
            raise ValueError(f"{operation} faults are 'hang' or 'raise'")
        dev = syn if operation == "synthesize" else ins
        real_trigger = dev.trigger

        def fake_trigger(*a, **kw):
            if not inj.hit():
                return real_trigger(*a, **kw)
            t = timeout if timeout is not None else dev.timeout
            return _hung_status(dev, operation, t) if kind == "hang" else _failed_status(dev, operation, f"{dev.name}: {message}")

        _patch(inj, dev, "trigger", fake_trigger)
        return inj

    real_read = ins.read
    release = threading.Event()
    inj._undo.append((release, "set", None))  # placeholder so remove() order stays simple

    def fake_read(*a, **kw):
        reading = real_read(*a, **kw)
        if not inj.hit():
            return reading
        if kind == "hang":
            release.wait(timeout if timeout is not None else DEFAULT_TIMEOUT)
            return reading
        if kind == "raise":
            raise DeviceError(f"{ins.name}: {message}")
        keys = [k for k in reading if output is None or k.endswith(f"_{output}") or k == output]
        for k in keys:
            reading[k] = {**reading[k], "value": _VALUES[kind]}
        return reading

    inj._undo.pop()
    _patch(inj, ins, "read", fake_read)
    inj.release = release  # type: ignore[attr-defined]
    return inj


# -- a full disk --------------------------------------------------------------------------------
class FaultyFile:
    """Wraps a binary file: after ``fail_after_bytes`` bytes in total, writes raise ENOSPC.

    The write that crosses the limit writes the bytes that still fit first (a torn write, as a
    real full disk does), then raises. Deterministic; needs no privileges."""

    def __init__(self, raw: BinaryIO, fail_after_bytes: int) -> None:
        self._raw = raw
        self.remaining = int(fail_after_bytes)

    def write(self, data: bytes) -> int:
        if len(data) > self.remaining:
            part = data[: max(self.remaining, 0)]
            if part:
                self._raw.write(part)
                self._raw.flush()
            self.remaining = 0
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        self.remaining -= len(data)
        return self._raw.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@contextlib.contextmanager
def full_disk(after_bytes: int) -> Iterator[None]:
    """Within the block, every ledger opened fails with ENOSPC after ``after_bytes`` bytes."""
    from labflow.store import ledger

    ledger.set_file_wrapper(lambda raw: FaultyFile(raw, after_bytes))
    try:
        yield
    finally:
        ledger.set_file_wrapper(None)


# -- an interlock -------------------------------------------------------------------------------
class GloveboxOxygen(Signal):
    """A simulated glovebox oxygen level in ppm (set it with ``put``); an interlock's input."""

    def __init__(self, *, name: str = "glovebox_oxygen", value: float = 0.5, **kwargs: Any) -> None:
        super().__init__(name=name, value=value, **kwargs)

    def describe(self) -> dict[str, dict[str, Any]]:
        d = super().describe()
        d[self.name]["units"] = "ppm"
        return d


def oxygen_interlock(signal: Signal, *, max_ppm: float = 10.0, resume_below: float = 5.0, sleep: float = 0.0) -> Any:
    """A bluesky suspender: runs are suspended while oxygen exceeds ``max_ppm`` and resume
    ``sleep`` seconds after it falls below ``resume_below``."""
    from bluesky.suspenders import SuspendCeil

    return SuspendCeil(signal, max_ppm, resume_thresh=resume_below, sleep=sleep,
                       tripped_message=f"glovebox oxygen above {max_ppm:g} ppm")
