"""labflow device roles over EPICS: ophyd ``EpicsSignal`` components on an IOC's PVs.

The same roles as :mod:`labflow.devices.base`, built for PVs laid out as
:mod:`labflow.epics.server` serves them (``{prefix}{parameter}``, ``..._RBV``, ``synthesize``,
``measure``, ``{output}``, ``error``). Units and limits come from Channel Access metadata
(``describe()``), so the conversion at the device boundary (:func:`to_device_values`) works
unchanged. Every operation has a Status with a timeout naming the device and the PV.

A lost IOC suspends the run, as a lost ZeroMQ server does: :class:`IocConnection` follows
Channel Access's connection callbacks of every PV of a station's devices, and
:class:`IocLostSuspender` (a bluesky ``SuspendBoolHigh`` on its ``lost`` signal) pauses the
station's RunEngine while any of them is disconnected. When the IOC is back, Channel Access
reconnects, the suspender releases, and bluesky replays the run from its last checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from bluesky.suspenders import SuspendBoolHigh
from ophyd import Component, EpicsSignal, EpicsSignalRO, Kind, Signal
from ophyd.signal import EpicsSignalBase

from labflow.devices.base import (
    CharacterizationInstrument,
    OperationStatus,
    SynthesisStation,
    _check_component_names,
    settle_status,
)
from labflow.errors import DeviceError
from labflow.sim.base import Input, Output

__all__ = ["EpicsInstrument", "EpicsSynthesisStation", "IocConnection", "IocLostSuspender", "make_epics_instrument", "make_epics_station"]


def _chain(obj: Any, operation: str, inner: Any, timeout: float, check: Any = None) -> OperationStatus:
    """An OperationStatus that follows ophyd's ``inner`` Status, then runs ``check``."""
    status = OperationStatus(obj, operation, timeout=timeout)

    def done(st: Any) -> None:
        if status.done:
            return
        try:
            if not st.success:
                exc = st.exception() or DeviceError(f"{obj.name}: {operation} failed")
                raise DeviceError(f"{obj.name}: {operation} failed: {exc}")
            if check is not None:
                check()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the Status carries it to the plan
            settle_status(status, exc)
        else:
            settle_status(status)

    inner.add_callback(done)
    return status


class _EpicsRole:
    def _check_error(self) -> None:
        err = self.error.get(use_monitor=False)  # type: ignore[attr-defined]
        if err:
            raise DeviceError(f"{self.name} ({self.error.pvname}): {err}")  # type: ignore[attr-defined]

    def _op_timeout(self) -> float:
        return self.timeout if self.timeout is not None else 60.0  # type: ignore[attr-defined]


class EpicsSynthesisStation(_EpicsRole, SynthesisStation):
    """A synthesis station on an IOC: ``trigger()`` puts 1 to ``{prefix}synthesize`` with put-completion."""

    synthesize = Component(EpicsSignal, "synthesize", put_complete=True, kind=Kind.omitted)
    error = Component(EpicsSignalRO, "error", string=True, kind=Kind.omitted)

    def trigger(self) -> OperationStatus:
        t = self._op_timeout()
        return _chain(self, "synthesize", self.synthesize.set(1, timeout=t), t, self._check_error)


class EpicsInstrument(_EpicsRole, CharacterizationInstrument):
    """An instrument on an IOC: ``trigger()`` puts 1 to ``{prefix}measure``; outputs are read-only PVs."""

    measure = Component(EpicsSignal, "measure", put_complete=True, kind=Kind.omitted)
    error = Component(EpicsSignalRO, "error", string=True, kind=Kind.omitted)

    def trigger(self) -> OperationStatus:
        t = self._op_timeout()
        return _chain(self, "measure", self.measure.set(1, timeout=t), t, self._check_error)


def make_epics_station(prefix: str, name: str, parameters: Sequence[str], *, timeout: float | None = None) -> EpicsSynthesisStation:
    """A station whose parameter ``p`` is the PV pair ``{prefix}p`` / ``{prefix}p_RBV``."""
    _check_component_names(parameters, EpicsSynthesisStation, "parameter")
    attrs: dict[str, Any] = {"inputs": tuple(Input(p) for p in parameters), "__module__": __name__}
    for p in parameters:
        attrs[p] = Component(EpicsSignal, f"{p}_RBV", write_pv=p, put_complete=True, kind=Kind.normal)
    return type("EpicsSynthesisStation", (EpicsSynthesisStation,), attrs)(prefix, name=name, timeout=timeout)


def make_epics_instrument(prefix: str, name: str, outputs: Sequence[Output], *, timeout: float | None = None) -> EpicsInstrument:
    """An instrument whose output ``o`` is the read-only PV ``{prefix}o``."""
    _check_component_names([o.name for o in outputs], EpicsInstrument, "output")
    attrs: dict[str, Any] = {"outputs": tuple(outputs), "__module__": __name__}
    for o in outputs:
        attrs[o.name] = Component(EpicsSignalRO, o.name, kind=Kind.hinted)
    return type("EpicsInstrument", (EpicsInstrument,), attrs)(prefix, name=name, timeout=timeout)


class IocConnection:
    """Whether every PV of ``devices`` is connected, as an ophyd signal a suspender can watch.

    ``lost`` is 1 while at least one of their EPICS signals is disconnected (``disconnected``
    names them), 0 otherwise. It follows ophyd's metadata callbacks, which Channel Access
    drives when a circuit to the IOC drops or comes back.
    """

    def __init__(self, name: str, devices: Iterable[Any]) -> None:
        self.name = name
        self.lost = Signal(name=f"{name}_ioc_lost", value=0)
        self._down: set[str] = set()
        self._lock = threading.Lock()
        self._subscriptions: list[tuple[Any, int]] = []
        for dev in devices:
            for walked in dev.walk_signals(include_lazy=True):
                sig = walked.item
                if isinstance(sig, EpicsSignalBase):
                    token = sig.subscribe(self._on_metadata, event_type=sig.SUB_META, run=False)
                    self._subscriptions.append((sig, token))

    @property
    def disconnected(self) -> list[str]:
        with self._lock:
            return sorted(self._down)

    def _on_metadata(self, *, obj: Any, connected: bool | None = None, **_: Any) -> None:
        if connected is None:
            return
        with self._lock:
            if connected:
                self._down.discard(obj.name)
            else:
                self._down.add(obj.name)
            lost = 1 if self._down else 0
        if self.lost.get() != lost:
            self.lost.put(lost)

    def close(self) -> None:
        for sig, token in self._subscriptions:
            sig.unsubscribe(token)
        self._subscriptions.clear()


class IocLostSuspender(SuspendBoolHigh):
    """Suspends a station's runs while its IOC is lost (a PV of its devices is disconnected)."""

    def __init__(self, connection: IocConnection, *, sleep: float = 0.0) -> None:
        super().__init__(connection.lost, sleep=sleep, tripped_message=f"{connection.name}: the IOC is lost (PVs disconnected)")
        self.connection = connection

    def _get_justification(self) -> str:
        text = super()._get_justification()
        down = self.connection.disconnected
        return f"{text}: {', '.join(down[:5])}{' ...' if len(down) > 5 else ''}" if text and down else text
