"""The Prefect UI as a third way to act: while a campaign runs as a Prefect flow, each suggestion
that waits for approval is a paused flow run with a form; submitting the form (what the UI's
Resume button does: ``resume_flow_run(id, run_input=...)``) is an act like ``labflow approve``.

These tests run a real Prefect server (the session's ``prefect_server``) and find the forms
through Prefect's client, as the UI does."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from labflow.executors.prefect_forms import FORM_TAG, campaign_tag, form_model, form_run_name, shown_values
from labflow.space import Categorical, Integer, Real, Space
from labflow.store.inbox import new_act
from labflow.store.provenance import read_campaign
from people_helpers import RunningCampaign, wait_for

LAB = """
name: furnace-lab
kind: simulated
stations: 1
landscape: {name: materials}
durations: {set: 5 s, synthesize: 20 min, measure: 5 min}
time_scale: 0
"""

RECIPE = """
name: furnace
lab: lab.yaml
parameters:
  - {{name: temperature, low: 100 degC, high: 300 degC}}
  - {{name: time, low: 1 min, high: 60 min}}
  - {{name: dopant_fraction, low: 0, high: 1}}
objectives:
  - {{name: product_yield, direction: maximize, unit: percent}}
planner: {{kind: sobol}}
budget: {budget}
seed: 0
execution: {{executor: prefect, timeout: 30 s}}
approval: {{mode: every, timeout: 2 h, on_timeout: skip}}
"""


def write_recipe(d: Path, budget: int) -> Path:
    (d / "lab.yaml").write_text(textwrap.dedent(LAB))
    p = d / "recipe.yaml"
    p.write_text(textwrap.dedent(RECIPE.format(budget=budget)))
    return p


def form_runs(campaign: RunningCampaign, state: str | None = None) -> list:
    """The campaign's form runs on the Prefect server (optionally only those in ``state``)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags

    campaign_id = campaign.records("campaign")[0]["campaign_id"]
    f = FlowRunFilter(tags=FlowRunFilterTags(all_=[FORM_TAG, campaign_tag(campaign_id)]))
    if state is not None:
        f.state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[state]))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=f)


def paused_form(campaign: RunningCampaign, uid: str):
    """The paused form run of the suggestion ``uid``, once the campaign has opened it."""
    name = form_run_name("furnace", uid)
    return wait_for(lambda: next((r for r in form_runs(campaign, "PAUSED") if r.name == name), None), 60, f"the form run {name}")


def submit(run, answer: dict) -> None:
    """What the Prefect UI's Resume button does with a filled form."""
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input=answer)


def test_a_waiting_suggestion_is_a_form_in_the_prefect_ui_and_the_answer_is_recorded(tmp_path, prefect_server):
    from prefect import get_client

    campaign = RunningCampaign(write_recipe(tmp_path, budget=2), tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    run = paused_form(campaign, first["uid"])
    keyset = run.state.state_details.run_input_keyset
    with get_client(sync_client=True) as client:
        schema = json.loads(client.read_flow_run_input(run.id, keyset["schema"]))
        description = json.loads(client.read_flow_run_input(run.id, keyset["description"]))
    props = schema["properties"]
    assert set(schema["required"]) == {"decision", "your_name"}
    assert props["temperature"]["title"] == "temperature [degC]" and "[100, 300] degC" in props["temperature"]["description"]
    assert props["temperature"]["default"].endswith(" degC") and props["time"]["default"].endswith(" min")
    assert "approval: every" in description and first["uid"] in description

    # A value the recipe's bounds refuse is ledgered as refused, and the suggestion gets a new form that says why.
    submit(run, {"decision": "edit", "your_name": "alice", "comment": "", "temperature": "700 K",
                 "time": props["time"]["default"], "dopant_fraction": props["dopant_fraction"]["default"]})
    refused = wait_for(lambda: next((a for a in campaign.records("human") if a.get("prefect_flow_run") == str(run.id)), None), 30,
                       "the campaign to ledger the form's answer")
    assert (refused["act"], refused["outcome"], refused["via"], refused["who"]) == ("edit", "refused", "prefect-ui", "alice")
    assert refused["id"] == str(run.id)  # one answer per form run: applied once, however often it is posted
    assert "outside the recipe's bounds [100, 300] degC" in refused["refusal"]
    second_form = wait_for(lambda: next((r for r in form_runs(campaign, "PAUSED") if r.id != run.id), None), 60, "a new form")
    with get_client(sync_client=True) as client:
        assert "was refused: temperature = '700 K'" in json.loads(client.read_flow_run_input(second_form.id, keyset["description"]))

    # An edit in another unit: converted, checked, recorded as the form's user, and what runs.
    submit(second_form, {"decision": "approve", "your_name": "alice", "comment": "a little cooler",
                         "temperature": "450 K", "time": props["time"]["default"], "dopant_fraction": props["dopant_fraction"]["default"]})
    edit = wait_for(lambda: next((a for a in campaign.records("human") if a.get("prefect_flow_run") == str(second_form.id)), None), 30,
                    "the campaign to ledger the edit")
    assert (edit["act"], edit["outcome"], edit["who"], edit["requested"]) == ("edit", "applied", "alice", {"temperature": "450 K"})
    assert edit["after"]["temperature"] == pytest.approx(176.85)

    # The next suggestion is approved from the command line instead: its form run is cancelled, not left paused.
    second = campaign.next_waiting(seen)
    other = paused_form(campaign, second["uid"])
    campaign.act(new_act("approve", target=second["uid"], who="bob", via="cli"))
    outcome = campaign.join()
    runs = {r.id: r for r in form_runs(campaign)}
    assert runs[other.id].state.type.value == "CANCELLED" and runs[other.id].state.message == "approve by bob via cli"
    assert runs[second_form.id].state.type.value == "COMPLETED" and "edit by alice" in runs[second_form.id].state.message
    assert not [r for r in runs.values() if r.state.type.value == "PAUSED"]
    with get_client(sync_client=True) as client:  # each form is a subflow run of the campaign's flow run, where the UI lists it
        parents = {client.read_task_run(r.parent_task_run_id).flow_run_id for r in runs.values()}
        assert [client.read_flow_run(p).name for p in parents] == [outcome.path.stem]
    exp = read_campaign(outcome.path).experiments
    assert list(exp["uid"]) == [first["uid"], second["uid"]] and exp["temperature"].iloc[0] == pytest.approx(176.85)
    assert list(read_campaign(outcome.path).human["via"]) == ["prefect-ui", "prefect-ui", "cli"]


def test_the_form_shows_each_parameter_with_its_unit_bounds_or_choices():
    space = Space([Real("temperature", 100, 300, unit="degC"), Integer("layers", 1, 5), Categorical("solvent", ["dmf", "dmso"]),
                   Real("comment", 0, 1)])
    shown = shown_values(space, {"temperature": 250.0, "layers": 2, "solvent": "dmso", "comment": 0.25})
    assert shown == {"temperature": "250 degC", "layers": "2", "solvent": "dmso", "comment": "0.25"}
    model = form_model(space, shown, description="**why**")
    schema = model.model_json_schema()
    assert schema["properties"]["solvent"]["enum"] == ["dmf", "dmso"] and schema["properties"]["solvent"]["default"] == "dmso"
    assert "a whole number" in schema["properties"]["layers"]["description"]
    assert schema["properties"]["comment_value"]["title"] == "comment"  # a parameter named like a form field keeps its own
    assert schema["properties"]["decision"]["enum"] == ["approve", "edit", "reject"]
    assert model._description == "**why**"


@pytest.mark.slow
def test_a_rejection_in_the_form_needs_a_reason_and_the_rejected_point_never_runs(tmp_path, prefect_server):
    campaign = RunningCampaign(write_recipe(tmp_path, budget=1), tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    run = paused_form(campaign, first["uid"])
    assert run.state.state_details.pause_timeout is not None  # the UI shows when the suggestion will be skipped (on_timeout: skip)
    submit(run, {"decision": "reject", "your_name": "bob", "comment": ""})  # no reason: nothing is posted, a new form says why
    again = wait_for(lambda: next((r for r in form_runs(campaign, "PAUSED") if r.id != run.id), None), 60, "a new form")
    assert campaign.records("human") == []
    submit(again, {"decision": "reject", "your_name": "bob", "comment": "precursor hazard"})
    rejected = wait_for(lambda: next(iter(campaign.records("human")), None), 30, "the rejection")
    assert (rejected["act"], rejected["outcome"], rejected["who"], rejected["comment"]) == ("reject", "applied", "bob", "precursor hazard")
    second = campaign.next_waiting(seen)
    submit(paused_form(campaign, second["uid"]), {"decision": "approve", "your_name": "bob", "comment": ""})
    outcome = campaign.join()
    ended = {r.id: r for r in form_runs(campaign)}
    assert ended[run.id].state.type.value == "COMPLETED" and "nothing was posted" in ended[run.id].state.message
    assert not [r for r in ended.values() if r.state.type.value == "PAUSED"]
    assert list(read_campaign(outcome.path).experiments["uid"]) == [second["uid"]]  # the rejected point never ran


@pytest.mark.slow
def test_a_suggestion_whose_approval_times_out_has_its_form_cancelled_with_the_reason(tmp_path, prefect_server):
    recipe = write_recipe(tmp_path, budget=1)
    recipe.write_text(recipe.read_text().replace("{mode: every, timeout: 2 h, on_timeout: skip}", "{mode: {first: 1}, timeout: 6 s, on_timeout: skip}"))
    campaign = RunningCampaign(recipe, tmp_path / "out")
    first = campaign.next_waiting(set())
    outcome = campaign.join()
    (ended,) = form_runs(campaign)  # opened within a second of the wait, cancelled when the campaign skipped the suggestion
    assert ended.name == form_run_name("furnace", first["uid"]) and ended.state.type.value == "CANCELLED"
    assert ended.state.message.startswith("the approval timed out")
    assert first["uid"] not in set(read_campaign(outcome.path).experiments["uid"])


@pytest.mark.slow
def test_a_form_answered_while_the_campaign_was_killed_is_applied_on_resume_and_never_asked_twice(tmp_path, prefect_server):
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    recipe = write_recipe(tmp_path, budget=1)
    out = tmp_path / "out"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "labflow.cli", "run", str(recipe), "--out", str(out), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        from labflow.store.campaign_dir import CampaignDir
        from people_helpers import _has_header

        cdir = wait_for(lambda: next((CampaignDir(d) for d in out.glob("*.labflow") if _has_header(d / "ledger.lfl")), None), 120,
                        "the campaign directory")
        watcher = RunningCampaign.__new__(RunningCampaign)  # only to read the ledger and find forms
        watcher.cdir = cdir
        first = watcher.next_waiting(set())
        run = paused_form(watcher, first["uid"])
    finally:
        proc.kill()  # SIGKILL: no form is cancelled, nothing is cleaned up
        proc.wait(30)
    assert proc.returncode == -9
    submit(run, {"decision": "approve", "your_name": "carol", "comment": "answered while the campaign was down"})
    resumed = RunningCampaign(recipe, out, resume=True)
    act = wait_for(lambda: resumed.error or next(iter(resumed.records("human")), None), 60, "the answer to be applied on resume")
    assert resumed.error is None, resumed.error
    assert (act["act"], act["outcome"], act["who"], act["via"]) == ("approve", "applied", "carol", "prefect-ui")
    outcome = resumed.join()
    assert list(read_campaign(outcome.path).experiments["uid"]) == [first["uid"]]
    forms = form_runs(resumed)
    assert [r.id for r in forms] == [run.id]  # no second form was opened for the suggestion
    assert forms[0].state.type.value == "COMPLETED" and "approve by carol" in forms[0].state.message


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
def test_a_person_answers_the_form_in_the_prefect_ui_in_a_real_browser(tmp_path):
    """Prefect's own UI (``prefect server start``) in headless chromium: the paused form run's
    Resume button opens the form; choosing approve with a changed temperature records an edit."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package 'chromium'): the Prefect UI test needs a browser")
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from labflow.store.campaign_dir import CampaignDir
    from labflow.testing.prefect import PrefectServer
    from people_helpers import _has_header

    recipe, out = write_recipe(tmp_path, budget=1), tmp_path / "out"
    with PrefectServer(tmp_path / "prefect", ui=True) as server, temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        proc = subprocess.Popen([sys.executable, "-m", "labflow.cli", "run", str(recipe), "--out", str(out), "--quiet"],
                                env=server.env(PREFECT_HOME=str(tmp_path / "client-home")), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            watcher = RunningCampaign.__new__(RunningCampaign)  # only to read the ledger and find forms
            watcher.cdir = wait_for(lambda: next((CampaignDir(d) for d in out.glob("*.labflow") if _has_header(d / "ledger.lfl")), None),
                                    120, "the campaign directory")
            first = watcher.next_waiting(set())
            run = paused_form(watcher, first["uid"])
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1600})
                    page.goto(f"http://127.0.0.1:{server.port}/runs/flow-run/{run.id}")
                    page.get_by_role("button", name="Resume").first.click()
                    form = page.get_by_role("dialog")
                    form.get_by_text(f"Experiment id: {first['uid']}").wait_for()  # the description above the form
                    assert "Why it waits: every suggestion is approved (approval: every)." in form.inner_text()
                    decision = form.locator(".p-select-button__control").first
                    decision.focus()
                    decision.press("ArrowDown")  # opens the choices
                    assert [o.inner_text() for o in page.get_by_role("option").all()] == ["approve", "edit", "reject"]
                    page.get_by_role("option", name="approve", exact=True).click()
                    fields = form.locator("textarea")  # your name, comment, then the parameters in the recipe's order
                    fields.nth(0).fill("dana")
                    fields.nth(1).fill("a little cooler")
                    assert fields.nth(2).input_value().endswith(" degC")
                    fields.nth(2).fill("450 K")
                    form.get_by_role("button", name="Submit").click()
                    form.wait_for(state="hidden")  # the UI closes the form once Prefect accepted it
                finally:
                    browser.close()
            act = wait_for(lambda: next(iter(watcher.records("human")), None), 60, "the campaign to ledger the form's answer")
            assert proc.wait(120) == 0, proc.stderr.read().decode()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        assert (act["act"], act["outcome"], act["who"], act["via"], act["requested"]) == ("edit", "applied", "dana", "prefect-ui",
                                                                                          {"temperature": "450 K"})
        assert act["after"]["temperature"] == pytest.approx(176.85)
        (ended,) = form_runs(watcher)
        assert ended.state.type.value == "COMPLETED" and "edit by dana" in ended.state.message
