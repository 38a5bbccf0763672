"""The device server under bad input: structured errors (B8 fuzz), oversize frames (B9), other
encodings and socket types; and the client's bounded calls."""

from __future__ import annotations

import json
import os
import pickle
import random
import time

import msgpack
import numpy as np
import psutil
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from labflow.lab import load_lab_config
from labflow.remote.client import RemoteClient
from labflow.remote.protocol import ERROR_CODES, RemoteError, RemoteTimeoutError, decode, encode, make_request
from labflow.remote.server import DeviceServer

from .helpers import CONFIGS, ServerProcess, pc_config, wait_for


@pytest.fixture
def lab():
    lab = load_lab_config(CONFIGS / "sim_materials.yaml").build(seed=0)
    yield lab
    lab.close()


@pytest.fixture
def server(lab):
    devices = {d.name: d for s in lab.stations for d in (s.synthesis, s.instrument)}
    with DeviceServer(devices, heartbeat=0.2) as srv:
        yield srv


def test_readings_carry_units_and_timestamps_and_errors_are_structured(server):
    c = RemoteClient(server.endpoint, heartbeat=0.2)
    try:
        c.call("set", "station1_synthesis", {"signal": "temperature", "value": 200, "units": "degC"})
        c.call("set", "station1_synthesis", {"signal": "time", "value": 10, "units": "min"})
        c.call("trigger", "station1_synthesis")
        c.call("trigger", "station1_instrument")
        r = c.call("read", "station1_instrument")["readings"]["product_yield"]
        assert r["units"] == "percent" and np.isfinite(r["value"]) and abs(r["timestamp"] - time.time()) < 60
        t = c.call("read", "station1_synthesis")["readings"]
        assert abs(t["temperature"]["value"] - 473.15) < 1e-9 and t["time"]["value"] == 600 and t["time"]["units"] == "s"
        cases = [
            (("set", "station1_synthesis", {"signal": "temperature", "value": 5, "units": "m"}), "UnitError"),
            (("set", "station1_synthesis", {"signal": "temperature", "value": 5000, "units": "K"}), "LimitError"),
            (("set", "station1_synthesis", {"signal": "colour", "value": 1}), "SchemaError"),
            (("read", "nowhere", None), "UnknownDevice"),
            (("read", None, None), "SchemaError"),
        ]
        for (method, device, args), code in cases:
            with pytest.raises(RemoteError) as info:
                c.call(method, device, args)
            assert info.value.code == code and server.endpoint in str(info.value)
        assert c.call("ping")["server_id"] == server.server_id  # still serving
    finally:
        c.close()


def test_json_and_req_clients_are_served(server):
    ctx = zmq.Context.instance()
    req = ctx.socket(zmq.REQ)
    req.linger = 0
    req.connect(server.endpoint)
    try:
        req.send(json.dumps(make_request("hello")).encode())
        assert req.poll(5000)
        raw = req.recv()
        assert raw[:1] == b"{"  # answered in JSON
        hello = json.loads(raw)["result"]
        assert hello["protocol"] == 1 and hello["devices"]["station1_synthesis"]["role"] == "synthesis"
        assert {p["name"]: p["units"] for p in hello["devices"]["station1_synthesis"]["parameters"]} == {
            "temperature": "K", "time": "s", "dopant_fraction": ""}
    finally:
        req.close(0)


def test_calls_are_bounded_and_name_the_endpoint():
    c = RemoteClient("tcp://127.0.0.1:9", heartbeat=0.1, request_timeout=0.3)  # nothing listens there
    try:
        t0 = time.monotonic()
        with pytest.raises(RemoteTimeoutError) as info:
            c.call("read", "furnace")
        assert time.monotonic() - t0 < 1.3
        assert "tcp://127.0.0.1:9 furnace: read got no reply within 0.3 s" in str(info.value)
        assert isinstance(info.value, TimeoutError)
    finally:
        c.close()


def test_a_remote_set_that_outlives_its_timeout_fails_naming_device_and_endpoint(tmp_path):
    from labflow.remote.devices import RemoteOperationTimeoutError, make_remote_device

    lab = load_lab_config(CONFIGS / "sim_materials.yaml").build(seed=0, time_scale=1.0)  # a set takes 5 s
    devices = {d.name: d for s in lab.stations for d in (s.synthesis, s.instrument)}
    with DeviceServer(devices) as srv:
        c = RemoteClient(srv.endpoint)
        try:
            dev = make_remote_device(c, "station1_synthesis", timeout=0.3)
            st = dev.temperature.set(400.0)
            t0 = time.monotonic()
            with pytest.raises(RemoteOperationTimeoutError) as info:
                st.wait(5)
            assert time.monotonic() - t0 < 1.3
            assert f"station1_synthesis.temperature @ {srv.endpoint}: set did not finish within 0.3 s" in str(info.value)
        finally:
            c.close()
    lab.close()


# -- B8: fuzz ------------------------------------------------------------------------------------
def fuzz_frames(n: int, seed: int = 8):
    """``n`` hostile frames (lists of frames), from a seeded generator; none is a valid request."""
    rng = random.Random(seed)
    good = make_request("set", "station1_synthesis", {"signal": "temperature", "value": 400.0, "units": "K"})
    packed = msgpack.packb(good)

    def nested(depth: int):
        v: object = 1
        for i in range(depth):
            v = [v] if i % 2 else {"k": v}
        return v

    def req(**fields):
        base = {"v": 1, "id": f"fz{rng.getrandbits(48):x}", "method": "set", "device": "station1_synthesis",
                "args": {"signal": "temperature", "value": 400.0, "units": "K"}}
        base.update(fields)
        return base

    makers = [
        lambda: [rng.randbytes(rng.randint(1, 200))],
        lambda: [packed[: rng.randint(1, len(packed) - 1)]],
        lambda: [msgpack.packb(rng.choice([0, -1, 3.5, "hello", [1, 2], None, True, b"bytes"]))],
        lambda: [msgpack.packb(req(**rng.choice([{"v": "1"}, {"id": 12}, {"id": ["x"]}, {"id": "x" * 500}, {"method": 7},
                                                 {"device": [1]}, {"args": [1, 2]}, {"v": None}, {"id": ""}])))],
        lambda: [msgpack.packb(req(method=rng.choice(["exec", "eval", "__class__", "SET", "reboot", "x" * 300, ""])))],
        lambda: [msgpack.packb(req(**{rng.choice(["extra", "pickle", "__proto__", "cmd"]): rng.random()}))],
        lambda: rng.choice([[msgpack.packb(req(v=2**64 - 1))], [msgpack.packb(req(v=-(2**63)))],
                            [b'{"v":1,"id":"a","method":"ping","args":{"x":' + b"9" * 5000 + b"}}"]]),
        lambda: [msgpack.packb(req(args={"deep": nested(rng.randint(17, 900))}))] if rng.random() < 0.7 else [b"\x91" * rng.randint(2000, 4000) + b"\xc0"],
        lambda: [msgpack.packb(req(args={"signal": "temperature", "value": "x" * rng.randint(300, 200_000)}))],
        lambda: [pickle.dumps(rng.choice([good, {"a": 1}, [1, 2, 3]]), protocol=rng.randint(2, 5))],
        lambda: [rng.choice([b"{", b"{}", b'{"v":1}', b'{"v":1,"id":"a","method":"ping",}', b"{\"a\":NaN", b"{" * 3000])],
        lambda: rng.choice([
            [msgpack.packb(req(args={"signal": "temperature", "value": rng.choice([float("nan"), float("inf"), True, 1e308, -5.0])}))],
            [msgpack.packb(req(args={"signal": "temperature", "value": 400.0, "units": rng.choice(["m", "parsec", "bogus unit", "K" * 80])}))],
            [msgpack.packb(req(args={"signal": rng.choice(["nope", "__dict__", "stop", ""]), "value": 1.0}))],
            [msgpack.packb(req(device=rng.choice(["nope", "../etc", "station9_synthesis"])))],
            [msgpack.packb(req(method="trigger", device="nope"))],
            [msgpack.packb(req(method="expected_duration", device="station1_synthesis", args={"params": [1]}))],
            [packed, packed],  # two frames in one message
        ]),
    ]
    for i in range(n):
        yield makers[i % len(makers)]()


def test_fuzz_10000_frames_structured_replies_and_no_crash(tmp_path):
    server = ServerProcess(pc_config(tmp_path), tmp_path).start()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.setsockopt(zmq.MAXMSGSIZE, 4 << 20)
    s.connect(server.endpoint)
    proc = psutil.Process(server.pid)
    try:
        frames = list(fuzz_frames(10_000))
        latencies, codes = [], {}
        rss0 = None
        for i, msg in enumerate(frames):
            if i == 200:
                rss0 = proc.memory_info().rss
            t0 = time.perf_counter()
            s.send_multipart(msg)
            assert s.poll(5000), f"no reply to frame {i}: {msg[0][:60]!r}"
            reply, _ = decode(s.recv())
            latencies.append(time.perf_counter() - t0)
            assert isinstance(reply, dict) and reply["ok"] is False, (i, msg[0][:80], reply)
            code = reply["error"]["code"]
            assert code in ERROR_CODES and isinstance(reply["error"]["message"], str)
            codes[code] = codes.get(code, 0) + 1
        growth = proc.memory_info().rss - rss0
        s.send(encode(make_request("ping")))
        assert s.poll(5000) and decode(s.recv())[0]["ok"]
        assert server.proc.poll() is None  # alive
        p50, p99 = np.percentile(latencies, [50, 99])
        print(f"B8: 10000 fuzzed frames, 0 crashes, codes {codes}, reply p50 {p50 * 1e3:.2f} ms p99 {p99 * 1e3:.2f} ms, "
              f"server RSS growth {growth / 2**20:.1f} MiB")
        assert p99 < 0.050 and growth < 20 * 2**20
        assert codes.get("Internal", 0) == 0  # every bad frame is classified, none reaches a handler bug
    finally:
        s.close(0)
        server.stop()


# -- B9: oversize frames -------------------------------------------------------------------------
def test_an_oversize_frame_disconnects_only_that_peer(tmp_path):
    server = ServerProcess(pc_config(tmp_path, max_message_bytes=1 << 20), tmp_path).start()
    ctx = zmq.Context.instance()
    big, good = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    for sock in (big, good):
        sock.linger = 0
        sock.connect(server.endpoint)
    monitor = big.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    proc = psutil.Process(server.pid)

    def ping(sock) -> bool:
        sock.send(encode(make_request("ping")))
        return bool(sock.poll(3000)) and decode(sock.recv())[0]["ok"]

    try:
        assert ping(good) and ping(big)
        rss0 = proc.memory_info().rss
        payload = encode(make_request("read", "station1_synthesis", {"pad": "x" * (2 << 20)}))
        disconnects = 0
        for _ in range(10):
            big.send(payload)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and monitor.poll(100):
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
                    disconnects += 1
                    break
            assert ping(good)  # the other client is unaffected
            wait_for(lambda: ping(big), 5, "the big client to reconnect")  # and the server still serves the offender's next connection
        assert disconnects == 10
        assert not big.poll(200)  # no reply ever came for the oversize frames
        growth = proc.memory_info().rss - rss0
        print(f"B9: 10 oversize frames (2 MiB > 1 MiB cap): 10 disconnects of that peer, other client unaffected, RSS growth {growth / 2**20:.1f} MiB")
        assert growth < 20 * 2**20
    finally:
        big.disable_monitor()
        monitor.close(0)
        big.close(0)
        good.close(0)
        server.stop()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names the fsynced file through /proc (Linux)")
def test_the_idempotency_journal_is_fsynced_before_the_reply_is_sent(lab, tmp_path, monkeypatch):
    """Every journal line reaches the disk (``os.fsync`` of the journal's file) before
    ``record`` returns, so a power cut keeps each 'done' a client was told of."""
    import os

    from labflow.remote import server as server_module

    journal_path = tmp_path / "journal.jsonl"
    synced: list[int] = []  # journal lines on disk when each fsync of the journal returned
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(journal_path.resolve()):
            synced.append(len(journal_path.read_text().splitlines()))

    monkeypatch.setattr(server_module.os, "fsync", fsync)
    journal = server_module.Journal(journal_path)
    journal.record({"id": "a", "phase": "started", "method": "set"})
    journal.record({"id": "a", "phase": "done", "method": "set"})
    journal.close()
    assert synced == [1, 2]
