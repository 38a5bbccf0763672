"""`labflow bench --cluster`: the seeds of a sweep on Dask distributed, with the same runs.jsonl
and the same results as in one process."""

import json

import pytest
from typer.testing import CliRunner

from labflow.bench.cluster import ClusterAddress, parse_cluster
from labflow.bench.runner import BenchSpec, run_bench
from labflow.cli import app

SWEEP = ["--datasets", "perovskite", "--planners", "random,bayesian", "--budget", "8"]


def _runs(path):
    """runs.jsonl as {(dataset, planner, seed, instruments): (trace, times)}: what a run measured,
    without its wall time and planning latencies (which no two machines share)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["dataset"], r["planner"], r["seed"], r["instruments"]): (r["trace"], r["times"]) for r in rows}


@pytest.mark.timeout(600)  # two worker processes that import torch: minutes on a busy machine
def test_a_local_cluster_gives_the_single_process_results_and_resumes_from_runs_jsonl(tmp_path, data_dir):
    spec = BenchSpec(datasets=["perovskite"], planners=["random", "bayesian"], seeds=2, budget=8, data_dir=str(data_dir))
    alone = run_bench(spec, workers=1, journal=tmp_path / "alone" / "runs.jsonl")

    # an interrupted sweep: seed 0 is in the journal already (as the single process wrote it)
    out = tmp_path / "cluster"
    out.mkdir()
    before = "".join(line for line in (tmp_path / "alone" / "runs.jsonl").read_text().splitlines(keepends=True)
                     if json.loads(line)["seed"] == 0)
    (out / "runs.jsonl").write_text(before)

    # only the two missing runs go to the cluster; the journal keeps the first two as they were
    result = CliRunner().invoke(app, ["bench", *SWEEP, "--seeds", "2", "--cluster", "local:2", "--out", str(out),
                                      "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert (out / "runs.jsonl").read_text().startswith(before)
    on_cluster = _runs(out / "runs.jsonl")
    assert len(on_cluster) == 4
    assert on_cluster == {(r.dataset, r.planner, r.seed, r.instruments): (r.trace, r.times) for r in alone}
    assert "--cluster local:2" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_a_scheduler_address_runs_the_sweep_on_its_workers(tmp_path, data_dir):
    distributed = pytest.importorskip("distributed", reason="Dask distributed is the `cluster` extra")
    spec = BenchSpec(datasets=["perovskite"], planners=["sobol"], seeds=1, budget=8, data_dir=str(data_dir))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run_bench(spec, cluster=cluster.scheduler_address, journal=tmp_path / "runs.jsonl")
    alone = run_bench(spec, workers=1)
    assert [(r.trace, r.times) for r in remote] == [(r.trace, r.times) for r in alone]
    assert len(_runs(tmp_path / "runs.jsonl")) == 1


@pytest.mark.parametrize("text, expected", [("local:2", ClusterAddress(workers=2)),
                                            ("tcp://10.0.0.5:8786", ClusterAddress(address="tcp://10.0.0.5:8786")),
                                            ("scheduler.lab:8786", ClusterAddress(address="scheduler.lab:8786"))])
def test_cluster_addresses(text, expected):
    assert parse_cluster(text) == expected


def test_bad_cluster_options_are_refused_before_anything_runs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bench", *SWEEP, "--cluster", "local:two", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--cluster takes local:N with N a whole number of worker processes (e.g. local:2), got 'local:two'" in result.output
    assert "hint:" in result.output
    result = runner.invoke(app, ["bench", *SWEEP, "--cluster", "local:0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs N >= 1" in result.output
    result = runner.invoke(app, ["bench", *SWEEP, "--cluster", "local:2", "--workers", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "give one" in result.output
    assert not (tmp_path / "runs.jsonl").exists()


def test_no_scheduler_at_the_address_is_a_clear_error(tmp_path, data_dir):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from labflow.bench.cluster import ClusterUnavailable, run_on_cluster

    with pytest.raises(ClusterUnavailable, match=f"no Dask scheduler answered at tcp://127.0.0.1:{port}"):
        run_on_cluster(parse_cluster(f"tcp://127.0.0.1:{port}"), dict, [{"a": 1}], print, connect_timeout=2)
