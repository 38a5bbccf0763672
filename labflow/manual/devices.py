"""A manual station's devices: ophyd devices whose work is done by a person.

A manual station is a :class:`~labflow.lab.Station` like any other, so an experiment on it is one
bluesky run through :func:`labflow.plans.run_experiment`, on the station's own RunEngine:

1. ``set_parameters``: each :class:`~labflow.devices.base.ParameterSignal` of the
   :class:`ManualSynthesis` takes its value (device units, limits checked) -- what the person will
   be asked to use;
2. ``synthesize``: :meth:`ManualSynthesis.trigger` *issues the work order* through the station's
   desk (the campaign's :class:`~labflow.campaign.work_orders.WorkOrderBoard`, which ledgers it
   before anyone sees it) and completes at once;
3. ``measure``: :meth:`ManualInstrument.trigger` returns a :class:`WorkOrderStatus` that completes
   when a person's report of the order is recorded, with the reported values in the instrument's
   output signals and ``work_order``, ``reported_by``, ``reported_at`` beside them; its timeout is
   what is left of the work order's own timeout, and a Status that times out fails with
   :class:`WorkOrderTimeout` naming the order, its timeout and its deadline.

The readings then travel as every reading does (documents -> ledger -> HDF5), so a manual result is
recorded exactly like an automated one, plus who reported it and when.

Which experiment an order belongs to comes from the run's start document (``experiment_uid``,
``attempt``): :meth:`ManualStation.subscribers` gives the station's RunEngine a callback that reads
it. The desk is an object with the :class:`WorkOrderDesk` methods; this module knows nothing of
ledgers or inboxes.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ophyd import Component, Kind
from ophyd.signal import InternalSignal
from ophyd.utils.errors import StatusTimeoutError

from labflow.devices.base import (
    CharacterizationInstrument,
    OperationStatus,
    SynthesisStation,
    characterization_instrument_class,
    settle_status,
    synthesis_station_class,
)
from labflow.errors import DeviceError, DeviceTimeoutError
from labflow.lab import Station
from labflow.sim.base import Input, Output

__all__ = [
    "ManualInstrument",
    "ManualStation",
    "ManualSynthesis",
    "WorkOrderDesk",
    "WorkOrderStatus",
    "WorkOrderTimeout",
    "format_duration",
    "make_manual_station",
]


class WorkOrderDesk(Protocol):
    """Where a manual station's orders go (the campaign's work-order board implements it)."""

    def issue(self, *, uid: str, attempt: int, station: str, params: Mapping[str, Any], units: Mapping[str, str],
              outputs: Sequence[Mapping[str, Any]], timeout_s: float) -> Mapping[str, Any]:
        """The work order for experiment ``uid``: a new one (ledgered before this returns), or the
        open one already issued for it (after a resume). Returns its record (``id``, ``deadline``...)."""

    def wait(self, order_id: str, on_report: Callable[[Mapping[str, Any]], None]) -> None:
        """Call ``on_report(act)`` with the order's recorded report: now if there is one, else when it comes."""

    def consumed(self, order_id: str) -> None:
        """The station is done with the order (its result is in, or it timed out): a retry issues a new one."""


class WorkOrderTimeout(DeviceTimeoutError, StatusTimeoutError):
    """Nobody reported a work order's result before its deadline."""


def format_duration(seconds: float) -> str:
    """'2 s', '45 min', '3 h', '2.5 d': a duration as a person writes it."""
    s = float(seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:g} {unit}"
    return f"{s:g} s"


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(float(epoch), _dt.timezone.utc).astimezone().isoformat(timespec="seconds")


class WorkOrderStatus(OperationStatus):
    """The Status of waiting for a work order's result; its timeout is what is left of the order's
    own, and it fails with :class:`WorkOrderTimeout` naming the order when nobody reports in time."""

    def __init__(self, obj: Any, order: Mapping[str, Any], *, timeout: float) -> None:
        self.order = dict(order)
        super().__init__(obj, "wait for the work order's result", timeout=timeout)

    def _settled(self) -> None:
        exc = self._exception
        if isinstance(exc, StatusTimeoutError) and not isinstance(exc, WorkOrderTimeout):
            o = self.order
            self._exception = WorkOrderTimeout(
                f"work order {o['id']} on {o['station']} was not reported within its timeout of {format_duration(o['timeout_s'])} "
                f"(deadline {_iso(o['deadline'])})",
                hint=f"report results before the deadline (labflow report-result CAMPAIGN {o['id']} --value NAME=VALUE), "
                     "or give the manual station a longer timeout in the lab config",
            )


@dataclass
class _Slot:
    """What a manual station's two devices share: the desk, the experiment in progress (from its run's
    start document) and the work order issued for it."""

    station: str
    timeout_s: float
    desk: WorkOrderDesk | None = None
    experiment: dict[str, Any] = field(default_factory=dict)
    order: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_document(self, name: str, doc: Mapping[str, Any]) -> None:
        if name == "start":
            with self.lock:
                self.experiment = {"uid": str(doc.get("experiment_uid") or doc["uid"]), "attempt": int(doc.get("attempt", 1))}
                self.order = None

    def the_desk(self) -> WorkOrderDesk:
        if self.desk is None:
            raise DeviceError(f"{self.station}: a manual station has no work-order desk",
                              hint="run it through a campaign (labflow run): the campaign's ledger records its work orders")
        return self.desk


class ManualSynthesis(SynthesisStation):
    """The parameters a person is asked to use; :meth:`trigger` issues the work order."""

    slot: _Slot

    def trigger(self) -> OperationStatus:
        params = self.values()
        return self._operation("issue a work order", lambda: self._issue(params), 0.0)

    def _issue(self, params: Mapping[str, Any]) -> None:
        slot = self.slot
        with slot.lock:
            experiment = dict(slot.experiment)
        if not experiment:
            raise DeviceError(f"{self.name}: no run is open, so the work order would belong to no experiment")
        units = {i.name: ("" if i.choices else i.unit) for i in self.inputs}
        outputs = [{"name": o.name, "unit": o.unit, "low": o.low, "high": o.high} for o in self.slot_outputs]
        order = slot.the_desk().issue(uid=experiment["uid"], attempt=experiment["attempt"], station=slot.station,
                                      params=dict(params), units=units, outputs=outputs, timeout_s=slot.timeout_s)
        with slot.lock:
            slot.order = dict(order)

    slot_outputs: tuple[Output, ...] = ()


class ManualInstrument(CharacterizationInstrument):
    """The result a person reports: one output signal per measured quantity (in its unit), and who
    reported it and when. :meth:`trigger` waits for the report of the order the synthesis issued."""

    work_order = Component(InternalSignal, value="", kind=Kind.normal, doc="the work order whose result this is")
    reported_by = Component(InternalSignal, value="", kind=Kind.normal, doc="who reported the result")
    reported_at = Component(InternalSignal, value="", kind=Kind.normal, doc="when the result was reported (ISO 8601)")
    slot: _Slot

    def trigger(self) -> OperationStatus:
        slot = self.slot
        with slot.lock:
            order = dict(slot.order) if slot.order is not None else None
        if order is None:
            raise DeviceError(f"{self.name}: no work order was issued for this experiment (trigger the synthesis first)")
        desk = slot.the_desk()
        remaining = float(order["deadline"]) - time.time()
        status = WorkOrderStatus(self, order, timeout=max(remaining, 1e-3))

        def on_report(act: Mapping[str, Any]) -> None:
            after = dict(act.get("after") or {})
            if "failed" in after:
                settle_status(status, DeviceError(f"work order {order['id']} reported failed by {act.get('who', '?')}: {after['failed']}"))
                return
            for o in self.outputs:
                getattr(self, o.name).put(float(after[o.name]), internal=True)
            self.work_order.put(str(order["id"]), internal=True)
            self.reported_by.put(str(act.get("who", "")), internal=True)
            self.reported_at.put(str(act.get("when", "")), internal=True)
            settle_status(status)

        def done(st: Any) -> None:
            # the result is in, or the deadline passed: a retry of this experiment gets a new order
            # (a stopped run leaves the Status pending: a repeated run reuses the order)
            desk.consumed(order["id"])

        status.add_callback(done)
        desk.wait(order["id"], on_report)
        return status

    def _measure(self) -> Mapping[str, float]:  # pragma: no cover - trigger() is overridden
        raise NotImplementedError


@dataclass
class ManualStation(Station):
    """A station whose synthesis and measurement a person does: each experiment is a work order.

    Its waits are bounded by the work order's own timeout (``waits_on_people``), not by the recipe's
    ``execution.timeout``; :meth:`connect_desk` gives it the campaign's work-order board.
    """

    timeout_s: float = 7 * 86400.0
    slot: _Slot | None = None
    waits_on_people: bool = True

    def subscribers(self) -> list[Callable[[str, Mapping[str, Any]], None]]:
        """Document callbacks for the station's RunEngine: the start document names the experiment."""
        return [self.slot.on_document] if self.slot is not None else []

    def connect_desk(self, desk: WorkOrderDesk) -> None:
        """Send this station's work orders to ``desk`` (the campaign's work-order board)."""
        if self.slot is not None:
            self.slot.desk = desk


def make_manual_station(name: str, inputs: Sequence[Input], outputs: Sequence[Output], *, timeout_s: float) -> ManualStation:
    """A manual station ``name`` taking ``inputs`` and reporting ``outputs``; each work order may stay
    open ``timeout_s`` seconds before it times out into a recorded failure."""
    if not (math.isfinite(float(timeout_s)) and float(timeout_s) > 0):
        raise DeviceError(f"{name}: a work order's timeout must be a finite number of seconds > 0, got {timeout_s}")
    slot = _Slot(station=name, timeout_s=float(timeout_s))
    synthesis = synthesis_station_class(inputs, base=ManualSynthesis)(name=f"{name}_synthesis")
    synthesis.slot = slot
    synthesis.slot_outputs = tuple(outputs)
    instrument = characterization_instrument_class(outputs, base=ManualInstrument)(name=f"{name}_instrument")
    instrument.slot = slot
    return ManualStation(name, synthesis, instrument, timeout_s=float(timeout_s), slot=slot)
