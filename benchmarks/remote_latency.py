"""Remote device latency and campaign overhead on loopback.

1. Request round trip (``ping``), and a remote ``set`` + ``read`` of a served simulated
   device, against the same ``set`` + ``read`` on the device in process: median, p99, throughput.
2. Overhead per experiment of a campaign against a device server (another process, loopback)
   against the same campaign on the local simulated lab (Sobol planner, so that planning time
   is negligible and equal; instant simulated devices).

Prints a table and writes benchmarks/results/remote_latency.{json,md}.

    .venv/bin/python benchmarks/remote_latency.py [--n 2000] [--budget 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    cfg = workdir / "pc.yaml"
    cfg.write_text(yaml.safe_dump({"name": "bench-pc", "serve": {"lab": str(ROOT / "configs" / "sim_materials.yaml"), "seed": 0}}))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ready = workdir / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "labflow.cli", "serve", str(cfg), "--endpoint", endpoint, "--ready-file", str(ready),
                             "--journal", str(workdir / "journal")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the device server did not start")
        time.sleep(0.02)
    return proc, endpoint


def stats(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"n": int(a.size), "median_ms": float(np.median(a) * 1e3), "p99_ms": float(np.percentile(a, 99) * 1e3),
            "throughput_per_s": float(a.size / a.sum())}


def bench_latency(endpoint: str, n: int) -> dict[str, dict[str, float]]:
    from labflow.remote.devices import make_remote_device
    from labflow.lab import load_lab_config
    from labflow.remote.client import RemoteClient

    rng = np.random.default_rng(0)
    temps = rng.uniform(330.0, 660.0, size=n)
    client = RemoteClient(endpoint)
    out = {}
    try:
        client.connect()
        t = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.call("ping")
            t.append(time.perf_counter() - t0)
        out["ping round trip (remote)"] = stats(t)
        dev = make_remote_device(client, "station1_synthesis")
        t = []
        for x in temps:
            t0 = time.perf_counter()
            dev.temperature.set(float(x)).wait(5)
            dev.read()
            t.append(time.perf_counter() - t0)
        out["set + read (remote, loopback)"] = stats(t)
    finally:
        client.close()
    lab = load_lab_config(ROOT / "configs" / "sim_materials.yaml").build(seed=0)
    dev = lab.stations[0].synthesis
    t = []
    for x in temps:
        t0 = time.perf_counter()
        dev.temperature.set(float(x)).wait(5)
        dev.read()
        t.append(time.perf_counter() - t0)
    out["set + read (in process)"] = stats(t)
    lab.close()
    return out


def bench_campaign(endpoint: str, budget: int, workdir: Path) -> dict[str, float]:
    from labflow.campaign import Campaign, LocalExecutor, StationRunner
    from labflow.lab import SimulatedLabConfig, load_lab_config
    from labflow.planners import make_planner
    from labflow.recipe import load_recipe
    from labflow.remote.lab import RemoteLabConfig

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    local_cfg = SimulatedLabConfig.model_validate({**load_lab_config(ROOT / "configs" / "sim_materials.yaml").model_dump(), "stations": 1})
    remote_cfg = RemoteLabConfig.model_validate({"name": "bench", "kind": "remote", "stations": [
        {"name": "station1", "synthesis": {"endpoint": endpoint, "device": "station1_synthesis"},
         "instrument": {"endpoint": endpoint, "device": "station1_instrument"}}]})
    result = {}
    for label, cfg in (("local", local_cfg), ("remote", remote_cfg)):
        lab = cfg.build(seed=0)
        runner = StationRunner(lab.stations[0], recipe.space, recipe.objectives)
        planner = make_planner("sobol", recipe.space, recipe.objectives, seed=0)
        ex = LocalExecutor(1)
        try:
            Campaign(planner=planner, runners=[runner], executor=ex, budget=3).run()  # warm up
            planner = make_planner("sobol", recipe.space, recipe.objectives, seed=1)
            t0 = time.perf_counter()
            state = Campaign(planner=planner, runners=[runner], executor=ex, budget=budget).run()
            result[f"{label}_s_per_experiment"] = (time.perf_counter() - t0) / budget
            assert state.completed == budget
        finally:
            ex.close()
            lab.close()
    result["overhead_ms_per_experiment"] = (result["remote_s_per_experiment"] - result["local_s_per_experiment"]) * 1e3
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="requests per latency measurement")
    ap.add_argument("--budget", type=int, default=40, help="experiments per campaign")
    args = ap.parse_args()
    command = "python benchmarks/remote_latency.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint = start_server(Path(tmp))
        try:
            latency = bench_latency(endpoint, args.n)
            campaign = bench_campaign(endpoint, args.budget, Path(tmp))
        finally:
            proc.terminate()
            proc.wait(10)
    rows = [f"| {k} | {v['n']} | {v['median_ms']:.3f} | {v['p99_ms']:.3f} | {v['throughput_per_s']:.0f} |" for k, v in latency.items()]
    table = "\n".join(["| operation | n | median (ms) | p99 (ms) | throughput (/s) |", "| --- | ---: | ---: | ---: | ---: |", *rows])
    camp = "\n".join([
        "| campaign (Sobol, instant sim, 1 station) | s per experiment |", "| --- | ---: |",
        f"| local simulated lab | {campaign['local_s_per_experiment']:.4f} |",
        f"| remote (device server in another process, loopback) | {campaign['remote_s_per_experiment']:.4f} |",
        f"| **overhead per experiment** | **{campaign['overhead_ms_per_experiment'] / 1e3:.4f}** ({campaign['overhead_ms_per_experiment']:.1f} ms) |",
    ])
    print(table)
    print()
    print(camp)
    machine = f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import environment, portable

    env = environment()
    (out / "remote_latency.json").write_text(json.dumps(portable({"command": command, "machine": machine, "latency": latency, "campaign": campaign,
                                                                 "n": args.n, "budget": args.budget, "environment": env}), indent=2))
    (out / "remote_latency.md").write_text(
        f"# Remote device latency and campaign overhead (loopback)\n\nCommand: `{command}`\n\nCommit: {env['commit']}\n\nMachine: {machine}\n\n"
        f"A remote set+read is `RemoteParameterSignal.set(x).wait()` then `RemoteSynthesisStation.read()` against `labflow serve` "
        f"in another process; in process is the same on the simulated device.\n\n{table}\n\n{camp}\n"
    )


if __name__ == "__main__":
    main()
