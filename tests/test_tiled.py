"""Browsing campaigns with Tiled: ``tiled serve directory`` serves a runs folder on loopback and
Tiled's Python client reads a campaign's experiments table and a run's data, as a bluesky user
would (docs/how-to/browse-campaigns-with-tiled.md)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labflow.launch import run_recipe
from labflow.recipe import load_recipe
from labflow.store.provenance import read_campaign

pytest.importorskip("tiled.client", reason="Tiled is a dev dependency (pip install 'tiled[server,client]')")

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiled() -> list[str]:
    exe = Path(sys.executable).with_name("tiled")
    return [str(exe)] if exe.exists() else [shutil.which("tiled") or "tiled"]


@pytest.mark.slow  # a Tiled server starts in ~15 s on a quiet machine, ~100 s on the loaded 2-core one
def test_tiled_serves_a_runs_folder_and_its_client_reads_experiments_and_runs(tmp_path):
    from tiled.client import from_uri

    runs = tmp_path / "runs"
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"})
    path = run_recipe(recipe, runs, budget=3, seed=1, executor="virtual").path
    rec = read_campaign(path)
    port = _free_port()
    log = (tmp_path / "tiled.log").open("w")
    server = subprocess.Popen([*_tiled(), "serve", "directory", "--public", "--host", "127.0.0.1", "--port", str(port),
                               "--include-ext", ".h5", str(runs)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "Indexing complete" not in (tmp_path / "tiled.log").read_text():
            assert server.poll() is None, (tmp_path / "tiled.log").read_text()
            assert time.monotonic() < deadline, "tiled did not index the folder in time"
            time.sleep(0.25)
        client = from_uri(f"http://127.0.0.1:{port}")
        assert list(client) == [path.stem]  # one node per campaign file, named like it
        campaign = client[path.stem]
        assert campaign.metadata["campaign"] == "quickstart" and campaign.metadata["campaign_id"] == rec.attrs["campaign_id"]

        # the experiments table: one array per column, units in each column's metadata
        node = campaign["experiments"]
        table = pd.DataFrame({name: node[name].read() for name in ["temperature", "time", "dopant_fraction", "product_yield"]})
        np.testing.assert_allclose(table.to_numpy(), rec.experiments[list(table.columns)].to_numpy())
        assert node["temperature"].metadata["units"] == "degC" and node["product_yield"].metadata["units"] == "percent"

        # a run's data: the primary stream of the first experiment's bluesky run
        (run_uid,) = rec.experiments["run_uids"].iloc[0].split(",")
        run = campaign["runs"][run_uid]
        assert run.metadata["exit_status"] == "success" and run.metadata["experiment_uid"] == rec.experiments["uid"].iloc[0]
        primary = run["primary"]
        (key,) = [k for k in primary if k.endswith("_instrument_product_yield")]
        assert primary[key].read()[0] == pytest.approx(rec.experiments["product_yield"].iloc[0])
        assert primary[key].metadata["units"] == "percent"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
