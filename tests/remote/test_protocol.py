"""The wire protocol: round trips, strict decoding, structured errors, and no pickle (B10)."""

from __future__ import annotations

import ast
import math
import pickle
from pathlib import Path

import msgpack
import numpy as np
import pytest

from labflow.remote.protocol import (
    ERROR_CODES,
    MAX_DEPTH,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    make_request,
    parse_request,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_requests_round_trip_in_both_encodings(fmt):
    req = make_request("set", "station1_synthesis", {"signal": "temperature", "value": np.float64(423.15), "units": "K"})
    value, got_fmt = decode(encode(req, fmt))
    assert got_fmt == fmt
    r = parse_request(value)
    assert (r.method, r.device, r.args["value"], r.args["units"], r.mutating) == ("set", "station1_synthesis", 423.15, "K", True)


@pytest.mark.parametrize(
    "frame, code",
    [
        (b"", "DecodeError"),
        (b"\xc1", "DecodeError"),  # a byte msgpack never uses
        (b"{not json", "DecodeError"),
        (msgpack.packb({1: 2}), "DecodeError"),  # non-string keys
        (msgpack.packb(msgpack.ExtType(5, b"x")), "DecodeError"),
        (msgpack.packb([1, 2]), "SchemaError"),
        (msgpack.packb({"v": 1, "id": "a", "method": "ping", "evil": 1}), "SchemaError"),
        (msgpack.packb({"v": 2, "id": "a", "method": "ping"}), "VersionMismatch"),
        (msgpack.packb({"v": 1, "id": 7, "method": "ping"}), "SchemaError"),
        (msgpack.packb({"v": 1, "id": "a", "method": "__import__"}), "UnknownMethod"),
        (msgpack.packb({"v": 1, "id": "a", "method": "read", "args": [1]}), "SchemaError"),
        (b"[" * 5000 + b"]" * 5000, "DecodeError"),
        (msgpack.packb(_nested := [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]), "SchemaError"),
    ],
)
def test_malformed_frames_raise_structured_errors(frame, code):
    with pytest.raises(ProtocolError) as info:
        parse_request(decode(frame)[0])
    assert info.value.code == code and info.value.code in ERROR_CODES


def test_pickles_are_never_unpickled():
    """B10: a pickle is neither msgpack nor JSON; decoding it never runs its payload."""

    class Canary:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(ProtocolError) as info:
            parse_request(decode(pickle.dumps(Canary(), protocol=protocol))[0])
        assert info.value.code in ("DecodeError", "SchemaError")
    assert MAX_DEPTH <= 32 and PROTOCOL_VERSION == 1


def test_no_pickle_in_the_network_code():
    """B10, static: nothing that touches a socket imports pickle (or uses pyzmq's send_pyobj)."""
    folders = [ROOT / "labflow" / "remote", ROOT / "labflow" / "devices" / "remote", ROOT / "labflow" / "epics"]
    files = [p for f in folders for p in f.rglob("*.py")] + [ROOT / "labflow" / "cli_remote.py"]
    assert len(files) >= 8
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle") for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in ("pickle", "dill", "cloudpickle"), path
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("send_pyobj", "recv_pyobj", "send_serialized", "recv_serialized"), path


def test_non_finite_numbers_survive_msgpack():
    v, _ = decode(encode({"x": math.nan, "y": math.inf}))
    assert math.isnan(v["x"]) and v["y"] == math.inf
