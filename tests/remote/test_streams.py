"""Document streams: a campaign's bluesky documents published over ZeroMQ (msgpack, no pickle)
and written by a consumer in another process into a provenance file identical in content."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import zmq

from labflow.campaign import Campaign, LocalExecutor, StationRunner
from labflow.lab import SimulatedLabConfig, load_lab_config
from labflow.planners import make_planner
from labflow.remote.protocol import decode
from labflow.remote.streams import END, TOPIC, DocumentPublisher
from labflow.store.provenance import ProvenanceWriter

from .helpers import CONFIGS, ROOT, recipe_on


def _content(path):
    """Everything the documents put in a provenance file: /documents and /runs."""
    out = {}
    with h5py.File(path, "r", locking=False) as f:
        out["documents"] = [(n.decode(), d.decode()) for n, d in zip(f["documents/name"][()], f["documents/doc"][()])]

        def visit(name, obj):
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}
            data = obj[()].tolist() if isinstance(obj, h5py.Dataset) else None
            out[name] = (attrs, data)

        f["runs"].visititems(visit)
    return out


def test_a_remote_consumer_writes_the_same_provenance(tmp_path):
    cfg = SimulatedLabConfig.model_validate({**load_lab_config(CONFIGS / "sim_materials.yaml").model_dump(), "stations": 1})
    recipe = recipe_on(cfg, budget=4)
    remote_file, local_file = tmp_path / "remote.h5", tmp_path / "local.h5"
    publisher = DocumentPublisher("tcp://127.0.0.1:0")
    sniffer = zmq.Context.instance().socket(zmq.SUB)  # sees exactly what goes on the wire
    sniffer.linger = 0
    sniffer.setsockopt(zmq.SUBSCRIBE, b"")
    sniffer.connect(publisher.endpoint)
    consumer = subprocess.Popen(
        [sys.executable, "-m", "labflow.cli", "record", publisher.endpoint, str(ROOT / "recipes" / "quickstart.yaml"),
         "--out", str(remote_file), "--idle", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(tmp_path),
    )
    lab = cfg.build(seed=recipe.seed)
    try:
        assert publisher.wait_for_subscribers(2, timeout=30), "the consumer did not subscribe"
        with ProvenanceWriter(local_file, campaign=recipe.name, space=recipe.space, objectives=recipe.objectives) as writer:
            runner = StationRunner(lab.stations[0], recipe.space, recipe.objectives, subscribers=[writer, publisher])
            executor = LocalExecutor(1)
            planner = make_planner("sobol", recipe.space, recipe.objectives, seed=0)
            try:
                state = Campaign(planner=planner, runners=[runner], executor=executor, budget=4, writer=writer).run()
            finally:
                executor.close()
            assert state.completed == 4
        publisher.close()
        out, _ = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, out
    finally:
        if consumer.poll() is None:
            consumer.kill()
        lab.close()
        publisher.close()
    local, remote = _content(local_file), _content(remote_file)
    assert len(local["documents"]) == 4 * 4  # start, descriptor, event, stop per run
    assert local == remote
    # on the wire: a topic and a msgpack map per document, never a pickle
    frames = []
    while sniffer.poll(100):
        frames.append(sniffer.recv_multipart())
    sniffer.close(0)
    assert len(frames) == len(local["documents"]) + 1
    for topic, payload in frames:
        assert topic == TOPIC and payload[:1] != b"\x80"  # 0x80: the PROTO opcode every pickle >= 2 starts with
        msg, fmt = decode(payload)
        assert fmt == "msgpack" and set(msg) == {"v", "seq", "name", "doc"}
    assert decode(frames[-1][1])[0]["name"] == END
    assert [decode(p)[0]["seq"] for _, p in frames] == list(np.arange(len(frames)))
