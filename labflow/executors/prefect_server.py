"""A Prefect API server that lives exactly as long as the campaign that started it.

Without ``PREFECT_API_URL``, Prefect starts a temporary ("ephemeral") API server in a child
process and stops it at exit -- but a campaign killed with SIGKILL (the OOM killer, ``kill -9``,
a batch system's hard limit) runs no exit handler, and that server (about 190 MB) stayed behind.
:func:`campaign_api` starts the server itself, as ``python -m labflow.executors.prefect_server``,
and the server watches the campaign: on Linux the kernel sends it SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``); everywhere it also checks its parent once every half second and exits
when the parent is gone. Each campaign gets its own server; nothing is reused between campaigns
(the flow runs are in Prefect's database, ``PREFECT_HOME``, as before). With ``PREFECT_API_URL``
set, the configured server is used and nothing is started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from labflow.errors import LabflowError

__all__ = ["campaign_api", "main"]

POLL_S = 0.5
"""How often the server checks that the campaign that started it is alive."""
MIN_STARTUP_S = 60.0
"""The least time the server is given to answer, whatever ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` says."""
DRAIN_S = 60.0
"""How long the campaign waits, at its end, for Prefect's client to send what it still queues."""
GRACE_S = 10.0
"""How long the server may take to stop cleanly once its campaign is gone, before it exits hard."""


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def campaign_api(startup_timeout: float | None = None) -> Iterator[str | None]:
    """Run the body against a Prefect API server that dies with this process; yields its URL
    (``None`` when ``PREFECT_API_URL`` names a server already: that one is used)."""
    import httpx
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, get_current_settings, temporary_settings

    if PREFECT_API_URL.value():
        yield None
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True),
           "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "labflow.executors.prefect_server", "--port", str(port), "--parent", str(os.getpid())],
                            env=env, stdin=subprocess.DEVNULL)
    try:
        # Prefect's own default (20 s) is short for a busy lab PC: wait at least a minute
        limit = startup_timeout or max(MIN_STARTUP_S, float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        deadline = time.monotonic() + limit
        with httpx.Client() as client:
            while True:
                if proc.poll() is not None:
                    raise LabflowError(f"the campaign's Prefect API server exited at start (exit code {proc.returncode})",
                                       hint="set PREFECT_API_URL to a running Prefect server, or run with --executor local")
                try:
                    if client.get(f"{url}/health", timeout=2.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise LabflowError(f"the campaign's Prefect API server did not answer within {limit:.0f} s",
                                       hint="raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL")
                time.sleep(0.1)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drain_clients(DRAIN_S)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drain_clients(timeout: float) -> None:
    """Send what Prefect's client still queues (task-run events, log lines) while the server is up.

    Prefect's events and log workers send in the background; stopped with a backlog (a loaded
    machine, a long campaign), they would retry each item against a server that is gone, for
    seconds each, when this process exits. Prefect's own test harness drains them the same way
    before it stops its server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=timeout)


def _die_with_parent() -> None:
    """Linux: ask the kernel for SIGTERM when the parent process dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _watch(parent: int, server: Any) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    server.should_exit = True
    time.sleep(GRACE_S)
    os._exit(0)  # still here: the clean stop hung


def main(argv: list[str] | None = None) -> None:
    """``python -m labflow.executors.prefect_server --port N --parent PID``: serve Prefect's API
    on 127.0.0.1:N until PID exits (or SIGTERM)."""
    ap = argparse.ArgumentParser(prog="labflow.executors.prefect_server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--parent", type=int, required=True)
    args = ap.parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.parent:
        return  # the campaign died before we could watch it
    import uvicorn

    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=args.port,
                            log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    threading.Thread(target=_watch, args=(args.parent, server), name="watch-campaign", daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
