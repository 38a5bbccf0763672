"""Planning where the compute is: each planning step as a flow run on another Prefect work pool.

The campaign (the orchestrator) keeps its ledger, stations and record here; a recipe's
``planner: {where: {pool: planning}}`` sends every planning step, with the planner's JSON
document, to a worker of the ``planning`` pool and adopts the state the planner asked in. Real
processes on loopback: the session's Prefect server, a process work pool, a `prefect worker
start` subprocess whose flow runs are processes of their own.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from labflow.errors import PlannerError, PlanningUnavailable, RecipeError
from labflow.store.campaign_dir import find_campaign_dir
from labflow.testing.crash import verify_campaign

LAB = """\
# Two simulated stations; the virtual executor runs them in simulated time (deterministic order).
name: planning-bench
kind: simulated
stations: 2
landscape: {name: branin, noise_std: {y: 0.0}}
durations: {set: 0 s, synthesize: 10 min, measure: 1 min}
"""


def recipe_text(*, planner: str = "sobol", budget: int = 4, where: str = "", options: str = "") -> str:
    return f"""\
name: planned-elsewhere
lab: planning_bench
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner:
  kind: {planner}
  batch: 2
{options}{where}budget: {budget}
seed: 11
execution: {{executor: virtual, timeout: 1 min}}
"""


def write_recipe(folder: Path, name: str, text: str) -> Path:
    (folder / "configs").mkdir(exist_ok=True)
    (folder / "configs" / "planning_bench.yaml").write_text(LAB)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def suggestions(h5: Path) -> list[dict]:
    """The ledgered suggestions of a campaign: parameters, generators, the planner's state after asking
    (its summary: RNG position, settings, model state; the state hash also covers the observations'
    uids, which differ from run to run), the generator it reported and where it computed."""
    history = find_campaign_dir(h5).history()
    return [{"params": [c["params"] for c in s["candidates"]], "generators": [c["generator"] for c in s["candidates"]],
             "state": {k: v for k, v in s["state"].items() if k != "last_decision"}, "decided": s["state"]["last_decision"]["generator"],
             "n_observations": s["n_observations"], "where": s["state"]["last_decision"].get("where")} for s in history.suggestions]


SAME = ("params", "generators", "state", "decided", "n_observations")


def run(path: Path, out: Path):
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    return run_recipe(load_recipe(path), out, handle_signals=False)


def ensure_pool(name: str) -> None:
    """A process work pool on the session's server (created once)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            pass


@pytest.fixture
def planning_worker(prefect_server, tmp_path, root):
    """Work pool `planning` and one `prefect worker start --pool planning` subprocess (polling every second)."""
    from prefect.settings import PREFECT_API_URL

    from labflow.testing.prefect import PrefectWorker, prefect_env

    ensure_pool("planning")
    env = prefect_env(PREFECT_API_URL.value(), tmp_path / "worker-home", PYTHONPATH=str(root))
    worker = PrefectWorker("planning", "gpu-box", env, tmp_path)
    yield worker
    worker.stop()


# -- the planning step itself, in one process ---------------------------------------------------


def test_a_planning_step_shipped_as_json_suggests_what_the_planner_would_here():
    """plan_request -> answer_request -> adopt: the same candidates, the same state hash, step after
    step, for a Bayesian planner whose model state (fitted hyperparameters) changes as it asks."""
    import torch

    from labflow.executors.remote_planning import RemotePlanning, answer_request, plan_request
    from labflow.objectives import Objective
    from labflow.planners import make_planner
    from labflow.records import Observation, Status
    from labflow.space import Real, Space

    torch.set_num_threads(1)
    space = Space([Real("x1", -5, 10), Real("x2", 0, 15)])

    def branin(p):
        return (p["x2"] - 5.1 / (4 * math.pi**2) * p["x1"] ** 2 + 5 / math.pi * p["x1"] - 6) ** 2 + 10

    def campaign(shipped: bool) -> list:
        planner = make_planner("bayesian", space, [Objective("y", "minimize", "")], seed=3, n_initial=3, num_restarts=2, raw_samples=32)
        trace = []
        for step in range(5):
            if shipped:
                answer = answer_request(plan_request(planner, 1, []))
                RemotePlanning._adopt(planner, answer)
                params = [c["params"] for c in answer["candidates"]]
            else:
                params = [c.params for c in planner.ask(1, [])]
            trace.append((params, planner.state_hash(), planner.last_generator))
            planner.tell([Observation(f"u{step}-{i}", p, {"y": branin(p)}, Status.COMPLETED) for i, p in enumerate(params)])
        return trace

    here, shipped = campaign(False), campaign(True)
    assert here == shipped
    assert {g for _, _, g in here} >= {"sobol", "qLogNEI"}  # both the initial design and the model's picks were shipped


def test_a_planning_request_from_another_labflow_is_refused():
    import json

    from labflow.executors.remote_planning import answer_request, plan_request
    from labflow.objectives import Objective
    from labflow.planners import make_planner
    from labflow.space import Real, Space

    planner = make_planner("sobol", Space([Real("x", 0, 1)]), [Objective("y")], seed=1)
    request = json.loads(plan_request(planner, 1, []))
    request["state_hash"] = "0" * 16
    with pytest.raises(PlannerError, match="another labflow version"):
        answer_request(json.dumps(request))
    with pytest.raises(PlannerError, match="not a labflow plan request"):
        answer_request(json.dumps({"n": 1}))


def test_the_recipe_says_where_the_planner_computes(tmp_path):
    from labflow.recipe import load_recipe

    here = load_recipe(write_recipe(tmp_path, "here", recipe_text()))
    there = load_recipe(write_recipe(tmp_path, "there", recipe_text(where="  where: {pool: gpu-box, timeout: 90 s, fallback: local}\n")))
    assert here.spec.planner.where is None and "where" not in here.to_dict()["planner"]  # recipes that plan here keep their hash
    assert (there.spec.planner.where.pool, there.spec.planner.where.timeout_s, there.spec.planner.where.fallback) == ("gpu-box", 90.0, "local")
    with pytest.raises(RecipeError) as bad:
        load_recipe(write_recipe(tmp_path, "bad", recipe_text(where="  where: {pool: gpu-box, timeout: 0 s, fallback: never}\n")))
    text = str(bad.value)
    assert "planner.where.timeout" in text and "positive duration" in text
    assert "planner.where.fallback" in text


def test_plan_on_overrides_the_recipes_pool_and_is_recorded(tmp_path):
    from labflow.launch import apply_overrides
    from labflow.recipe import load_recipe

    here = load_recipe(write_recipe(tmp_path, "here", recipe_text()))
    there, overrides = apply_overrides(here, plan_on="gpu-box")
    assert there.spec.planner.where.pool == "gpu-box" and there.spec.planner.where.fallback == "error"
    assert overrides == {"plan_on": {"recipe": None, "run": "gpu-box"}} and there.hash != here.hash
    written = load_recipe(write_recipe(tmp_path, "written", recipe_text(where="  where: {pool: a, fallback: local}\n")))
    moved, overrides = apply_overrides(written, plan_on="b")
    assert (moved.spec.planner.where.pool, moved.spec.planner.where.fallback) == ("b", "local")
    assert overrides == {"plan_on": {"recipe": "a", "run": "b"}}
    assert apply_overrides(written, plan_on="a") == (written, {})


# -- real server and worker -------------------------------------------------------------------------


@pytest.mark.timeout(600)  # the worker starts a process (labflow, Prefect) per planning step: slow on a busy machine
def test_a_campaign_planning_on_another_pool_suggests_exactly_what_it_suggests_here(planning_worker, tmp_path):
    """The same recipe and seed, planned here and on a worker of pool `planning`: the same
    suggestions, generators and planner states, both records complete; the remote ones say
    where they were computed (pool, flow run), and each planning flow run completed on the server."""
    from prefect import get_client

    here = run(write_recipe(tmp_path, "here", recipe_text()), tmp_path / "here")
    there = run(write_recipe(tmp_path, "there", recipe_text(where="  where: {pool: planning, timeout: 4 min}\n")), tmp_path / "there")

    for outcome in (here, there):
        check = verify_campaign(outcome.path)
        assert check["ok"] and check["complete"] and check["finished"] == 4, check
    local, remote = suggestions(here.path), suggestions(there.path)
    assert len(local) == len(remote) == 2
    assert [{k: s[k] for k in SAME} for s in local] == [{k: s[k] for k in SAME} for s in remote]
    assert all(s["where"] is None for s in local)
    assert {s["where"]["computed"] for s in remote} == {"remote"}
    assert {s["where"]["pool"] for s in remote} == {"planning"}
    with get_client(sync_client=True) as client:
        for s in remote:
            flow_run = client.read_flow_run(s["where"]["flow_run"])
            assert flow_run.state.is_completed(), flow_run.state
            assert flow_run.work_pool_name == "planning"


def test_a_pool_without_workers_stops_the_campaign_with_a_clear_error_or_plans_here(prefect_server, tmp_path):
    """No worker takes the planning step: after the timeout the flow run is cancelled and the
    campaign stops, resumable, naming the pool and the timeout; with `fallback: local` it plans
    here and records why."""
    from prefect import get_client

    ensure_pool("nobody-home")
    stuck = write_recipe(tmp_path, "stuck", recipe_text(where="  where: {pool: nobody-home, timeout: 2 s}\n"))
    t0 = time.monotonic()
    with pytest.raises(PlanningUnavailable) as err:
        run(stuck, tmp_path / "stuck")
    assert time.monotonic() - t0 < 120
    assert "work pool 'nobody-home' was never picked up by a worker after 2 s" in err.value.message
    assert "labflow resume" in err.value.hint
    (cdir,) = (tmp_path / "stuck").glob("*.labflow")
    history = find_campaign_dir(cdir).history()
    assert history.suggestions == [] and not history.end["complete"] and "PlanningUnavailable" in history.end["reason"]
    run_id = err.value.message.split("(")[1].split(")")[0]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_cancelled()

    fallback = write_recipe(tmp_path, "fallback", recipe_text(budget=2, where="  where: {pool: nobody-home, timeout: 1 s, fallback: local}\n"))
    outcome = run(fallback, tmp_path / "fallback")
    assert verify_campaign(outcome.path)["complete"]
    (only,) = suggestions(outcome.path)
    assert only["where"]["computed"] == "local" and only["where"]["fallback_from"] == "nobody-home"
    assert "never picked up" in only["where"]["reason"]


def test_a_pool_that_does_not_exist_is_refused_before_anything_is_written(prefect_server, tmp_path):
    from typer.testing import CliRunner

    from labflow.cli import app

    with pytest.raises(PlanningUnavailable) as err:
        run(write_recipe(tmp_path, "nopool", recipe_text(where="  where: {pool: no-such-pool}\n")), tmp_path / "out")
    assert "no such work pool" in err.value.message
    assert "prefect work-pool create no-such-pool --type process" in err.value.hint
    assert not (tmp_path / "out").exists()

    done = CliRunner().invoke(app, ["run", str(write_recipe(tmp_path, "here", recipe_text())), "--out", str(tmp_path / "cli"),
                                    "--plan-on", "no-such-pool", "--quiet"])
    assert done.exit_code == 1, done.output
    assert "no such work pool" in done.output and "hint:" in done.output and "prefect work-pool create no-such-pool" in done.output
    assert not (tmp_path / "cli").exists() or not list((tmp_path / "cli").iterdir())


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_bayesian_campaign_planning_on_another_pool_matches_the_one_planned_here(planning_worker, tmp_path):
    """A Bayesian planner past its initial design (GP fits on the worker): identical suggestions and
    planner states (fitted hyperparameters included)."""
    options = "  options: {n_initial: 2, num_restarts: 2, raw_samples: 32}\n"
    here = run(write_recipe(tmp_path, "here", recipe_text(planner="bayesian", budget=8, options=options)), tmp_path / "here")
    there = run(write_recipe(tmp_path, "there", recipe_text(planner="bayesian", budget=8, options=options,
                                                             where="  where: {pool: planning, timeout: 5 min}\n")), tmp_path / "there")
    local, remote = suggestions(here.path), suggestions(there.path)
    assert [{k: s[k] for k in SAME} for s in local] == [{k: s[k] for k in SAME} for s in remote]
    assert {g for s in remote for g in s["generators"]} >= {"sobol", "qLogNEI"}
    assert {s["where"]["computed"] for s in remote} == {"remote"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_campaign_stopped_for_want_of_a_planning_worker_resumes_when_one_is_back(prefect_server, tmp_path, root):
    """No worker on pool `late-planning`: the first planning step times out and the campaign stops;
    once a worker runs, `labflow resume` finishes it, with the suggestions a campaign planned here makes."""
    from prefect.settings import PREFECT_API_URL

    from labflow.launch import resume_campaign
    from labflow.testing.prefect import PrefectWorker, prefect_env

    ensure_pool("late-planning")
    with pytest.raises(PlanningUnavailable):
        run(write_recipe(tmp_path, "late", recipe_text(where="  where: {pool: late-planning, timeout: 90 s}\n")), tmp_path / "late")
    (cdir,) = (tmp_path / "late").glob("*.labflow")
    worker = PrefectWorker("late-planning", "gpu-late", prefect_env(PREFECT_API_URL.value(), tmp_path / "worker-home", PYTHONPATH=str(root)), tmp_path)
    try:
        resumed = resume_campaign(cdir, handle_signals=False)
    finally:
        worker.stop()
    assert verify_campaign(resumed.path)["complete"]
    here = run(write_recipe(tmp_path, "here", recipe_text()), tmp_path / "here")
    local, remote = suggestions(here.path), suggestions(resumed.path)
    assert [{k: s[k] for k in SAME} for s in local] == [{k: s[k] for k in SAME} for s in remote]
    assert {s["where"]["computed"] for s in remote} == {"remote"}
