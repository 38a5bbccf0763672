"""B7 / P10: with security on, CURVE + a ZAP allow list: an unknown client gets no reply and no
handler runs. Keys come from `labflow keys`; servers refuse non-loopback binds without security."""

from __future__ import annotations

import shutil
import stat
import time

import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.errors import LabflowError
from labflow.lab import load_lab_config
from labflow.remote.client import RemoteClient
from labflow.remote.keys import ClientSecurity, ServerSecurity
from labflow.remote.protocol import RemoteTimeoutError
from labflow.remote.server import DeviceServer

from .helpers import CONFIGS


def keys(tmp_path, name):
    result = CliRunner().invoke(app, ["keys", str(tmp_path / "keys"), "--name", name])
    assert result.exit_code == 0, result.output
    return tmp_path / "keys" / f"{name}.key", tmp_path / "keys" / f"{name}.key_secret"


def test_keys_are_generated_once_with_a_private_secret(tmp_path):
    public, secret = keys(tmp_path, "orchestrator")
    assert public.is_file() and stat.S_IMODE(secret.stat().st_mode) == 0o600
    again = CliRunner().invoke(app, ["keys", str(tmp_path / "keys"), "--name", "orchestrator"])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.fixture
def devices():
    lab = load_lab_config(CONFIGS / "sim_materials.yaml").build(seed=0)
    yield {d.name: d for s in lab.stations for d in (s.synthesis, s.instrument)}
    lab.close()


def test_unknown_client_key_gets_no_reply_and_no_handler_runs(tmp_path, devices):
    server_pub, server_sec = keys(tmp_path, "materials-pc")
    client_pub, client_sec = keys(tmp_path, "orchestrator")
    _, intruder_sec = keys(tmp_path, "intruder")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(client_pub, allowed)
    with DeviceServer(devices, security=ServerSecurity(server_sec, allowed)) as srv:
        friend = RemoteClient(srv.endpoint, heartbeat=30, security=ClientSecurity(client_sec, server_pub))
        try:
            assert friend.connect(timeout=5)["devices"]
            handled = srv.stats["handled"]
            frames = srv.stats["frames"]
            for sec in (intruder_sec, None):  # an unknown key, and no encryption at all
                intruder = RemoteClient(srv.endpoint, heartbeat=0.2, request_timeout=1.0,
                                        security=ClientSecurity(sec, server_pub) if sec else None)
                try:
                    t0 = time.monotonic()
                    with pytest.raises(RemoteTimeoutError):
                        intruder.call("set", "station1_synthesis", {"signal": "temperature", "value": 400.0, "units": "K"})
                    assert time.monotonic() - t0 < 2.0
                finally:
                    intruder.close()
            # not one frame of the intruders reached the server's loop, so no handler ran
            assert (srv.stats["handled"], srv.stats["frames"]) == (handled, frames)
            assert srv.stats["method.set"] == 0 and srv.stats["actuations"] == 0
            assert friend.call("read", "station1_synthesis")["readings"]["temperature"]["units"] == "K"
        finally:
            friend.close()


def test_non_loopback_binds_need_security(devices):
    with pytest.raises(LabflowError, match="without security"):
        DeviceServer(devices, endpoint="tcp://0.0.0.0:0")
