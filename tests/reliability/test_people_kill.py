"""A campaign killed (SIGKILL) while a suggestion waits for approval resumes still waiting for the
same suggestion; an approval given before the kill is never asked again. People act with the CLI,
from other processes, while the campaign runs."""

from __future__ import annotations

import time

from labflow.errors import ProvenanceError
from labflow.store.inbox import people_view
from labflow.store.ledger import read_records

from .helpers import campaign_dir, child_env, cli, start_forked, wait_for, write_recipe


def _waiting(cd) -> list[dict]:
    try:
        return people_view(cd.path)["waiting"]
    except ProvenanceError:  # the ledger's header is not written yet: look again
        return []


def test_sigkill_while_waiting_then_resume_still_waits_and_asks_nothing_twice(tmp_path):
    recipe = write_recipe(tmp_path, name="gated", budget=2, stations=1, planner="sobol")
    recipe.write_text(recipe.read_text() + "approval: {mode: every, timeout: 2 h, on_timeout: wait}\n")
    out = tmp_path / "out"
    env = child_env(LABFLOW_USER="alice")
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=env)
    try:
        cd = wait_for(lambda: campaign_dir(out), 30, "the campaign directory")
        (first,) = wait_for(lambda: _waiting(cd), 60, "a first suggestion waiting")
        approved = cli("approve", str(cd.path), first["uid"][:8], "--comment", "fine", env=env)
        assert approved.returncode == 0 and "applied" in approved.stdout, approved.stdout + approved.stderr
        (second,) = wait_for(lambda: [w for w in _waiting(cd) if w["uid"] != first["uid"]], 60, "a second suggestion waiting")
        listed = cli("pending", str(cd.path), env=env)
        assert listed.returncode == 0 and second["uid"][:8] in listed.stdout
    finally:
        proc.kill()  # SIGKILL while the second suggestion waits
        proc.join(30)
    assert proc.exitcode == -9
    records = read_records(cd.ledger_path)
    assert [r["uid"] for r in records if r.get("k") == "started"] == [first["uid"]]

    resumed = start_forked("resume", str(cd.path), "--quiet", env=env)
    try:
        wait_for(lambda: any(r.get("k") == "resumed" for r in read_records(cd.ledger_path)), 60, "the resume")
        time.sleep(1.0)  # still waiting: nothing new starts, nothing is asked again
        after = read_records(cd.ledger_path)
        assert [r["uid"] for r in after if r.get("k") == "started"] == [first["uid"]]
        assert [r["uid"] for r in after if r.get("k") == "waiting"] == [first["uid"], second["uid"]]
        assert [w["uid"] for w in _waiting(cd)] == [second["uid"]]
        edited = cli("approve", str(cd.path), second["uid"][:8], "--edit", "x1=2.5", env=env)
        assert edited.returncode == 0, edited.stdout + edited.stderr
        resumed.join(120)
        assert resumed.exitcode == 0
    finally:
        if resumed.exitcode is None:
            resumed.kill()
            resumed.join(30)
    final = read_records(cd.ledger_path)
    finished = [r for r in final if r.get("k") == "finished"]
    assert [r["uid"] for r in finished] == [first["uid"], second["uid"]]
    assert finished[1]["obs"]["params"]["x1"] == 2.5
    acts = [r for r in final if r.get("k") == "human"]
    assert [(a["act"], a["who"], a["outcome"]) for a in acts] == [("approve", "alice", "applied"), ("edit", "alice", "applied")]
    assert [r["uid"] for r in final if r.get("k") == "waiting"] == [first["uid"], second["uid"]]  # asked once each
