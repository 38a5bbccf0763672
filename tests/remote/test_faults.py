"""F4 / P9: kill -9 a device server mid-set, restart it: the campaign suspends, resumes, and
the resent command is applied once. Plus idempotency across a server restart."""

from __future__ import annotations

import json
import threading
import time

import zmq

from labflow.campaign import Campaign, LocalExecutor, StationRunner
from labflow.planners import make_planner
from labflow.remote.protocol import decode, encode, make_request

from .helpers import ServerProcess, pc_config, recipe_on, remote_lab, wait_for, write_yaml

HEARTBEAT = 0.25


def slow_lab(tmp_path, set_seconds: float = 1.0):
    return write_yaml(
        tmp_path / "slow_materials.yaml",
        {
            "name": "slow-materials",
            "kind": "simulated",
            "stations": 1,
            "landscape": {"name": "materials", "noise_std": {"product_yield": 0.5}},
            "durations": {"set": f"{set_seconds} s", "synthesize": "0.05 s", "measure": "0.05 s", "synthesize_from": None},
            "time_scale": 1,
        },
    )


def journal(path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def test_kill9_mid_set_suspends_resumes_and_applies_the_command_once(tmp_path):
    cfg = pc_config(tmp_path, lab=slow_lab(tmp_path), heartbeat=f"{HEARTBEAT} s")
    server = ServerProcess(cfg, tmp_path).start()
    lab_cfg = remote_lab(server.endpoint, stations=("station1",), heartbeat=HEARTBEAT, missed_heartbeats=3, timeout=30)
    recipe = recipe_on(lab_cfg, budget=2)
    lab = lab_cfg.build()
    station = lab.stations[0]
    client = station.clients[0]
    docs: list[tuple[str, dict, float]] = []
    runner = StationRunner(station, recipe.space, recipe.objectives, subscribers=[lambda n, d: docs.append((n, d, time.monotonic()))],
                           timeout=recipe.spec.execution.timeout_s)
    planner = make_planner("random", recipe.space, recipe.objectives, seed=0)
    executor = LocalExecutor(1)
    campaign = Campaign(planner=planner, runners=[runner], executor=executor, budget=2)
    errors: list[BaseException] = []

    def run():
        try:
            campaign.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        # kill -9 while the first experiment's sets are running (each takes 1 s)
        wait_for(lambda: any(e["phase"] == "started" and e["method"] == "set" for e in journal(server.journal)), 15, "the first set")
        server.kill9()
        t_kill = time.monotonic()
        first_life = journal(server.journal)
        in_flight = {e["id"] for e in first_life if e["phase"] == "started"} - {e["id"] for e in first_life if e["phase"] == "done"}
        assert in_flight, "the kill should land mid-set"
        t_detect = wait_for(lambda: client.lost.get() == 1, 5, "the client to notice the lost server")
        assert t_detect - t_kill <= 3 * HEARTBEAT + HEARTBEAT / 2 + 0.1  # within 3 heartbeats (+ polling slack)
        time.sleep(2.0)  # the scripted outage of F4: restart after 2 s
        assert not any(n == "stop" for n, _, t in docs if t > t_kill), "no RunStop while suspended"
        server.start()
        t_back = time.monotonic()
        t_resumed = wait_for(lambda: client.lost.get() == 0, 5, "the client to see the server again")
        assert t_resumed - t_back <= 5.0
        thread.join(30)
        assert not thread.is_alive() and not errors, errors
        print(f"F4: detected {t_detect - t_kill:.3f} s after kill -9 (heartbeat {HEARTBEAT} s); "
              f"resumed {t_resumed - t_back:.3f} s after the server was back")
    finally:
        executor.close()
        lab.close()
        server.stop()
    assert campaign.state.completed == 2 and campaign.state.failed == 0
    starts = [d for n, d, _ in docs if n == "start"]
    stops = [d for n, d, _ in docs if n == "stop"]
    assert len(starts) == 2 and [s["exit_status"] for s in stops] == ["success", "success"]  # suspended, not failed
    entries = journal(server.journal)
    done: dict[str, int] = {}
    for e in entries:
        if e["phase"] == "done":
            done[e["id"]] = done.get(e["id"], 0) + 1
    assert all(n == 1 for n in done.values()), done  # no command applied twice
    assert all(done.get(rid) == 1 for rid in in_flight)  # the command cut off by the kill: applied once
    assert station.log.reused >= 1  # bluesky's replay after the suspension resent the same ids
    lost = [e for _, e in client.events]
    assert lost.count("lost") == 1 and lost.count("recovered") == 1


def _raw_call(endpoint: str, msg: dict, timeout_ms: int = 5000) -> dict:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(endpoint)
    try:
        s.send(encode(msg))
        assert s.poll(timeout_ms), "no reply"
        return decode(s.recv())[0]
    finally:
        s.close(0)


def test_a_command_resent_to_a_restarted_server_is_not_applied_again(tmp_path):
    server = ServerProcess(pc_config(tmp_path), tmp_path).start()
    try:
        req = make_request("set", "station1_synthesis", {"signal": "temperature", "value": 150.0, "units": "degC"})
        first = _raw_call(server.endpoint, req)
        assert first["ok"] and abs(first["result"]["value"] - 423.15) < 1e-9 and first["result"]["units"] == "K"
        server.kill9()
        server.start()
        again = _raw_call(server.endpoint, req)  # a new connection, the same idempotency key
        assert again["ok"] and again.get("duplicate") is True and again["result"] == first["result"]
        stats = _raw_call(server.endpoint, make_request("stats"))["result"]["counters"]
        assert stats.get("actuations", 0) == 0 and stats.get("duplicates") == 1
        # the restarted (simulated) server restored the setpoint from its journal
        read = _raw_call(server.endpoint, make_request("read", "station1_synthesis"))["result"]["readings"]
        assert abs(read["temperature"]["value"] - 423.15) < 1e-9 and read["temperature"]["units"] == "K"
    finally:
        server.stop()
    assert sum(1 for e in journal(server.journal) if e["phase"] == "done" and e["id"] == req["id"]) == 1


def test_a_resend_while_running_joins_the_operation(tmp_path):
    from labflow.lab import load_lab_config
    from labflow.remote.server import DeviceServer

    lab = load_lab_config(slow_lab(tmp_path, set_seconds=0.3)).build(seed=0)
    devices = {d.name: d for s in lab.stations for d in (s.synthesis, s.instrument)}
    with DeviceServer(devices) as srv:
        ctx = zmq.Context.instance()
        a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
        for s in (a, b):
            s.linger = 0
            s.connect(srv.endpoint)
        req = make_request("set", "station1_synthesis", {"signal": "dopant_fraction", "value": 0.25})
        a.send(encode(req))
        wait_for(lambda: srv.stats["actuations"] == 1, 5, "the set to start")
        b.send(encode(req))  # the same id from another connection while it runs
        assert a.poll(5000) and b.poll(5000)
        ra, rb = decode(a.recv())[0], decode(b.recv())[0]
        assert ra["ok"] and rb["ok"] and ra["result"] == rb["result"]
        assert srv.stats["actuations"] == 1 and srv.stats["duplicates"] == 1
        a.close(0)
        b.close(0)
    lab.close()
