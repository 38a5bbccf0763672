"""A campaign killed (SIGKILL) while a manual station's work order is open: the chemist reports the
result while the campaign is down; the resumed campaign picks the report up, issues no second work
order for that experiment, and goes on."""

from __future__ import annotations

import sys
from pathlib import Path

from labflow.errors import ProvenanceError
from labflow.store.inbox import work_orders_view
from labflow.store.ledger import read_records
from labflow.store.provenance import read_campaign

from .helpers import campaign_dir, child_env, cli, start_forked, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from manual_helpers import write_bench  # noqa: E402


def _orders(cd, state: str) -> list[dict]:
    try:
        return [o for o in work_orders_view(cd.path) if o["state"] == state]
    except ProvenanceError:  # the ledger's header is not written yet: look again
        return []


def test_sigkill_with_a_work_order_open_then_a_report_while_down_is_picked_up_on_resume_and_nothing_is_issued_twice(tmp_path):
    recipe = write_bench(tmp_path, budget=2, timeout="2 min")
    out = tmp_path / "out"
    env = child_env(LABFLOW_USER="grace")
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=env)
    try:
        cd = wait_for(lambda: campaign_dir(out), 30, "the campaign directory")
        (first,) = wait_for(lambda: _orders(cd, "open"), 60, "a first work order")
    finally:
        proc.kill()  # SIGKILL while the chemist works on it
        proc.join(30)
    assert proc.exitcode == -9

    reported = cli("report-result", str(cd.path), first["id"], "--value", "product_yield=48percent", "--comment", "reported while down",
                   env=env)
    assert reported.returncode == 0 and "the campaign is not running" in reported.stdout, reported.stdout + reported.stderr
    assert [o["id"] for o in _orders(cd, "posted")] == [first["id"]]

    resumed = start_forked("resume", str(cd.path), "--quiet", env=env)
    try:
        (second,) = wait_for(lambda: _orders(cd, "open"), 60, "the next experiment's work order, after the resume")
        assert second["id"] == "WO-0002" and second["uid"] != first["uid"]
        done = cli("report-result", str(cd.path), "WO-0002", "--value", "product_yield=0.9", "--by", "heidi", env=env)
        assert done.returncode == 0 and "applied" in done.stdout, done.stdout + done.stderr
        resumed.join(120)
        assert resumed.exitcode == 0, resumed.err.read_text()
    finally:
        if resumed.exitcode is None:
            resumed.kill()
            resumed.join(30)
    records = read_records(cd.ledger_path)
    orders = [r for r in records if r.get("k") == "work_order"]
    assert [(o["id"], o["uid"]) for o in orders] == [("WO-0001", first["uid"]), ("WO-0002", second["uid"])]  # none issued twice
    assert orders[0]["deadline"] == first["deadline"]  # the resumed run waited on the same order
    starts = [r["uid"] for r in records if r.get("k") == "started"]
    assert starts == [first["uid"], first["uid"], second["uid"]]  # the cut experiment ran again, on the same order
    reports = [(a["target"], a["who"], a["outcome"]) for a in records if a.get("k") == "human"]
    assert reports == [("WO-0001", "grace", "applied"), ("WO-0002", "heidi", "applied")]
    rec = read_campaign(cd.provenance_path)
    exp = rec.experiments.set_index("uid")
    assert exp.loc[first["uid"], "product_yield"] == 48.0 and exp.loc[first["uid"], "repeated"] == 1
    assert exp.loc[second["uid"], "product_yield"] == 0.9
    assert list(exp["status"]) == ["completed", "completed"]
    assert list(rec.work_orders["id"]) == ["WO-0001", "WO-0002"]  # rebuilt from the ledger on resume: each once


def test_a_work_order_whose_deadline_passed_while_the_campaign_was_down_fails_its_experiment_on_resume(tmp_path):
    recipe = write_bench(tmp_path, budget=1, timeout="3 s")  # long enough to kill the campaign before it times out
    out = tmp_path / "out"
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet")
    try:
        cd = wait_for(lambda: campaign_dir(out), 30, "the campaign directory")
        wait_for(lambda: _orders(cd, "open"), 60, "the work order")
    finally:
        proc.kill()
        proc.join(30)
    assert not [r for r in read_records(cd.ledger_path) if r.get("k") == "finished"]
    wait_for(lambda: _orders(cd, "timed out"), 10, "the deadline to pass while the campaign is down")
    resumed = start_forked("resume", str(cd.path), "--quiet")
    resumed.join(120)
    assert resumed.exitcode == 0, resumed.err.read_text()
    records = read_records(cd.ledger_path)
    assert [o["id"] for o in records if o.get("k") == "work_order"] == ["WO-0001"]  # not issued again: it timed out
    (finished,) = [r for r in records if r.get("k") == "finished"]
    assert finished["obs"]["status"] == "failed"
    assert "work order WO-0001 on bench was not reported within its timeout of 3 s" in finished["obs"]["reason"]
