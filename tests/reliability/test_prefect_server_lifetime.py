"""A campaign killed with SIGKILL under the Prefect executor leaves no Prefect API server behind:
the server a campaign starts (without PREFECT_API_URL) dies with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the server process")
def test_sigkill_of_a_prefect_campaign_takes_its_api_server_with_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    recipe = tmp_path / "quickstart.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text())
    # a lab at 1/100 of real time, so the campaign is still running when it is killed
    campaign = subprocess.Popen([sys.executable, "-m", "labflow.cli", "run", str(recipe), "--executor", "prefect", "--budget", "30",
                                 "--time-scale", "0.01", "--out", str(tmp_path / "runs"), "--quiet"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = None
    try:
        deadline = time.monotonic() + 240
        while server is None and time.monotonic() < deadline:
            assert campaign.poll() is None, campaign.stdout.read().decode() if campaign.stdout else ""
            server = next((c for c in _children(campaign.pid) if "labflow.executors.prefect_server" in _cmdline(c)), None)
            time.sleep(0.5)
        assert server is not None, "the campaign started no Prefect API server"
        while not list((tmp_path / "runs").glob("*.h5")) and time.monotonic() < deadline:
            time.sleep(0.5)  # the flow runs: the server answered
        campaign.send_signal(signal.SIGKILL)
        campaign.wait()
        gone_by = time.monotonic() + 30
        while _alive(server) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not _alive(server), f"the Prefect API server {server} outlived its campaign"
    finally:
        if campaign.poll() is None:
            campaign.kill()
            campaign.wait()
        if server is not None and _alive(server):
            os.kill(server, signal.SIGKILL)  # the test failed: do not leave it behind either
