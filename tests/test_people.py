"""People in the loop: a chemist approves, edits or rejects suggestions, an operator adds a point,
someone flags an outlier -- each act a ledger record, acted on by the running campaign."""

from __future__ import annotations

import json
import time

import h5py
import pytest

from labflow.campaign.human import RefusedAct, check_point, is_outside_seen_region
from labflow.errors import RecipeError
from labflow.recipe import load_recipe
from labflow.sim.base import Input
from labflow.space import Integer, Real, Space
from labflow.store.inbox import new_act, people_view, post_act
from labflow.store.provenance import read_campaign
from people_helpers import RunningCampaign, write_recipe

def test_nothing_runs_before_approval_and_every_act_is_recorded_and_acted_on(tmp_path):
    campaign = RunningCampaign(write_recipe(tmp_path, budget=3), tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    time.sleep(0.6)  # the station idles: nothing starts while the only suggestion waits
    assert campaign.records("started") == []
    assert people_view(campaign.cdir.path)["waiting"] == [first] and "approval: every" in first["why"]

    edit = campaign.act(new_act("edit", target=first["uid"], who="alice", after={"x1": "2.5"}, comment="closer to the known optimum"))
    assert edit["outcome"] == "applied" and edit["after"] == {"x1": 2.5, "x2": first["params"]["x2"]} and edit["before"] == first["params"]
    second = campaign.next_waiting(seen)
    rejected = campaign.act(new_act("reject", target=second["uid"], who="bob", comment="precursor hazard at this point"))
    assert rejected["outcome"] == "applied"
    refused = campaign.act(new_act("approve", target=second["uid"], who="carol"))  # too late: it was rejected
    assert refused["outcome"] == "refused" and "rejected" in refused["refusal"]
    third = campaign.next_waiting(seen)
    bad_edit = campaign.act(new_act("edit", target=third["uid"], who="alice", after={"x1": "12"}))
    assert bad_edit["outcome"] == "refused" and "outside the recipe's bounds [-5, 10]" in bad_edit["refusal"]
    assert campaign.act(new_act("approve", target=third["uid"], who="alice"))["outcome"] == "applied"
    campaign.next_waiting(seen)  # the fourth suggestion waits; an operator's point runs instead
    added = campaign.act(new_act("add", target="operator-point-1", who="dave", after={"x1": "3.1", "x2": 2.2}, comment="known good"))
    assert added["outcome"] == "applied"
    outcome = campaign.join()

    rec = read_campaign(outcome.path)
    exp = rec.experiments.set_index("uid")
    assert list(exp.index) == [first["uid"], third["uid"], "operator-point-1"]
    assert exp.loc[first["uid"], "x1"] == 2.5  # the edit is what ran and what the planner learned
    finished = {r["uid"]: r["obs"]["params"] for r in campaign.records("finished")}
    assert finished[first["uid"]]["x1"] == 2.5
    assert exp.loc["operator-point-1", "generator"] == "operator"
    started = {r["uid"] for r in campaign.records("started")}
    assert second["uid"] not in started  # the rejected suggestion never ran
    with h5py.File(outcome.path, "r") as f:
        starts = [json.loads(d) for n, d in zip(f["documents/name"].asstr()[:], f["documents/doc"].asstr()[:]) if n == "start"]
    by_uid = {s["experiment_uid"]: s for s in starts}
    assert (by_uid["operator-point-1"]["source"], by_uid["operator-point-1"]["approved_by"]) == ("operator", "dave")
    assert (by_uid[first["uid"]]["source"], by_uid[first["uid"]]["approved_by"]) == ("planner", "alice")
    acts = rec.human
    assert list(acts["act"]) == ["edit", "reject", "approve", "edit", "approve", "add"]
    assert list(acts["outcome"]) == ["applied", "applied", "refused", "refused", "applied", "applied"]
    assert list(acts["who"]) == ["alice", "bob", "carol", "alice", "alice", "dave"]
    assert acts.iloc[1]["comment"] == "precursor hazard at this point"
    assert rec.summary()["human_acts"][0]["act"] == "edit"


def test_a_rejected_point_is_never_proposed_again(tmp_path):
    # A 2 x 2 grid: the random planner would draw the rejected point again within a few asks.
    recipe = write_recipe(tmp_path, budget=4, approval="approval: {mode: every}")
    text = recipe.read_text().replace("{name: x1, low: -5, high: 10}", "{name: x1, type: integer, low: 0, high: 1}")
    recipe.write_text(text.replace("{name: x2, low: 0, high: 15}", "{name: x2, type: integer, low: 0, high: 1}").replace("sobol", "random"))
    campaign = RunningCampaign(recipe, tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    campaign.act(new_act("reject", target=first["uid"], who="bob", comment="not this one"))
    for _ in range(4):
        w = campaign.next_waiting(seen)
        assert w["params"] != first["params"]
        campaign.act(new_act("approve", target=w["uid"], who="bob"))
    campaign.join()
    ran = [r["params"] for r in campaign.records("started")]
    assert len(ran) == 4 and first["params"] not in ran
    assert all(w["params"] != first["params"] for w in campaign.records("waiting")[1:])


def test_an_outlier_annotation_takes_the_point_out_of_the_model_and_keeps_it_in_the_record(tmp_path):
    campaign = RunningCampaign(write_recipe(tmp_path, budget=3, approval="approval: {mode: {first: 2}}"), tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    campaign.act(new_act("approve", target=first["uid"], who="alice"))
    second = campaign.next_waiting(seen)
    note = campaign.act(new_act("annotate", target=first["uid"], who="erin", after={"flag": "outlier"}, comment="cracked film"))
    assert note["outcome"] == "applied" and note["before"]["status"] == "completed"
    campaign.act(new_act("approve", target=second["uid"], who="alice"))
    outcome = campaign.join()  # the third suggestion needs no approval (first: 2)
    assert len(campaign.records("waiting")) == 2
    rec = read_campaign(outcome.path)
    assert first["uid"] in set(rec.experiments["uid"])  # nothing deleted
    from labflow.report import build_report

    html = build_report(outcome.path, tmp_path / "report", baselines=False, model=False, dpi=40).html.read_text()
    assert "people&#x27;s acts (3)" in html or "people's acts (3)" in html
    assert "cracked film" in html and "erin" in html
    # Resume replays the annotation: the planner rebuilt from the ledger does not learn from the outlier.
    from labflow.launch import build_planner, recipe_from_header, restore_planner
    from labflow.campaign.human import ApprovalRules, PeopleInTheLoop

    history = campaign.cdir.history()
    planner = build_planner(recipe_from_header(history.header))
    restore_planner(planner, history)
    assert first["uid"] in {o.uid for o in planner.completed()}
    people = PeopleInTheLoop(inbox=None, rules=ApprovalRules(), space=planner.space)

    class _Campaign:  # what attach() reads of a campaign
        queue: list = []
        results: list = []

        def __init__(self):
            from labflow.campaign.policy import FailureMemory
            from labflow.campaign.state import CampaignState

            self.planner, self.failures, self.state, self.journal = planner, FailureMemory(), CampaignState(budget=3), None
            self.events: list[str] = []

        def _emit(self, event):
            self.events.append(event)

    people.attach(_Campaign(), history)
    assert first["uid"] not in {o.uid for o in planner.completed()}
    assert len(planner.train_data()[1]) == 2
    outlier = next(o for o in planner.observations if o.uid == first["uid"])
    assert outlier.status.value == "invalid" and "annotated outlier by erin: cracked film" == outlier.reason


def test_values_people_give_are_checked_against_bounds_units_and_device_limits():
    space = Space([Real("temperature", 100, 300, unit="degC"), Integer("layers", 1, 5)])
    limits = {"temperature": Input("temperature", 300.0, 550.0, unit="K")}  # the furnace stops at 276.85 degC
    assert check_point(space, limits, {"temperature": "250 degC", "layers": 2}) == {"temperature": 250.0, "layers": 2}
    assert check_point(space, limits, {"temperature": "500 K"}, base={"temperature": 150.0, "layers": 3})["temperature"] == pytest.approx(226.85)
    with pytest.raises(RefusedAct, match=r"breaks the device limit \[300, 550\] K"):
        check_point(space, limits, {"temperature": "290 degC", "layers": 2})
    with pytest.raises(RefusedAct, match=r"outside the recipe's bounds \[100, 300\] degC"):
        check_point(space, limits, {"temperature": "20 degC", "layers": 2})
    with pytest.raises(RefusedAct, match="dimension"):
        check_point(space, limits, {"temperature": "3 m", "layers": 2})
    with pytest.raises(RefusedAct, match=r"unknown parameter\(s\) \['pressure'\]"):
        check_point(space, limits, {"pressure": "1 bar"})
    with pytest.raises(RefusedAct, match=r"missing value\(s\) for \['layers'\]"):
        check_point(space, limits, {"temperature": 200})
    with pytest.raises(RefusedAct, match="not a whole number"):
        check_point(space, limits, {"temperature": 200, "layers": 2.5})
    assert is_outside_seen_region(space, {"temperature": 250.0, "layers": 2}, []) == "nothing has been measured yet"
    seen = [{"temperature": 200.0, "layers": 1}, {"temperature": 260.0, "layers": 3}]
    assert is_outside_seen_region(space, {"temperature": 250.0, "layers": 2}, seen) == ""
    assert "temperature = 280 degC lies outside the measured range [200, 260] degC" in is_outside_seen_region(
        space, {"temperature": 280.0, "layers": 2}, seen)


@pytest.mark.parametrize(("approval", "field", "message"), [
    ("approval: {mode: sometimes}", "approval.mode", "unknown approval mode 'sometimes'"),
    ("approval: {mode: {last: 3}}", "approval.mode", "must be {first: N}"),
    ("approval: {mode: {first: 0}}", "approval.mode", "N >= 1"),
    ("approval: {mode: every, timeout: -1 h}", "approval.timeout", "expected a positive duration"),
    ("approval: {mode: every, timeout: 2 m}", "approval.timeout", "has dimension [length], expected [time]"),
    ("approval: {mode: every, timeout: 3 kg}", "approval.timeout", "dimension"),
    ("approval: {mode: every, on_timeout: retry}", "approval.on_timeout", "'skip' or 'wait'"),
])
def test_a_bad_approval_section_is_refused_naming_the_field(tmp_path, approval, field, message):
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, approval=approval))
    text = "\n".join(str(p) for p in info.value.problems)
    assert field in text and message in text, text


def test_recipes_without_approval_keep_their_hash(tmp_path):
    plain = load_recipe(write_recipe(tmp_path, approval=""))
    assert "approval" not in plain.to_dict()
    gated = load_recipe(write_recipe(tmp_path, approval="approval: {mode: outside_seen_region, timeout: 30 min}"))
    assert gated.hash != plain.hash and gated.spec.approval.timeout_s == 1800.0


def test_a_timed_out_suggestion_is_skipped_and_recorded(tmp_path):
    recipe = write_recipe(tmp_path, budget=1, approval="approval: {mode: {first: 1}, timeout: 1 s, on_timeout: skip}")
    campaign = RunningCampaign(recipe, tmp_path / "out")
    first = campaign.next_waiting(set())
    outcome = campaign.join()
    acts = read_campaign(outcome.path).human
    assert list(acts["act"]) == ["expire"] and acts.iloc[0]["who"] == "labflow" and acts.iloc[0]["target"] == first["uid"]
    assert first["uid"] not in set(read_campaign(outcome.path).experiments["uid"])


def test_approval_on_the_prefect_executor(tmp_path, prefect_server):
    campaign = RunningCampaign(write_recipe(tmp_path, budget=2, executor="prefect"), tmp_path / "out")
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    time.sleep(0.5)
    assert campaign.records("started") == []  # the flow run waits: no experiment task was submitted
    campaign.act(new_act("approve", target=first["uid"], who="alice"))
    second = campaign.next_waiting(seen)
    campaign.act(new_act("reject", target=second["uid"], who="alice", comment="too hot for this furnace"))
    third = campaign.next_waiting(seen)
    campaign.act(new_act("edit", target=third["uid"], who="alice", after={"x2": "7.5"}))
    outcome = campaign.join()
    exp = read_campaign(outcome.path).experiments
    assert list(exp["uid"]) == [first["uid"], third["uid"]] and list(exp["x2"])[1] == 7.5
    # The Prefect UI showed the waiting suggestions as a markdown artifact of the flow run.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["people-approvals"])))
    texts = [a.data for a in artifacts]
    assert any(f"`{third['uid'][:8]}`" in t and "labflow approve" in t for t in texts), texts


def test_operator_points_from_a_csv_run_first_and_are_marked_and_mistakes_are_exit_2(tmp_path):
    from typer.testing import CliRunner

    from labflow.cli import app

    runner = CliRunner()
    campaign = RunningCampaign(write_recipe(tmp_path, budget=2), tmp_path / "out")
    waiting = campaign.next_waiting(set())  # the planner's first suggestion waits; the operator's points need no approval
    where = str(campaign.cdir.path)
    listed = runner.invoke(app, ["pending", where], terminal_width=200)
    assert listed.exit_code == 0 and waiting["uid"][:8] in listed.output and "waiting for approval (1)" in listed.output

    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2\n1.0,3.0\n11,2\n")
    result = runner.invoke(app, ["add", where, "--csv", str(bad)])
    assert result.exit_code == 2 and "row 3" in result.output and "outside the recipe's bounds [-5, 10]" in result.output
    assert "hint:" in result.output
    result = runner.invoke(app, ["add", where, "--param", "x1=1", "--param", "pressure=2bar"])
    assert result.exit_code == 2 and "unknown parameter(s) ['pressure']" in result.output
    result = runner.invoke(app, ["approve", where, "ffffffff"])
    assert result.exit_code == 2 and "no suggestion waiting for approval with id 'ffffffff'" in result.output

    good = tmp_path / "points.csv"
    good.write_text("x1,x2\n1.0,3.0\n-2.5,12\n")
    result = runner.invoke(app, ["add", where, "--csv", str(good), "--as", "olga", "--why", "known good region"])
    assert result.exit_code == 0, result.output
    assert result.output.count("applied") == 2
    outcome = campaign.join()
    rec = read_campaign(outcome.path)
    assert list(rec.experiments["generator"]) == ["operator", "operator"]
    assert [list(p) for p in rec.experiments[["x1", "x2"]].to_numpy()] == [[1.0, 3.0], [-2.5, 12.0]]
    assert list(rec.human["who"]) == ["olga", "olga"] and set(rec.human["comment"]) == {"known good region"}
    shown = runner.invoke(app, ["inspect", str(outcome.path)], terminal_width=200)
    assert shown.exit_code == 0 and "people's acts (2)" in shown.output and "olga" in shown.output


def test_a_malformed_act_in_the_inbox_is_ignored_and_a_bad_value_refused_never_crashing_the_campaign(tmp_path):
    campaign = RunningCampaign(write_recipe(tmp_path, budget=1), tmp_path / "out")
    first = campaign.next_waiting(set())
    post_act(campaign.cdir.path, {"k": "human", "act": "approve", "target": first["uid"]})  # no id: not from labflow's tools
    weird = campaign.act(new_act("edit", target=first["uid"], who="alice", after={"x1": [1, 2]}))
    assert weird["outcome"] == "refused" and "x1 = [1, 2]" in weird["refusal"]
    assert campaign.act(new_act("approve", target=first["uid"], who="alice"))["outcome"] == "applied"
    campaign.join()
    assert [a["act"] for a in campaign.records("human")] == ["edit", "approve"]
