"""The remote transport's devices: client-side ophyd proxies of devices served by a labflow
device server (:mod:`labflow.remote.server`).

A :class:`RemoteSynthesisStation` and a :class:`RemoteInstrument` are the same roles as the
local ones (:mod:`labflow.devices.base`): one settable parameter signal per parameter, with
the *server's* units and hard limits in ``describe()``; ``trigger()`` and ``set()`` return a
Status that completes when the remote operation completes; ``read()`` returns the server's
readings with their timestamps (and converts them if the server reports other units). So
bluesky plans and the campaign loop use them unchanged.

Every operation is bounded: a Status fails with :class:`RemoteOperationTimeoutError`, naming
the device, the signal and the endpoint, when its timeout passes.

Suspension and replay. When a server is lost, the station's suspender
(:class:`ServerLostSuspender`) pauses the run; bluesky then stops the signals it set, calls
``pause()`` on the devices, and after resuming *replays* the plan's messages since its last
checkpoint. A :class:`CommandLog` (one per station, reset when a run opens) recognises the
replayed commands and gives them the request ids they had the first time, so the server,
which deduplicates by id, applies each command once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from bluesky.suspenders import SuspendBoolHigh
from ophyd import Component, Kind, Signal
from ophyd.utils.errors import StatusTimeoutError

from labflow.devices.base import (
    DEFAULT_TIMEOUT,
    CharacterizationInstrument,
    MeasurementSignal,
    OperationStatus,
    OperationTimeoutError,
    ParameterSignal,
    SynthesisStation,
    _check_component_names,
    _label,
    settle_status,
    to_device_values,
)
from labflow.errors import DeviceError
from labflow.remote.client import RemoteClient
from labflow.remote.protocol import RemoteError, RemoteTimeoutError, new_id, to_wire
from labflow.sim.base import Input, Output
from labflow.units import convert

__all__ = [
    "CommandLog",
    "RemoteInstrument",
    "RemoteOperationStatus",
    "RemoteOperationTimeoutError",
    "RemoteParameterSignal",
    "RemoteSynthesisStation",
    "ServerLostSuspender",
    "make_remote_device",
]


class RemoteOperationTimeoutError(RemoteTimeoutError, OperationTimeoutError):
    """A remote operation did not finish in time; names device, signal and endpoint."""


class CommandLog:
    """The commands a station sent since its current run opened, to recognise replays.

    :meth:`request_id` returns a fresh id for a new command; after :meth:`begin_replay`
    (bluesky is about to replay the run after a suspension) commands that repeat the log in
    order get their original ids back, until one differs or the log is exhausted.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[tuple, str]] = []
        self._replay_at: int | None = None
        self._lock = threading.Lock()
        self.reused = 0

    def new_run(self) -> None:
        with self._lock:
            self._entries.clear()
            self._replay_at = None

    def begin_replay(self) -> None:
        with self._lock:
            self._replay_at = 0 if self._entries else None

    def request_id(self, key: tuple) -> str:
        with self._lock:
            at = self._replay_at
            if at is not None:
                if at < len(self._entries) and self._entries[at][0] == key:
                    rid = self._entries[at][1]
                    self._replay_at = at + 1 if at + 1 < len(self._entries) else None
                    self.reused += 1
                    return rid
                self._replay_at = None
            rid = new_id()
            self._entries.append((key, rid))
            return rid

    def on_document(self, name: str, doc: Mapping[str, Any]) -> None:
        """A bluesky callback: a new run starts a new log."""
        if name == "start":
            self.new_run()


class ServerLostSuspender(SuspendBoolHigh):
    """Suspends the station's runs while its device server is lost (missed heartbeats).

    Installing it also subscribes the station's :class:`CommandLog` to the RunEngine, so that
    replayed commands keep their request ids.
    """

    def __init__(self, client: RemoteClient, log: CommandLog | None = None, *, sleep: float = 0.0) -> None:
        super().__init__(client.lost, sleep=sleep, tripped_message=f"device server {client.endpoint} lost (missed heartbeats)")
        self.client = client
        self.log = log
        self._token = None

    def install(self, RE: Any, *, event_type: Any = None) -> None:
        super().install(RE, event_type=event_type)
        if self.log is not None and self._token is None:
            self._token = RE.subscribe(self.log.on_document)


class RemoteOperationStatus(OperationStatus):
    """An :class:`OperationStatus` whose timeout error also names the server's endpoint."""

    def __init__(self, obj: Any, operation: str, *, timeout: float, client: RemoteClient) -> None:
        self.client = client
        self.request_id: str | None = None
        super().__init__(obj, operation, timeout=timeout)

    def _settled(self) -> None:
        exc = self._exception
        if isinstance(exc, StatusTimeoutError) and not isinstance(exc, OperationTimeoutError):
            lost = " (the server is lost)" if self.client.lost.get() else ""
            self._exception = RemoteOperationTimeoutError(
                f"{_label(self.obj)} @ {self.client.endpoint}: {self.operation} did not finish within {self.timeout:g} s{lost}",
                hint="check the instrument PC and its device server, or raise the lab config's timeout",
                code="Timeout",
                endpoint=self.client.endpoint,
                device=_label(self.obj),
            )
            if self.request_id is not None:
                self.client.cancel(self.request_id)


class _RemoteMixin:
    """Sending operations for a device proxy (``self._client``, ``self._remote``, ``self._log``)."""

    _client: RemoteClient
    _remote: str
    _log: CommandLog
    _op_timeout: float
    _request_timeout: float

    def _setup_remote(self, client: RemoteClient, remote: str, log: CommandLog | None, timeout: float | None, request_timeout: float | None) -> None:
        self._client = client
        self._remote = remote
        self._log = log or CommandLog()
        self._op_timeout = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
        self._request_timeout = float(request_timeout) if request_timeout is not None else client.request_timeout
        self._remote_pending: set[RemoteOperationStatus] = set()
        self._remote_lock = threading.Lock()

    def _remote_op(self, obj: Any, operation: str, method: str, args: Mapping[str, Any], on_success: Any = None) -> RemoteOperationStatus:
        status = RemoteOperationStatus(obj, operation, timeout=self._op_timeout, client=self._client)
        key = (_label(obj), method, tuple(sorted((k, repr(v)) for k, v in args.items())))
        rid = self._log.request_id(key)
        status.request_id = rid
        with self._remote_lock:
            self._remote_pending.add(status)

        def done(reply: Any, error: BaseException | None) -> None:
            with self._remote_lock:
                self._remote_pending.discard(status)
            if status.done:
                return
            try:
                if error is not None:
                    raise error
                result = self._client.result(reply, method=method, device=_label(obj))
                if on_success is not None:
                    on_success(result or {})
            except Exception as exc:  # noqa: BLE001 - whatever failed, the Status carries it to the plan
                settle_status(status, exc)
            else:
                settle_status(status)

        self._client.submit(method, self._remote, args, id=rid, callback=done)
        return status

    def _stop_remote(self, obj: Any, success: bool) -> None:
        """Stop: finish (``success``: a suspension, the command stays pending to be resent
        and replayed) or fail the local Statuses; without ``success`` also stop the server's
        operation, best effort."""
        with self._remote_lock:
            mine = [s for s in self._remote_pending if s.obj is obj or obj is self]
            for s in mine:
                self._remote_pending.discard(s)
        for s in mine:
            if s.done:
                continue
            if success:
                settle_status(s)
            else:
                if s.request_id is not None:
                    self._client.cancel(s.request_id)
                settle_status(s, DeviceError(f"{_label(s.obj)} @ {self._client.endpoint}: {s.operation} was stopped"))
        if not success and not self._client.lost.get():
            try:
                self._client.submit("stop", self._remote)
            except RemoteError:  # closed connection: nothing to stop
                pass

    def pause(self) -> None:
        """bluesky calls this when the run is suspended: the replay that follows reuses ids."""
        self._log.begin_replay()

    def resume(self) -> None:
        """bluesky calls this when the run resumes (nothing to do: the replay reuses ids)."""

    def _fetch_readings(self) -> None:
        result = self._client.call("read", self._remote, timeout=self._request_timeout)
        readings = (result or {}).get("readings", {})
        for attr, r in readings.items():
            child = getattr(self, attr, None) if isinstance(attr, str) and attr in self.component_names else None  # type: ignore[attr-defined]
            if child is None or not isinstance(r, dict):
                continue
            value, ts, units = r.get("value"), float(r.get("timestamp", 0.0)), r.get("units", "") or ""
            mine = getattr(child, "units", "") or ""
            if isinstance(value, (int, float)) and not isinstance(value, bool) and units != mine and getattr(child, "choices", None) is None:
                value = convert(value, mine, from_unit=units)
            if isinstance(child, MeasurementSignal):
                child.put(value, internal=True, timestamp=ts)
            else:
                Signal.put(child, value, timestamp=ts, force=True)


class RemoteParameterSignal(ParameterSignal):
    """A parameter of a remote synthesis station: checked here, set on the server.

    ``set`` validates against the limits the server reported, then sends the value with its
    unit; the Status completes when the server has applied it.
    """

    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None, **kwargs: Any) -> OperationStatus:
        clean = self.validate(value)
        parent = self.parent
        args = {"signal": self.attr_name, "value": clean}
        if self.choices is None:
            args["units"] = self.units

        def applied(result: Mapping[str, Any]) -> None:
            Signal.put(self, result.get("value", clean), force=True)

        return parent._remote_op(self, "set", "set", args, on_success=applied)

    def put(self, value: Any, **kwargs: Any) -> None:
        """Set and wait (bounded by the operation timeout)."""
        status = self.set(value)
        status.wait(status.timeout + 1.0)

    def stop(self, *, success: bool = False) -> None:
        self.parent._stop_remote(self, success)

    def pause(self) -> None:
        self.parent.pause()

    def resume(self) -> None:
        pass


class RemoteSynthesisStation(_RemoteMixin, SynthesisStation):
    """Proxy of a synthesis station served by a device server (build with :func:`make_remote_device`)."""

    def __init__(self, prefix: str = "", *, name: str, client: RemoteClient, remote: str | None = None,
                 log: CommandLog | None = None, timeout: float | None = None, request_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, timeout=timeout, **kwargs)
        self._setup_remote(client, remote or name, log, timeout, request_timeout)

    def trigger(self) -> OperationStatus:
        return self._remote_op(self, "synthesize", "trigger", {})

    def read(self) -> dict[str, Any]:
        self._fetch_readings()
        return super().read()

    def stop(self, *, success: bool = False) -> None:
        self._stop_remote(self, success)
        for n in self.parameter_names:
            getattr(self, n).stop(success=True)  # their local Statuses only; the server stop above covers them

    def expected_duration(self, params: Mapping[str, Any]) -> float:
        """Seconds the server predicts for setting ``params`` and synthesizing (no moving)."""
        values = to_device_values(self, params)
        return float(self._client.call("expected_duration", self._remote, {"params": to_wire(values)}, timeout=self._request_timeout)["seconds"])


class RemoteInstrument(_RemoteMixin, CharacterizationInstrument):
    """Proxy of an instrument served by a device server (build with :func:`make_remote_device`)."""

    def __init__(self, prefix: str = "", *, name: str, client: RemoteClient, remote: str | None = None,
                 log: CommandLog | None = None, timeout: float | None = None, request_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, timeout=timeout, **kwargs)
        self._setup_remote(client, remote or name, log, timeout, request_timeout)

    def trigger(self) -> OperationStatus:
        return self._remote_op(self, "measure", "trigger", {})

    def read(self) -> dict[str, Any]:
        self._fetch_readings()
        return super().read()

    def stop(self, *, success: bool = False) -> None:
        self._stop_remote(self, success)

    def expected_duration(self) -> float:
        return float(self._client.call("expected_duration", self._remote, timeout=self._request_timeout)["seconds"])


def _finite(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def make_remote_device(
    client: RemoteClient,
    remote: str,
    *,
    name: str | None = None,
    description: Mapping[str, Any] | None = None,
    log: CommandLog | None = None,
    timeout: float | None = None,
    request_timeout: float | None = None,
) -> RemoteSynthesisStation | RemoteInstrument:
    """A proxy of the device ``remote`` served at ``client``'s endpoint.

    ``description`` is the device's entry in the server's ``hello`` (asked for when not
    given): its role and its parameters (units, limits, choices) or outputs. ``name``
    (default: the server's name for it) names the proxy and its reading keys.
    """
    if description is None:
        hello = client.hello or client.connect()
        devices = hello.get("devices", {})
        if remote not in devices:
            raise RemoteError(f"{client.endpoint}: serves no device {remote!r}; it serves {sorted(devices)}",
                              code="UnknownDevice", endpoint=client.endpoint, device=remote)
        description = devices[remote]
    role = description.get("role")
    kwargs = dict(name=name or remote, client=client, remote=remote, log=log, timeout=timeout, request_timeout=request_timeout)
    if role == "synthesis":
        inputs = tuple(
            Input(p["name"], _finite(p.get("low")), _finite(p.get("high")), p.get("units", "") or "",
                  tuple(p["choices"]) if p.get("choices") else None, bool(p.get("integer", False)))
            for p in description.get("parameters", [])
        )
        _check_component_names([i.name for i in inputs], RemoteSynthesisStation, "parameter")
        attrs: dict[str, Any] = {"inputs": inputs, "__module__": __name__}
        for i in inputs:
            attrs[i.name] = Component(RemoteParameterSignal, units=i.unit, low=i.low, high=i.high, choices=i.choices,
                                      integer=i.integer, kind=Kind.normal, doc=f"remote parameter {i.name} [{i.unit}]")
        return type("RemoteSynthesisStation", (RemoteSynthesisStation,), attrs)(**kwargs)
    if role == "instrument":
        outputs = tuple(Output(o["name"], o.get("units", "") or "", o.get("direction", "maximize")) for o in description.get("outputs", []))
        _check_component_names([o.name for o in outputs], RemoteInstrument, "output")
        attrs = {"outputs": outputs, "__module__": __name__}
        for o in outputs:
            attrs[o.name] = Component(MeasurementSignal, units=o.unit, kind=Kind.hinted, doc=f"remote reading {o.name} [{o.unit}]")
        return type("RemoteInstrument", (RemoteInstrument,), attrs)(**kwargs)
    raise RemoteError(f"{client.endpoint} {remote}: role {role!r} cannot be proxied (expected synthesis or instrument)",
                      code="SchemaError", endpoint=client.endpoint, device=remote)
