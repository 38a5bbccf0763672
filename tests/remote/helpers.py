"""Helpers for the remote tests: device servers in real subprocesses, configs on the fly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.01) -> float:
    """Poll ``predicate`` until true; returns the monotonic time it became true. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ServerProcess:
    """``labflow serve CONFIG`` in a real subprocess, bound to ``endpoint``."""

    def __init__(self, config: Path, workdir: Path, endpoint: str | None = None, journal: Path | None = None) -> None:
        self.config = Path(config)
        self.workdir = Path(workdir)
        self.endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
        self.journal = journal if journal is not None else self.workdir / "server.journal"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.starts += 1
        ready = self.workdir / f"ready-{self.starts}.txt"
        err = (self.workdir / f"server-{self.starts}.log").open("w")
        cmd = [sys.executable, "-m", "labflow.cli", "serve", str(self.config), "--endpoint", self.endpoint,
               "--journal", str(self.journal), "--ready-file", str(ready)]
        self.proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, cwd=str(self.workdir))
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {(self.workdir / f'server-{self.starts}.log').read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("server did not start in time")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pc_config(tmp_path: Path, *, lab: str | Path = CONFIGS / "sim_materials.yaml", name: str = "test-pc", heartbeat: str = "1 s",
              time_scale: float | None = None, **more: Any) -> Path:
    serve: dict[str, Any] = {"lab": str(lab), "seed": 0}
    if time_scale is not None:
        serve["time_scale"] = time_scale
    return write_yaml(tmp_path / f"{name}.yaml", {"name": name, "heartbeat": heartbeat, "serve": serve, **more})


def remote_lab(endpoint: str, stations: tuple[str, ...] = ("station1", "station2"), **more: Any):
    from labflow.remote.lab import RemoteLabConfig

    return RemoteLabConfig.model_validate(
        {
            "name": "remote-test",
            "kind": "remote",
            "stations": [
                {"name": s, "synthesis": {"endpoint": endpoint, "device": f"{s}_synthesis"},
                 "instrument": {"endpoint": endpoint, "device": f"{s}_instrument"}}
                for s in stations
            ],
            **more,
        }
    )


def recipe_on(lab_config: Any, recipe_path: Path = ROOT / "recipes" / "quickstart.yaml", **changes: Any):
    """The recipe, unchanged but for its lab (and top-level ``changes``), checked against that lab."""
    from labflow.recipe import Recipe, check_against_lab, load_recipe

    r = load_recipe(recipe_path)
    if changes:
        r = r.replace(**changes)
    r = Recipe(r.spec, source=r.source, text=r.text, lab_path=None, lab_config=lab_config)
    problems = check_against_lab(r, lab_config)
    assert not problems, problems
    return r
