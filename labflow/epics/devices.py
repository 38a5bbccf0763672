"""labflow device roles over EPICS: ophyd ``EpicsSignal`` components on an IOC's PVs.

The same roles as :mod:`labflow.devices.base`, built for PVs laid out as
:mod:`labflow.epics.server` serves them (``{prefix}{parameter}``, ``..._RBV``, ``synthesize``,
``measure``, ``{output}``, ``error``). Units and limits come from Channel Access metadata
(``describe()``), so the conversion at the device boundary (:func:`to_device_values`) works
unchanged. Every operation has a Status with a timeout naming the device and the PV.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ophyd import Component, EpicsSignal, EpicsSignalRO, Kind

from labflow.devices.base import (
    CharacterizationInstrument,
    OperationStatus,
    SynthesisStation,
    _check_component_names,
)
from labflow.errors import DeviceError
from labflow.sim.base import Input, Output

__all__ = ["EpicsInstrument", "EpicsSynthesisStation", "make_epics_instrument", "make_epics_station"]


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
        except Exception as exc:
            try:
                status.set_exception(exc)
            except Exception:
                pass
        else:
            try:
                status.set_finished()
            except Exception:
                pass

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
