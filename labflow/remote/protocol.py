"""The labflow device-server wire protocol: one small, versioned schema, never pickle.

Every message is one ZeroMQ frame holding one map, encoded as msgpack (canonical) or JSON
(a frame starting with ``{``; the reply comes back in the encoding of the request).

Request::

    {"v": 1, "id": "9f1c...", "method": "set", "device": "station1_synthesis",
     "args": {"signal": "temperature", "value": 423.15, "units": "K"}}

Reply::

    {"v": 1, "id": "9f1c...", "ok": true,  "result": {...}}
    {"v": 1, "id": "9f1c...", "ok": false, "error": {"code": "LimitError", "message": "...", "hint": "..."}}

``id`` is the request's idempotency key: a mutating request (``set``, ``trigger``) resent
with the same id is executed at most once; the server answers a resend with the first
execution's reply (``"duplicate": true`` in the reply). Numbers always travel with their
``units`` (pint syntax, "" for dimensionless).

Decoding is defensive: msgpack extension types are refused, maps must have string keys, the
frame is capped in size (the socket's ``MAXMSGSIZE`` drops larger frames before they are
read), and the decoded value is capped in depth and in node count. Anything else that goes
wrong becomes a :class:`ProtocolError` with a ``code`` -- the server turns it into an error
reply and keeps serving.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from labflow.errors import DeviceError, DeviceTimeoutError

__all__ = [
    "ERROR_CODES",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "MAX_NODES",
    "METHODS",
    "MUTATING_METHODS",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "RemoteError",
    "RemoteTimeoutError",
    "Request",
    "decode",
    "encode",
    "error_reply",
    "make_request",
    "new_id",
    "ok_reply",
    "parse_request",
    "to_wire",
]

PROTOCOL_VERSION = 1
"""Version of the schema above; a request with another ``v`` gets a ``VersionMismatch`` error."""

MAX_MESSAGE_BYTES = 1 << 20
"""Default cap on one frame (1 MiB); the server's socket disconnects a peer sending more."""

MAX_DEPTH = 16
"""Deepest nesting of maps and lists a request may have."""

MAX_NODES = 10_000
"""Most values (maps, lists, scalars) one request may hold."""

METHODS = ("hello", "ping", "describe", "read", "set", "trigger", "stop", "expected_duration", "stats")
"""What a device server answers."""

MUTATING_METHODS = frozenset({"set", "trigger"})
"""Requests that move hardware: deduplicated by ``id`` (idempotency)."""

ERROR_CODES = (
    "DecodeError",  # not msgpack/JSON, an extension type, non-string keys, trailing bytes
    "SchemaError",  # decoded, but not a request: missing/extra fields, wrong types, too deep
    "VersionMismatch",  # another protocol version
    "UnknownMethod",
    "UnknownDevice",
    "UnitError",  # a value in a unit of the wrong dimension
    "LimitError",  # outside a device's hard limits, or an unknown choice
    "DeviceError",  # the device failed (e.g. an instrument fault)
    "Timeout",  # a device operation did not finish in time
    "Stopped",  # the operation was stopped before it finished
    "Internal",  # a bug in the server: reported, and the server keeps serving
)

_ID_MAX = 128
_NAME_MAX = 128


class ProtocolError(ValueError):
    """A frame that is not a valid request; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str, *, request_id: Any = None) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(f"{code}: {message}")


class RemoteError(DeviceError):
    """A device server answered with an error, or could not be reached.

    ``code`` is one of :data:`ERROR_CODES`; ``endpoint`` and ``device`` say where.
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str = "Internal",
        endpoint: str | None = None,
        device: str | None = None,
    ) -> None:
        self.code = code
        self.endpoint = endpoint
        self.device = device
        super().__init__(message, hint)

    def __reduce__(self):
        return (_rebuild_remote_error, (type(self), self.message, self.hint, self.code, self.endpoint, self.device))


def _rebuild_remote_error(cls, message, hint, code, endpoint, device):  # keeps the error picklable (not on the wire)
    return cls(message, hint, code=code, endpoint=endpoint, device=device)


class RemoteTimeoutError(RemoteError, DeviceTimeoutError):
    """No reply from a device server in time; the message names the endpoint and the device."""


# -- identifiers -------------------------------------------------------------------------
def new_id() -> str:
    """A fresh request id (idempotency key): 32 hex digits."""
    return uuid.uuid4().hex


# -- values ------------------------------------------------------------------------------
def to_wire(obj: Any) -> Any:
    """``obj`` as plain msgpack/JSON values: numpy scalars and arrays, tuples and sets become
    numbers and lists; anything unknown becomes its ``str``."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_wire(v) for v in obj]
    return str(obj)


def encode(message: Mapping[str, Any], fmt: str = "msgpack") -> bytes:
    """One frame: ``message`` as msgpack (default) or JSON (``fmt="json"``)."""
    plain = to_wire(message)
    if fmt == "json":
        return json.dumps(plain, separators=(",", ":"), allow_nan=True).encode("utf-8")
    return msgpack.packb(plain, use_bin_type=True)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("DecodeError", f"msgpack extension type {code} is not accepted")


def _check_shape(obj: Any) -> None:
    """Depth and node caps, walked iteratively (no recursion on hostile input)."""
    stack = [(obj, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ProtocolError("SchemaError", f"the message holds more than {MAX_NODES} values")
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise ProtocolError("SchemaError", f"the message is nested deeper than {MAX_DEPTH} levels")
            for k, v in value.items():
                if not isinstance(k, str):
                    raise ProtocolError("SchemaError", f"map keys must be strings, got {type(k).__name__}")
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise ProtocolError("SchemaError", f"the message is nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in value)


def decode(frame: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[Any, str]:
    """Decode one frame into ``(value, fmt)``; :class:`ProtocolError` for anything unsafe or malformed.

    Never unpickles: a pickle is just bytes that are neither msgpack nor JSON.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("DecodeError", "a frame must be bytes")
    frame = bytes(frame)
    if not frame:
        raise ProtocolError("DecodeError", "empty frame")
    if len(frame) > max_bytes:
        raise ProtocolError("DecodeError", f"frame of {len(frame)} bytes exceeds the cap of {max_bytes} bytes")
    fmt = "json" if frame[:1] == b"{" else "msgpack"
    try:
        if fmt == "json":
            value = json.loads(frame.decode("utf-8"))
        else:
            value = msgpack.unpackb(
                frame, raw=False, strict_map_key=True, ext_hook=_refuse_ext, use_list=True
            )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack.ExtraData, StackError, UnicodeDecodeError, JSONDecodeError, RecursionError...
        raise ProtocolError("DecodeError", f"not a {fmt} message: {type(exc).__name__}: {str(exc)[:200]}") from None
    _check_shape(value)
    return value, fmt


# -- requests and replies ----------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """A validated request: ``method`` on ``device`` with ``args``; ``id`` is its idempotency key."""

    id: str
    method: str
    device: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING_METHODS


_FIELDS = {"v", "id", "method", "device", "args"}


def parse_request(value: Any) -> Request:
    """Check a decoded frame against the request schema; :class:`ProtocolError` lists what is wrong."""
    if not isinstance(value, dict):
        raise ProtocolError("SchemaError", f"a request is a map, got {type(value).__name__}")
    rid = value.get("id")
    rid_ok = isinstance(rid, str) and 0 < len(rid) <= _ID_MAX and rid.isprintable()
    echo = rid if rid_ok else None
    extra = sorted(set(value) - _FIELDS)
    if extra:
        raise ProtocolError("SchemaError", f"unknown fields {extra[:5]}; a request has {sorted(_FIELDS)}", request_id=echo)
    v = value.get("v")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError("SchemaError", "field 'v' (protocol version) must be an integer", request_id=echo)
    if v != PROTOCOL_VERSION:
        raise ProtocolError("VersionMismatch", f"protocol version {v} is not spoken here; this server speaks {PROTOCOL_VERSION}", request_id=echo)
    if not rid_ok:
        raise ProtocolError("SchemaError", f"field 'id' must be a printable string of 1..{_ID_MAX} characters")
    method = value.get("method")
    if not isinstance(method, str) or not method or len(method) > _NAME_MAX:
        raise ProtocolError("SchemaError", "field 'method' must be a non-empty string", request_id=echo)
    if method not in METHODS:
        raise ProtocolError("UnknownMethod", f"unknown method {method[:64]!r}; known: {list(METHODS)}", request_id=echo)
    device = value.get("device")
    if device is not None and (not isinstance(device, str) or not device or len(device) > _NAME_MAX):
        raise ProtocolError("SchemaError", "field 'device' must be a non-empty string or absent", request_id=echo)
    args = value.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("SchemaError", f"field 'args' must be a map, got {type(args).__name__}", request_id=echo)
    return Request(id=rid, method=method, device=device, args=args)


def make_request(method: str, device: str | None = None, args: Mapping[str, Any] | None = None, *, id: str | None = None) -> dict:
    """A request map (encode it with :func:`encode`)."""
    msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": id or new_id(), "method": method}
    if device is not None:
        msg["device"] = device
    if args:
        msg["args"] = dict(args)
    return msg


def ok_reply(request_id: str | None, result: Any = None, **extra: Any) -> dict:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result, **extra}


def error_reply(request_id: str | None, code: str, message: str, hint: str | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if hint:
        error["hint"] = hint
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": error}


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
