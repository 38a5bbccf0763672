"""`labflow bench` end to end on one small pool, and one pool campaign through the loop."""

import json

import pytest
from typer.testing import CliRunner

from labflow.bench.runner import run_one
from labflow.cli import app


def test_bench_writes_json_markdown_and_plots(tmp_path, data_dir):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--datasets", "perovskite", "--planners", "random,sobol,bayesian",
                                      "--seeds", "2", "--budget", "25", "--out", str(out), "--data-dir", str(data_dir),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "bench.json").read_text())
    rows = payload["results"]
    assert {"dataset", "planner", "target", "median_n", "af_vs_random", "af_ci", "ceiling", "reached_fraction", "seeds"} <= set(rows[0])
    assert {r["planner"] for r in rows} == {"random", "sobol", "bayesian"}
    assert all(r["seeds"] == 2 and r["dataset"] == "perovskite" for r in rows)
    assert (out / "perovskite_fraction_found.png").stat().st_size > 10_000
    assert "| perovskite | bayesian |" in (out / "bench.md").read_text()


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
