"""The live display while a campaign runs, and Prefect artifacts when it runs in a Prefect flow."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from labflow.artifacts import CampaignArtifacts, artifact_key, in_prefect_flow
from labflow.live import LiveDisplay

ROOT = Path(__file__).resolve().parents[2]


def _recipe(budget: int = 6):
    from labflow.recipe import load_recipe

    return load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(budget=budget, planner={"kind": "sobol"})


def _text(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_live_display_shows_stations_last_results_and_best(tmp_path):
    from labflow.launch import run_recipe

    recipe = _recipe()
    console = Console(file=io.StringIO(), width=200, color_system=None)
    display = LiveDisplay(recipe, console=console, enabled=True)
    frames: list[str] = []

    def spy(event, state):
        display.update(event, state)
        if event == "submitted" and state.busy:
            frames.append(_text(display.render()))

    with display:
        outcome = run_recipe(recipe, tmp_path, executor="virtual", listeners=[spy])
    final = _text(display.render())
    assert outcome.state.finished == 6
    assert any("busy" in f for f in frames)                     # stations shown busy while experiments run
    assert "station1" in final and "station2" in final and "idle" in final
    assert "last 5 results" in final and "completed" in final   # the last results, newest first
    assert "best so far" in final and "product_yield" in final and "[percent]" in final and "[degC]" in final  # unit under the name
    assert "lab time" in final                                  # virtual time is shown
    assert sum(st["done"] for st in display.stations.values()) == 6


def test_artifacts_listener_is_silent_outside_a_flow():
    from labflow.campaign import CampaignState

    listener = CampaignArtifacts(_recipe())
    assert not in_prefect_flow()
    listener("end", CampaignState(budget=1))
    assert listener.published == []
    assert artifact_key("Quick_Start v2", "best") == "quick-start-v2-best"


def test_artifacts_in_a_prefect_flow_run(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from labflow.launch import run_recipe

    recipe = _recipe(budget=3).replace(name="artifacts-test")
    listener = CampaignArtifacts(recipe, report_dir=None)
    outcome = run_recipe(recipe, tmp_path, executor="prefect", listeners=[listener])
    assert outcome.state.completed == 3
    assert "artifacts-test-best" in listener.published and "artifacts-test-summary" in listener.published
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=listener.published)))
    kinds = {a.key: a.type for a in found}
    assert kinds.get("artifacts-test-best") == "table" and kinds.get("artifacts-test-summary") == "markdown"
    summary = next(a for a in found if a.key == "artifacts-test-summary")
    assert "3 completed, 0 failed" in summary.data and "product_yield" in summary.data


def test_artifacts_link_the_report_built_at_the_end(prefect_server, tmp_path):
    from prefect import flow

    from labflow.campaign import CampaignState
    from labflow.records import Observation

    from .conftest import write_two_objective_file

    path = write_two_objective_file(tmp_path / "mo.h5", n=10)
    recipe = _recipe()
    listener = CampaignArtifacts(recipe, path, report_dir=tmp_path / "report")
    state = CampaignState(budget=10, completed=10,
                          best=Observation("u1", {"temperature": 150.0, "time": 10.0, "dopant_fraction": 0.3}, {"product_yield": 61.0}))

    @flow(name="labflow-artifacts-link-test", persist_result=False)
    def body():
        listener("end", state)

    body()
    assert listener.report_html is not None and listener.report_html.is_file()
    assert "artifacts-test" not in listener.published[-1] and listener.published[-1].endswith("-report")
