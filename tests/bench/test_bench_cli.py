"""`labflow bench` end to end on one small pool, and one pool campaign through the loop."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from labflow.bench.runner import run_one
from labflow.cli import app


def test_bench_writes_json_markdown_and_plots(tmp_path, data_dir):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--datasets", "perovskite", "--planners", "random,sobol,bayesian",
                                      "--seeds", "2", "--budget", "15", "--out", str(out), "--data-dir", str(data_dir),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "bench.json").read_text())
    rows = payload["results"]
    assert {"dataset", "planner", "target", "median_n", "af_vs_random", "af_ci", "ceiling", "reached_fraction", "seeds"} <= set(rows[0])
    assert {r["planner"] for r in rows} == {"random", "sobol", "bayesian"}
    assert all(r["seeds"] == 2 and r["dataset"] == "perovskite" for r in rows)
    assert (out / "perovskite_fraction_found.png").stat().st_size > 10_000
    assert "| perovskite | bayesian |" in (out / "bench.md").read_text()

    # the same runs re-tabulated without running anything; asking for runs that were never made is refused
    (out / "bench.md").unlink()
    again = ["bench", "--datasets", "perovskite", "--planners", "random,sobol,bayesian", "--budget", "15",
             "--out", str(out), "--data-dir", str(data_dir), "--report-only"]
    result = CliRunner().invoke(app, [*again, "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert "--report-only" in (out / "bench.md").read_text()
    result = CliRunner().invoke(app, [*again, "--seeds", "3"])
    assert result.exit_code == 2 and "3 of the 9 runs asked for are not in the journal" in result.output


def test_a_pool_campaign_measures_each_point_once_and_is_deterministic(data_dir):
    a = run_one("autoam", "random", seed=3, budget=40, instruments=4, data_dir=str(data_dir))
    b = run_one("autoam", "random", seed=3, budget=40, instruments=4, data_dir=str(data_dir))
    assert len(a.trace) == 40 and len(set(a.trace)) == 40  # never the same pool point twice, even with 4 instruments
    assert a.trace == b.trace and a.times == b.times
    assert a.times == sorted(a.times) and a.times[-1] == pytest.approx(10 * 3600)  # 40 one-hour experiments on 4 instruments


def test_unknown_datasets_and_planners_are_refused(tmp_path, data_dir):
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--datasets", "nope", "--data-dir", str(data_dir), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["bench", "--planners", "magic", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown planners" in result.output


def test_bench_runs_on_a_plain_install_and_writes_the_lab_time_table(tmp_path, root):
    # As a user would run it: from an empty folder, no ../shared beside it, LABFLOW_DATA unset,
    # so the datasets can only come from the package itself.
    env = {k: v for k, v in os.environ.items() if k != "LABFLOW_DATA"}
    cmd = [sys.executable, "-m", "labflow.cli", "bench", "--datasets", "perovskite", "--planners", "bayesian,grid",
           "--seeds", "1", "--budget", "8", "--instruments", "1,2", "--workers", "1", "--work-hours", "8",
           "--work-days", "5", "--out", "out"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert payload["provenance"]["data"].startswith("the datasets shipped in labflow/datasets/liang2021")
    assert payload["provenance"]["command"].startswith("labflow bench --datasets perovskite --planners bayesian,grid")
    assert len(payload["provenance"]["git_commit"]) >= 7 and payload["provenance"]["machine"]["cpu_count"] >= 1
    lab = payload["lab_time"]
    assert {(r["target"], r["P"]) for r in lab} == {(t, p) for t in ("first", "80%") for p in (1, 2)}
    assert {r["t_exp"] for r in lab} == {"1 min", "10 min", "1 h", "8 h"} and {r["conventional"] for r in lab} == {"grid"}
    for r in lab:
        assert r["algorithmic"] * r["parallel"] * r["hours"] * r["overhead"] == pytest.approx(r["speedup"], rel=1e-9)
    md = (tmp_path / "out" / "bench.md").read_text()
    assert "## Lab time: labflow around the clock vs a conventional lab" in md and "What the baselines are" in md
    for text in (md, (tmp_path / "out" / "bench.json").read_text()):  # nothing that only makes sense on this machine
        assert str(tmp_path) not in text and str(root) not in text


def test_impossible_working_hours_are_refused_before_anything_runs(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--work-hours", "30", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "hours_per_day must be in (0, 24], got 30" in result.output
    result = CliRunner().invoke(app, ["bench", "--conventional", "magic", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "conventional must be one of" in result.output
