"""A ZeroMQ device server: serves ophyd devices to orchestrators on other machines.

Theory of operation
-------------------
One ROUTER socket, one thread (the *loop*) that owns it. Each frame is decoded
(:mod:`labflow.remote.protocol`), validated and dispatched to a handler. Quick requests
(``hello``, ``ping``, ``describe``, ``read``, ``stop``, ``stats``) are answered at once.
Operations (``set``, ``trigger``) start the device's own Status; the reply is sent when that
Status completes, from the loop thread (completions are handed over through an inproc socket),
so many operations can be in flight on many devices at once.

Robustness:

* a frame above ``max_message_bytes`` is dropped by ZeroMQ (``MAXMSGSIZE``), which
  disconnects only that peer; the server and its other clients carry on;
* anything malformed (not msgpack/JSON, wrong fields or types, unknown method or device,
  too deep) gets a structured error reply, and the loop carries on -- a handler that raises
  becomes an ``Internal`` error reply, never a dead server;
* ``set``/``trigger`` are deduplicated by request id: a resend while the operation runs joins
  it, a resend after it finished gets the first reply again (``duplicate: true``). The cache
  is bounded (``cache_size``). With a ``journal`` file the cache (and, for simulated devices,
  the setpoints) survive a crash of the server process: a command resent to the restarted
  server is still applied once;
* bound to loopback unless security is on (CURVE + ZAP allow list, see
  :mod:`labflow.remote.keys`) or ``allow_remote=True`` is given on purpose.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq
from ophyd import Signal
from ophyd.utils.errors import LimitError, StatusTimeoutError

from labflow.devices.base import to_device_value
from labflow.errors import DeviceError, LabflowError, UnitError
from labflow.remote.keys import ServerSecurity
from labflow.remote.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    Request,
    decode,
    encode,
    error_reply,
    finite_number,
    ok_reply,
    parse_request,
    to_wire,
)
from labflow.units import parse_unit, ureg

__all__ = ["DeviceServer", "Journal", "describe_device", "is_loopback"]

log = logging.getLogger("labflow.remote.server")


def is_loopback(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and ``tcp://`` on 127.0.0.0/8, ``localhost`` or ``[::1]``."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host == "::1" or host.startswith("127.")


def describe_device(device: Any) -> dict[str, Any]:
    """What a client needs to build a proxy: the role, each parameter (units, limits or
    choices) or output (units, direction)."""
    out: dict[str, Any] = {"class": type(device).__name__}
    if hasattr(device, "parameter_names"):
        out["role"] = "synthesis"
        params = []
        for n in device.parameter_names:
            sig = getattr(device, n)
            d = next(iter(sig.describe().values()))
            params.append(
                {
                    "name": n,
                    "units": d.get("units", "") or "",
                    "low": d.get("lower_ctrl_limit"),
                    "high": d.get("upper_ctrl_limit"),
                    "choices": list(d["enum_strs"]) if d.get("enum_strs") else None,
                    "integer": bool(getattr(sig, "integer", False)),
                }
            )
        out["parameters"] = params
    elif hasattr(device, "output_names"):
        out["role"] = "instrument"
        outputs = []
        records = {o.name: o for o in getattr(device, "outputs", ())}
        for n in device.output_names:
            sig = getattr(device, n)
            d = next(iter(sig.describe().values()))
            o = records.get(n)
            outputs.append({"name": n, "units": d.get("units", "") or "", "direction": getattr(o, "direction", "maximize")})
        out["outputs"] = outputs
    else:
        out["role"] = "device"
    return out


# -- idempotency ---------------------------------------------------------------------------
class _Entry:
    __slots__ = ("done", "reply", "waiters", "method", "device", "args")

    def __init__(self, method: str, device: str | None, args: Mapping[str, Any]) -> None:
        self.done = False
        self.reply: dict | None = None
        self.waiters: list[tuple[list[bytes], str]] = []
        self.method, self.device, self.args = method, device, dict(args)


class Journal:
    """Append-only JSON-lines record of operations (``started``/``done``), fsynced per line.

    Read back at start so that a restarted server still knows which commands it applied. Each
    line is flushed and fsynced before :meth:`record` returns (so before the reply is sent): a
    power cut, not only a crash of the process, keeps every ``done`` the client was told of.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: list[dict] = []
        if self.path.exists():
            with self.path.open("r", encoding="utf-8") as f:
                for line in f:
                    try:
                        self.entries.append(json.loads(line))
                    except json.JSONDecodeError:  # a torn last line after a crash
                        log.warning("%s: skipping a torn journal line", self.path)
        self._f = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(to_wire(dict(entry)), separators=(",", ":"), allow_nan=True)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        with self._lock:
            self._f.close()


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ProtocolError):
        return exc.code
    if isinstance(exc, (LimitError,)):
        return "LimitError"
    if isinstance(exc, UnitError):
        return "UnitError"
    if isinstance(exc, (StatusTimeoutError, TimeoutError)):
        return "Timeout"
    if isinstance(exc, DeviceError) and str(getattr(exc, "message", exc)).endswith("was stopped"):
        return "Stopped"
    if isinstance(exc, (DeviceError, LabflowError)):
        return "DeviceError"
    return "Internal"


def _exc_reply(request_id: str | None, exc: BaseException) -> dict:
    code = _error_code(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if code == "Internal":
        message = f"{type(exc).__name__}: {message}"
    return error_reply(request_id, code, str(message)[:2000], getattr(exc, "hint", None))


class DeviceServer:
    """Serve ``devices`` (name -> ophyd device) on a ZeroMQ ROUTER socket.

    Parameters
    ----------
    devices:
        Name -> device (e.g. the synthesis stations and instruments of a simulated lab, or
        real drivers). Clients address devices by these names.
    endpoint:
        Where to bind, e.g. ``tcp://127.0.0.1:5701`` (port 0 picks a free port; see
        :attr:`endpoint` after :meth:`start`) or ``ipc:///tmp/furnace.sock``.
    heartbeat:
        Seconds between heartbeats that clients are told to send (``hello``); also the
        ZeroMQ transport heartbeat interval.
    max_message_bytes:
        Largest frame accepted (``MAXMSGSIZE``); a larger one disconnects that peer.
    security:
        CURVE keys and the allow list of client keys; ``None`` = plain text, loopback only.
    journal:
        A file recording operations, so that idempotency survives a crash of this process.
    cache_size:
        How many finished operations are remembered for deduplication.
    restore_setpoints:
        With a journal, put each parameter back to its last applied value at start
        (simulated devices forget it in a crash; real hardware usually keeps it).
    allow_remote:
        Allow a non-loopback endpoint without security (not recommended).
    """

    def __init__(
        self,
        devices: Mapping[str, Any],
        *,
        endpoint: str = "tcp://127.0.0.1:0",
        name: str = "labflow-device-server",
        heartbeat: float = 1.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        security: ServerSecurity | None = None,
        journal: str | Path | None = None,
        cache_size: int = 4096,
        restore_setpoints: bool = True,
        allow_remote: bool = False,
    ) -> None:
        if not devices:
            raise ValueError(f"{name}: no devices to serve")
        if not is_loopback(endpoint) and security is None and not allow_remote:
            raise LabflowError(
                f"{name}: refusing to serve {endpoint} without security",
                hint="bind to tcp://127.0.0.1:PORT, or turn security on (CURVE keys and an allow list; see `labflow keys`)",
            )
        if not (math.isfinite(heartbeat) and heartbeat > 0):
            raise ValueError(f"{name}: heartbeat must be > 0 s, got {heartbeat}")
        self.devices = dict(devices)
        self.name = name
        self.requested_endpoint = endpoint
        self.endpoint = endpoint
        self.heartbeat = float(heartbeat)
        self.max_message_bytes = int(max_message_bytes)
        self.security = security
        self.cache_size = int(cache_size)
        self.server_id = uuid.uuid4().hex
        self.started = time.time()
        self.stats: collections.Counter = collections.Counter()
        self._cache: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._completions: collections.deque = collections.deque()
        self._ctx = zmq.Context()
        self._auth = None
        self._sock: zmq.Socket | None = None
        self._wake_addr = f"inproc://labflow-wake-{self.server_id}"
        self._wake_pull = self._ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_addr)
        self._wake_push = self._ctx.socket(zmq.PUSH)
        self._wake_push.connect(self._wake_addr)
        self._wake_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._descriptions = {n: describe_device(d) for n, d in self.devices.items()}
        self.journal = Journal(journal) if journal is not None else None
        if self.journal is not None:
            self._load_journal(restore_setpoints)

    # -- lifecycle ---------------------------------------------------------------------
    def _bind(self) -> None:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(self.heartbeat * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(3 * self.heartbeat * 1000))
        sock.setsockopt(zmq.SNDHWM, 10_000)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        if self.security is not None:
            self._auth = self.security.start_authenticator(self._ctx)
            self.security.apply(sock)
        sock.bind(self.requested_endpoint)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock

    def start(self) -> str:
        """Bind and serve in a background thread; returns the bound endpoint."""
        self._bind()
        self._thread = threading.Thread(target=self._loop, name=f"labflow-server-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self.endpoint

    def serve_forever(self) -> None:
        """Bind and serve in this thread until :meth:`stop` (e.g. from a signal handler)."""
        self._bind()
        self._loop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, stop the devices' operations, close the sockets. Safe to call twice."""
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> DeviceServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wake(self) -> None:
        with self._wake_lock:
            try:
                self._wake_push.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        self._ready.set()
        log.info("%s serving %s on %s", self.name, sorted(self.devices), self.endpoint)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(200))
                if self._wake_pull in events:
                    while True:
                        try:
                            self._wake_pull.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                if sock in events:
                    for _ in range(1000):  # bounded burst, then look at completions again
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_frames(frames)
                        self._drain_completions()
                self._drain_completions()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for dev in self.devices.values():
            try:
                dev.stop()
            except Exception:  # stopping must not fail half-way
                pass
        if self._auth is not None:
            self._auth.stop()
        if self._sock is not None:
            self._sock.close(0)
        self._wake_pull.close(0)
        with self._wake_lock:
            self._wake_push.close(0)
        if self.journal is not None:
            self.journal.close()
        self._ctx.term()  # every socket of this context is closed above

    def _send(self, envelope: list[bytes], reply: Mapping[str, Any], fmt: str) -> None:
        assert self._sock is not None
        try:
            data = encode(reply, fmt)
        except Exception as exc:  # a result that cannot be encoded is a server bug: say so
            data = encode(error_reply(reply.get("id"), "Internal", f"cannot encode the reply: {exc}"), fmt)
        try:
            self._sock.send_multipart([*envelope, data], zmq.NOBLOCK)
            self.stats["replies"] += 1
        except zmq.ZMQError:  # peer gone or its queue full: it will resend
            self.stats["replies_dropped"] += 1

    def _on_frames(self, frames: list[bytes]) -> None:
        self.stats["frames"] += 1
        identity = frames[0]
        if len(frames) == 2:
            envelope, payload = [identity], frames[1]
        elif len(frames) == 3 and frames[1] == b"":
            envelope, payload = [identity, b""], frames[2]  # a REQ client
        else:
            self.stats["errors"] += 1
            envelope = [identity, b""] if len(frames) > 1 and frames[1] == b"" else [identity]
            self._send(envelope, error_reply(None, "SchemaError", f"expected one frame per request, got {len(frames) - 1}"), "msgpack")
            return
        fmt = "msgpack"
        try:
            value, fmt = decode(payload, max_bytes=self.max_message_bytes)
            request = parse_request(value)
        except ProtocolError as exc:
            self.stats["errors"] += 1
            self._send(envelope, error_reply(exc.request_id, exc.code, exc.message), fmt)
            return
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            self.stats["errors"] += 1
            self._send(envelope, _exc_reply(None, exc), fmt)
            return
        self.stats["handled"] += 1
        self.stats[f"method.{request.method}"] += 1
        try:
            if request.mutating:
                self._operation(envelope, fmt, request)
            else:
                self._send(envelope, ok_reply(request.id, self._quick(request)), fmt)
        except Exception as exc:  # noqa: BLE001
            self.stats["errors"] += 1
            self._send(envelope, _exc_reply(request.id, exc), fmt)

    # -- handlers ----------------------------------------------------------------------------
    def _device(self, request: Request) -> Any:
        if request.device is None:
            raise ProtocolError("SchemaError", f"method {request.method!r} needs a 'device'")
        dev = self.devices.get(request.device)
        if dev is None:
            raise ProtocolError("UnknownDevice", f"no device {request.device[:64]!r} here; serving {sorted(self.devices)}")
        return dev

    def _quick(self, request: Request) -> Any:
        m = request.method
        if m == "ping":
            return {"t": time.time(), "server_id": self.server_id}
        if m == "hello":
            return {
                "protocol": PROTOCOL_VERSION,
                "server": self.name,
                "server_id": self.server_id,
                "started": self.started,
                "heartbeat": self.heartbeat,
                "max_message_bytes": self.max_message_bytes,
                "devices": self._descriptions,
            }
        if m == "stats":
            return {"counters": dict(self.stats), "cache": len(self._cache), "server_id": self.server_id}
        dev = self._device(request)
        if m == "describe":
            return to_wire(dev.describe())
        if m == "read":
            return {"readings": self._readings(dev)}
        if m == "stop":
            dev.stop()
            return {"stopped": request.device}
        if m == "expected_duration":
            fn = getattr(dev, "expected_duration", None)
            if fn is None:
                raise DeviceError(f"{request.device}: the device does not predict its durations")
            params = request.args.get("params")
            if params is None:
                return {"seconds": float(fn())}
            if not isinstance(params, dict):
                raise ProtocolError("SchemaError", "args.params must be a map")
            return {"seconds": float(fn(params))}
        raise ProtocolError("UnknownMethod", f"unknown method {m!r}")  # pragma: no cover - parse_request checks

    def _readings(self, dev: Any) -> dict[str, Any]:
        names = {}
        for attr in getattr(dev, "component_names", ()):
            child = getattr(dev, attr)
            if hasattr(child, "read") and not hasattr(child, "component_names"):
                names[child.name] = attr
        desc = dev.describe()
        out = {}
        for key, reading in dev.read().items():
            attr = names.get(key, key)
            out[attr] = {"value": to_wire(reading["value"]), "timestamp": float(reading["timestamp"]), "units": desc.get(key, {}).get("units", "") or ""}
        return out

    def _start(self, dev: Any, request: Request) -> Any:
        """Start the operation; returns its Status."""
        if request.method == "trigger":
            if not hasattr(dev, "trigger"):
                raise ProtocolError("SchemaError", f"device {request.device!r} cannot be triggered")
            return dev.trigger()
        args = request.args
        extra = sorted(set(args) - {"signal", "value", "units"})
        if extra:
            raise ProtocolError("SchemaError", f"set takes args signal, value, units; unknown {extra[:5]}")
        signal = args.get("signal")
        names = list(getattr(dev, "parameter_names", None) or getattr(dev, "component_names", ()))
        if not isinstance(signal, str) or signal not in names:
            raise ProtocolError("SchemaError", f"args.signal must name a parameter of {request.device!r}: {names}")
        sig = getattr(dev, signal)
        value = args.get("value")
        units = args.get("units")
        if isinstance(value, bool) or not (isinstance(value, str) and len(value) <= 256 or finite_number(value)):
            raise ProtocolError("SchemaError", "args.value must be a finite number or a label (string)")
        if units is not None and (not isinstance(units, str) or len(units) > 64):
            raise ProtocolError("SchemaError", "args.units must be a unit string (at most 64 characters)")
        if units is not None and not isinstance(value, str):
            value = to_device_value(sig, ureg.Quantity(float(value), parse_unit(units)), parameter=f"{request.device}.{signal}")
        else:
            value = to_device_value(sig, value, parameter=f"{request.device}.{signal}")
        return sig.set(value)

    def _operation(self, envelope: list[bytes], fmt: str, request: Request) -> None:
        entry = self._cache.get(request.id)
        if entry is not None:
            self.stats["duplicates"] += 1
            if entry.done:
                self._send(envelope, {**entry.reply, "duplicate": True}, fmt)  # type: ignore[dict-item]
            else:
                entry.waiters.append((envelope, fmt))
            return
        dev = self._device(request)
        entry = _Entry(request.method, request.device, request.args)
        entry.waiters.append((envelope, fmt))
        status = self._start(dev, request)  # raises before anything moves for bad input: not cached
        self._cache[request.id] = entry
        while len(self._cache) > self.cache_size:
            oldest, old = next(iter(self._cache.items()))
            if not old.done:  # never forget an operation still running
                break
            self._cache.popitem(last=False)
        self.stats["actuations"] += 1
        if self.journal is not None:
            self.journal.record({"id": request.id, "phase": "started", "method": request.method, "device": request.device,
                                 "args": request.args, "t": time.time()})

        def finished(st: Any, rid: str = request.id) -> None:
            exc = st.exception() if not st.success else None
            self._completions.append((rid, exc))
            self._wake()

        status.add_callback(finished)

    def _drain_completions(self) -> None:
        while self._completions:
            rid, exc = self._completions.popleft()
            entry = self._cache.get(rid)
            if entry is None:
                continue
            if exc is None:
                result: dict[str, Any] = {"t": time.time()}
                if entry.method == "set":
                    dev = self.devices[entry.device]  # type: ignore[index]
                    sig = getattr(dev, entry.args["signal"])
                    result["value"] = to_wire(sig.get())
                    result["units"] = getattr(sig, "units", "") or ""
                reply = ok_reply(rid, result)
            else:
                reply = _exc_reply(rid, exc)
            code = None if exc is None else reply["error"]["code"]
            if code in ("Stopped", "Timeout"):  # not a final answer: a resend runs it again
                del self._cache[rid]
            else:
                entry.done, entry.reply = True, reply
                if self.journal is not None:
                    self.journal.record({"id": rid, "phase": "done", "method": entry.method, "device": entry.device,
                                         "args": entry.args, "reply": reply, "t": time.time()})
            waiters, entry.waiters = entry.waiters, []
            for envelope, fmt in waiters:
                self._send(envelope, reply, fmt)

    def _load_journal(self, restore_setpoints: bool) -> None:
        assert self.journal is not None
        done = [e for e in self.journal.entries if e.get("phase") == "done" and isinstance(e.get("id"), str)]
        for e in done[-self.cache_size :]:
            entry = _Entry(e.get("method", ""), e.get("device"), e.get("args") or {})
            entry.done, entry.reply = True, e.get("reply")
            self._cache[e["id"]] = entry
        if restore_setpoints:
            for e in done:
                reply = e.get("reply") or {}
                if e.get("method") != "set" or not reply.get("ok"):
                    continue
                dev = self.devices.get(e.get("device"))
                sig = getattr(dev, (e.get("args") or {}).get("signal", ""), None) if dev is not None else None
                if sig is not None and "value" in (reply.get("result") or {}):
                    Signal.put(sig, reply["result"]["value"], force=True)  # restore, not actuate
        if done:
            log.info("%s: %d finished operations read back from %s", self.name, len(done), self.journal.path)


def serve_pid_file(path: str | Path) -> None:  # pragma: no cover - convenience for the CLI
    Path(path).write_text(str(os.getpid()))
