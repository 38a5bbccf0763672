"""Campaigns as Prefect deployments: `labflow deploy`, process work pools and workers, station
limits across campaigns, a worker that dies, and a facility server on PostgreSQL.

Everything is real and on loopback: Prefect servers (the session's test server, or `prefect
server start` subprocesses), `prefect worker start` subprocesses whose flow runs are processes
of their own, Prefect global concurrency limits, and a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.testing.crash import verify_campaign

SHARED_LAB = """\
# One simulated station that two campaigns share: each experiment takes 0.3 s of wall time.
name: shared-bench
kind: simulated
stations: 1
landscape: {name: branin, noise_std: {y: 0.0}}
durations: {set: 0 s, synthesize: 10 min, measure: 0 s}
time_scale: 0.0005
"""


def _recipe(name: str, *, budget: int, seed: int, lab: str = "shared_bench") -> str:
    return f"""\
name: {name}
lab: {lab}
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: sobol}}
budget: {budget}
seed: {seed}
execution: {{executor: prefect, timeout: 1 min}}
"""


@pytest.fixture
def lab_folder(tmp_path: Path) -> Path:
    """recipes/alpha.yaml and recipes/beta.yaml on configs/shared_bench.yaml (one station)."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "shared_bench.yaml").write_text(SHARED_LAB)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "alpha.yaml").write_text(_recipe("alpha", budget=4, seed=1))
    (tmp_path / "recipes" / "beta.yaml").write_text(_recipe("beta", budget=4, seed=2))
    return tmp_path


def run_intervals(h5: Path) -> list[tuple[float, float]]:
    """(start, stop) wall-clock times of every bluesky run in a provenance file."""
    with h5py.File(h5, "r") as f:
        return sorted((json.loads(g.attrs["start"])["time"], json.loads(g.attrs["stop"])["time"]) for g in f["runs"].values())


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> int:
    """How many pairs of runs, one from each list, were running at the same time."""
    return sum(1 for s1, e1 in a for s2, e2 in b if s1 < e2 and s2 < e1)


def wait_for_flow_runs(ids, *, timeout: float, workers=()) -> dict:
    """Poll the server until every flow run is final; returns {id: state name}."""
    from prefect import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = {i: client.read_flow_run(i) for i in ids}
            if all(r.state is not None and r.state.is_final() for r in runs.values()):
                return {i: r.state.name for i, r in runs.items()}
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.name}:\n{w.output()}" for w in workers)
                raise AssertionError(f"flow runs not finished after {timeout} s: { {i: r.state.name for i, r in runs.items()} }\n{logs}")
            time.sleep(1)


def started_runs(output: str) -> list[str]:
    """Flow run ids printed by `labflow deploy --run`."""
    return [line.rsplit("(", 1)[1].rstrip(")") for line in output.splitlines() if line.startswith("started flow run")]


# -- in the default suite -------------------------------------------------------------------


@pytest.mark.timeout(600)  # subprocesses that import torch: minutes on a busy machine
def test_two_deployed_campaigns_run_on_two_process_workers(prefect_server, lab_folder, tmp_path, root):
    """A process work pool, two `prefect worker start` subprocesses, two recipes deployed with
    `labflow deploy --run`: both campaigns finish, each with its own complete record, and their
    experiments never overlap on the station they share."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL
    from prefect.workers.process import ProcessWorker

    from labflow.executors.prefect import station_limit_name
    from labflow.testing.prefect import PrefectWorker, prefect_env

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="lab-pcs", type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()))
    results = tmp_path / "results"
    env = prefect_env(PREFECT_API_URL.value(), tmp_path / "worker-home", PYTHONPATH=str(root))
    workers = [PrefectWorker("lab-pcs", name, env, tmp_path) for name in ("pc-1", "pc-2")]
    try:
        ids = []
        for recipe in ("alpha", "beta"):
            out = CliRunner().invoke(app, ["deploy", str(lab_folder / "recipes" / f"{recipe}.yaml"), "--pool", "lab-pcs",
                                           "--results", str(results), "--run"])
            assert out.exit_code == 0, out.output
            assert f"deployed labflow-campaign/{recipe}" in out.output
            ids += started_runs(out.output)
        states = wait_for_flow_runs(ids, timeout=300, workers=workers)
    finally:
        for w in workers:
            w.stop()
    assert set(states.values()) == {"Completed"}, states

    records = {}
    for name in ("alpha", "beta"):
        (h5,) = results.glob(f"{name}-*.h5")
        check = verify_campaign(h5)
        assert check["ok"] and check["complete"] and check["finished"] == 4, check
        records[name] = run_intervals(h5)
    assert overlaps(records["alpha"], records["beta"]) == 0
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(station_limit_name("shared-bench", "station1"))
        assert limit.limit == 1
        artifacts = {a.key for a in client.read_artifacts()}
    assert {"alpha-summary", "beta-summary"} <= artifacts


def test_a_station_held_by_another_campaign_waits_until_it_is_free(prefect_server, lab_folder, tmp_path):
    """Another holder (here the test, as another campaign would) has the station's slot: the
    campaign submits its first experiment, which waits, and runs only once the slot is released.
    Without station limits the same campaign drives the station while the slot is held."""
    from prefect.concurrency.sync import concurrency

    from labflow.executors.prefect import ensure_station_limit, station_limit_name
    from labflow.flows import campaign
    from labflow.store.ledger import read_records

    name = station_limit_name("shared-bench", "station1")
    ensure_station_limit(name)

    def first_run_vs_release(results: Path, station_limits: bool) -> tuple[float, float]:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                campaign(str(lab_folder / "recipes" / "alpha.yaml"), results_dir=str(results), station_limits=station_limits)
            except BaseException as exc:  # handed to the test thread below
                errors.append(exc)

        thread = threading.Thread(target=run)
        with concurrency(name, occupy=1, strict=True, lease_duration=60):
            thread.start()
            deadline = time.monotonic() + 120
            while not any(r.get("k") == "started" for d in results.glob("alpha-*.labflow") if (d / "ledger.lfl").is_file()
                          for r in read_records(d / "ledger.lfl")):  # the folder exists a moment before its ledger
                assert time.monotonic() < deadline and not errors, errors
                time.sleep(0.05)
            time.sleep(1.0)  # the first experiment is submitted: hold the station a while longer
            released = time.time()
        thread.join(timeout=120)
        assert not errors, errors
        runs = run_intervals(next(results.glob("alpha-*.h5")))
        assert len(runs) == 4
        return runs[0][0], released

    started, released = first_run_vs_release(tmp_path / "guarded", station_limits=True)
    assert started >= released
    started, released = first_run_vs_release(tmp_path / "free", station_limits=False)
    assert started < released  # the check above can fail: this is what it catches


@pytest.mark.slow  # ~20 s; the worker-kill test below resumes through a deployment too
def test_the_campaign_flow_resumes_an_unfinished_campaign_from_its_ledger(prefect_server, lab_folder, tmp_path):
    """Run twice over the same results directory: the second run of a finished campaign starts a
    new one; a campaign left unfinished (its worker died) is resumed, not started over."""
    from labflow.flows import campaign
    from labflow.recipe import load_recipe
    from labflow.testing import crash_env

    recipe = lab_folder / "recipes" / "alpha.yaml"
    results = tmp_path / "results"
    first = campaign(str(recipe), results_dir=str(results), executor="virtual")
    assert first["resumed"] is False and first["completed"] == 4

    # a campaign whose process died during its third experiment
    import subprocess
    import sys

    code = (f"from labflow.launch import run_recipe; from labflow.recipe import load_recipe; "
            f"run_recipe(load_recipe({str(recipe)!r}), {str(results / 'died')!r}, executor='virtual')")
    died = subprocess.run([sys.executable, "-c", code], env=crash_env("run.before_stop_doc", 3), capture_output=True, timeout=120)
    assert died.returncode != 0
    again = campaign(str(recipe), results_dir=str(results / "died"), executor="virtual")
    assert again["resumed"] is True and again["completed"] == 4
    (h5,) = (results / "died").glob("alpha-*.h5")
    assert verify_campaign(h5)["ok"]
    # the recipe's text and its lab config, as `labflow deploy` ships them, make the same campaign
    r = load_recipe(recipe)
    shipped = campaign(r.text, lab=r.lab_config.model_dump(mode="json"), results_dir=str(tmp_path / "shipped"), executor="virtual")
    assert shipped["completed"] == 4


def test_deploy_refuses_what_it_cannot_deploy(prefect_server, lab_folder, tmp_path, monkeypatch):
    recipe = str(lab_folder / "recipes" / "alpha.yaml")
    runner = CliRunner()
    out = runner.invoke(app, ["deploy", recipe, "--pool", "no-such-pool"])
    assert out.exit_code == 2 and "has no work pool 'no-such-pool'" in out.output
    assert "hint: create it with: prefect work-pool create no-such-pool --type process" in out.output
    out = runner.invoke(app, ["deploy", recipe, "--pool", "p", "--cron", "every day"])
    assert out.exit_code == 2 and "--cron 'every day' is not a cron expression" in out.output
    out = runner.invoke(app, ["deploy", recipe, "--pool", "p", "--interval", "6 kg"])
    assert out.exit_code == 2 and "--interval takes a duration" in out.output
    out = runner.invoke(app, ["deploy", recipe, "--pool", "p", "--results", "results"])
    assert out.exit_code == 2 and "--results 'results' is a relative path" in out.output
    out = runner.invoke(app, ["deploy", recipe, "--pool", "p", "--cron", "0 6 * * *", "--interval", "1 h"])
    assert out.exit_code == 2 and "give one" in out.output
    bad = lab_folder / "recipes" / "bad.yaml"
    bad.write_text(_recipe("bad", budget=0, seed=1))
    out = runner.invoke(app, ["deploy", str(bad), "--pool", "p"])
    assert out.exit_code == 2 and "budget" in out.output


def test_a_deployment_carries_the_recipe_text_and_its_lab_or_only_its_path(root):
    from labflow.cli.deploy import deployment_parameters
    from labflow.flows import recipe_from_text
    from labflow.recipe import load_recipe

    recipe = load_recipe(root / "recipes" / "quickstart.yaml")
    shipped = deployment_parameters(recipe, by_path=False, results="/srv/results", budget=5, seed=None, executor=None,
                                    station_limits=True)
    assert shipped.keys() == {"recipe", "lab", "results_dir", "budget"}
    assert recipe_from_text(shipped["recipe"], shipped["lab"]).hash == recipe.hash
    by_path = deployment_parameters(recipe, by_path=True, results=None, budget=None, seed=None, executor="local",
                                    station_limits=False)
    assert by_path == {"recipe": str(root / "recipes" / "quickstart.yaml"), "executor": "local", "station_limits": False}
    # prior data files do not travel in a deployment: the recipe must go by path
    out = CliRunner().invoke(app, ["deploy", str(root / "recipes" / "perovskite_composition.yaml"), "--pool", "p"])
    assert out.exit_code == 2 and "reads prior data files" in out.output and "--by-path" in out.output


def test_the_campaign_flow_needs_a_results_directory(monkeypatch, lab_folder):
    from labflow.errors import LabflowError
    from labflow.flows import RESULTS_ENV, results_directory

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    with pytest.raises(LabflowError, match="no results directory") as info:
        results_directory(None)
    assert "--results DIR" in info.value.hint
    monkeypatch.setenv(RESULTS_ENV, "/srv/labflow/results")
    assert results_directory(None) == Path("/srv/labflow/results")


# -- slow: a facility's own servers ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_campaign_whose_worker_dies_finishes_on_the_other_worker(lab_folder, tmp_path, root):
    """`prefect server start` (SQLite), `prefect work-pool create`, two workers. The worker
    running a campaign is killed with its flow run (SIGKILL, mid-campaign); the deployment runs
    again and the other worker resumes the campaign from its ledger: nothing lost, nothing twice."""
    import subprocess
    import sys

    from labflow.store.campaign_dir import find_campaign_dir
    from labflow.testing.prefect import PrefectServer, PrefectWorker, create_process_pool

    (lab_folder / "recipes" / "long.yaml").write_text(_recipe("long", budget=16, seed=3))
    results = tmp_path / "results"
    with PrefectServer(tmp_path / "server") as server:
        env = server.env(PYTHONPATH=str(root))
        create_process_pool("lab-pcs", env)
        workers = [PrefectWorker("lab-pcs", name, env, tmp_path) for name in ("pc-1", "pc-2")]
        try:
            deploy = subprocess.run([sys.executable, "-m", "labflow.cli", "deploy", str(lab_folder / "recipes" / "long.yaml"),
                                     "--pool", "lab-pcs", "--results", str(results), "--run"],
                                    env=env, capture_output=True, text=True, timeout=180)
            assert deploy.returncode == 0, deploy.stdout + deploy.stderr
            (first,) = started_runs(deploy.stdout)
            # wait until the campaign is a few experiments in, then kill the machine that runs it
            deadline = time.monotonic() + 240
            while True:
                dirs = list(results.glob("long-*.labflow"))
                if dirs and len(find_campaign_dir(dirs[0]).history().finished) >= 4:
                    break
                assert time.monotonic() < deadline, "\n".join(w.output() for w in workers)
                time.sleep(0.2)
            import psutil

            holder = json.loads((dirs[0] / "lock.holder.json").read_text())["pid"]  # who holds the campaign (filelock keeps "lock" itself empty)
            (victim,) = [w for w in workers if holder in {p.pid for p in psutil.Process(w.proc.pid).children(recursive=True)}]
            before = find_campaign_dir(dirs[0]).history().finished_uids
            victim.kill()
            survivor = next(w for w in workers if w is not victim)

            from prefect import get_client
            from prefect.deployments import run_deployment
            from prefect.states import Crashed

            with _settings(server.api_url):
                with get_client(sync_client=True) as client:  # what a facility's zombie-run automation does
                    client.set_flow_run_state(first, Crashed(message="its worker died"), force=True)
                second = run_deployment("labflow-campaign/long", timeout=0)
                states = wait_for_flow_runs([second.id], timeout=300, workers=[survivor])
            assert states == {second.id: "Completed"}
        finally:
            for w in workers:
                w.stop()
    (h5,) = results.glob("long-*.h5")
    check = verify_campaign(h5, before=before)
    assert check["ok"] and check["complete"] and check["finished"] == 16, check
    assert check["lost"] == 0 and check["duplicated"] == 0
    assert len(list(results.glob("long-*.labflow"))) == 1  # resumed, not started over


def _settings(api_url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: api_url})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_facility_server_on_postgresql_runs_a_deployed_campaign(lab_folder, tmp_path, root):
    """A throwaway PostgreSQL cluster (initdb, pg_ctl), `prefect server start` on it through
    PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://..., a process work pool, a worker,
    and a deployed campaign: it completes, and its flow run is in PostgreSQL."""
    import subprocess
    import sys

    from labflow.testing.prefect import PostgresCluster, PrefectServer, PrefectWorker, create_process_pool, postgres_binaries

    if postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt install postgresql); the SQLite server is tested above")
    results = tmp_path / "results"
    with PostgresCluster() as pg, PrefectServer(tmp_path / "server", database_url=pg.url) as server:
        env = server.env(PYTHONPATH=str(root))
        create_process_pool("lab-pcs", env)
        worker = PrefectWorker("lab-pcs", "pc-1", env, tmp_path)
        try:
            deploy = subprocess.run([sys.executable, "-m", "labflow.cli", "deploy", str(lab_folder / "recipes" / "alpha.yaml"),
                                     "--pool", "lab-pcs", "--results", str(results), "--run"],
                                    env=env, capture_output=True, text=True, timeout=180)
            assert deploy.returncode == 0, deploy.stdout + deploy.stderr
            (run_id,) = started_runs(deploy.stdout)
            with _settings(server.api_url):
                assert wait_for_flow_runs([run_id], timeout=300, workers=[worker]) == {run_id: "Completed"}
        finally:
            worker.stop()

        import asyncio

        import asyncpg

        async def flow_runs_in_postgres() -> list[str]:
            conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="postgres", database=pg.database)
            try:
                return [str(r["id"]) for r in await conn.fetch("SELECT id FROM flow_run WHERE state_type = 'COMPLETED'")]
            finally:
                await conn.close()

        assert run_id in asyncio.run(flow_runs_in_postgres())
    (h5,) = results.glob("alpha-*.h5")
    assert verify_campaign(h5)["ok"]
