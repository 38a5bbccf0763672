"""The ledger is the source of truth: ``labflow rebuild`` rewrites a campaign's HDF5 file from it,
finished or not; a stopped campaign names the real path to resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from labflow.cli import app
from labflow.errors import CampaignInterrupted
from labflow.launch import run_recipe
from labflow.recipe import load_recipe
from labflow.store.campaign_dir import CampaignDir
from labflow.store.provenance import read_campaign

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_a_damaged_finished_campaign_is_rebuilt_from_its_ledger(tmp_path):
    outcome = run_recipe(load_recipe(ROOT / "recipes" / "quickstart.yaml"), tmp_path / "runs", budget=4, executor="virtual",
                         handle_signals=False)
    before = read_campaign(outcome.path)
    data = bytearray(outcome.path.read_bytes())
    for i in range(8, 48):  # flipped bits in the superblock
        data[i] ^= 0b0100_0001
    outcome.path.write_bytes(bytes(data))
    assert runner.invoke(app, ["inspect", str(outcome.path)]).exit_code == 1
    refused = runner.invoke(app, ["resume", str(outcome.path), "--quiet"])
    assert refused.exit_code == 1 and f"labflow rebuild {outcome.campaign_dir}" in refused.output

    result = runner.invoke(app, ["rebuild", str(outcome.path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"rebuilt {outcome.path} from its ledger: 4 experiments, finished; the previous file is in ")
    after = read_campaign(outcome.path)
    assert list(after.experiments["uid"]) == list(before.experiments["uid"])
    assert np.allclose(after.experiments["product_yield"], before.experiments["product_yield"])
    assert after.summary()["state"] == "finished" and after.attrs["finished"] == before.attrs["finished"]
    assert after.executor == "virtual" and after.overrides == before.overrides
    (moved,) = (outcome.campaign_dir / "quarantine").glob("*.h5")
    assert moved.read_bytes() == bytes(data)  # the damaged file is kept, never deleted


def test_a_stopped_campaign_names_its_path_and_rebuilds_before_it_resumes(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")

    def stop_after_two(event, state):
        if event == "finished" and state.finished == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` or a batch system's time limit does

    try:
        run_recipe(recipe, tmp_path, budget=5, executor="local", listeners=[stop_after_two])
    except CampaignInterrupted as exc:
        stopped = exc
    else:
        raise AssertionError("the campaign did not stop")
    (cdir,) = tmp_path.glob("*.labflow")
    assert stopped.hint == f"continue it with: labflow resume {cdir}"

    n = len(CampaignDir(cdir).history().finished)  # 2, or 3 when the one in flight finished before the stop
    result = runner.invoke(app, ["rebuild", str(cdir)])
    assert result.exit_code == 0, result.output
    assert f"from its ledger: {n} experiments, stopped early: CampaignInterrupted: campaign stopped (SIGTERM)" in result.output
    rec = read_campaign(cdir.with_suffix(".h5"))
    assert len(rec.experiments) == n and rec.summary()["state"].startswith("stopped early")
    stopped_view = json.loads(runner.invoke(app, ["inspect", str(cdir.with_suffix(".h5")), "--json"]).output)
    assert stopped_view["state"].startswith("stopped early: CampaignInterrupted: campaign stopped (SIGTERM)")
    result = runner.invoke(app, ["resume", str(cdir), "--quiet"])
    assert result.exit_code == 0, result.output
    done = json.loads(runner.invoke(app, ["inspect", str(cdir.with_suffix(".h5")), "--json"]).output)
    assert (done["completed"], done["executor"], done["state"]) == (5, "local", "finished")
    assert done["repeated"] == done["interrupted"] == stopped_view["interrupted"]  # each one in flight at the stop ran again, once
    assert "interrupted" in runner.invoke(app, ["inspect", str(cdir.with_suffix(".h5"))]).output
