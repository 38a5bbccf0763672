"""The lab dashboard in a real headless browser (Debian's chromium driven by Playwright): the page
shows a running campaign, and an approval or an edit clicked in the page reaches the ledger as the
logged-in user. Without a token it serves loopback only; with one, requests without it are refused."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labflow.dashboard import check_bind, create_app, is_loopback
from labflow.errors import LabflowError
from people_helpers import RunningCampaign, wait_for, write_recipe

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def serving(root: Path, token: str | None = None):
    """The dashboard served by uvicorn on a free loopback port, in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(root, token=token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the dashboard to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def browser_or_skip():
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package 'chromium'): the dashboard's browser test needs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (dev extra)")
    return playwright.sync_playwright


def test_an_approval_and_an_edit_clicked_in_the_page_reach_the_ledger(tmp_path):
    sync_playwright = browser_or_skip()
    out = tmp_path / "out"
    campaign = RunningCampaign(write_recipe(tmp_path, budget=2), out)
    seen: set[str] = set()
    first = campaign.next_waiting(seen)
    with serving(out) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#user", "alice")
            page.click("#login")
            row = page.locator(f"tr.waiting[data-uid='{first['uid']}']")
            row.wait_for()
            assert page.inner_text("section.campaign h2").startswith("people")
            assert "0 of 2 experiments" in page.inner_text("section.campaign .progress")
            assert "station1: idle" in page.inner_text("section.campaign")
            row.locator("input[name=comment]").fill("looks safe")
            row.locator("button.approve").click()
            page.locator("#status", has_text="applied").wait_for()
            approved = wait_for(lambda: next((a for a in campaign.records("human") if a["target"] == first["uid"]), None), 30, "the approval")
            assert (approved["act"], approved["who"], approved["via"], approved["comment"]) == ("approve", "alice", "dashboard", "looks safe")

            second = campaign.next_waiting(seen)
            row = page.locator(f"tr.waiting[data-uid='{second['uid']}']")
            row.wait_for(timeout=15_000)  # the page refreshes itself
            row.locator("button.edit").click()  # shows the values to change
            row.locator("input[name=edits]").fill("x1=2.5")
            row.locator("button.edit").click()
            page.locator("#status", has_text="edit").wait_for()
        finally:
            browser.close()
    campaign.join()
    acts = campaign.records("human")
    assert [(a["act"], a["who"], a["outcome"]) for a in acts] == [("approve", "alice", "applied"), ("edit", "alice", "applied")]
    assert acts[1]["after"]["x1"] == 2.5
    assert [r["obs"]["params"]["x1"] for r in campaign.records("finished")][1] == 2.5


def test_with_a_token_requests_without_it_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    client = TestClient(create_app(out, token="s3cret-token"))
    assert client.get("/", follow_redirects=False).status_code == 401
    assert client.get("/fragment").status_code == 401
    assert client.post("/act", data={"campaign": "x", "act": "approve", "target": "y"}).status_code == 401
    wrong = client.post("/login", data={"user": "mallory", "token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    assert client.get("/fragment").status_code == 401
    ok = client.post("/login", data={"user": "alice", "token": "s3cret-token"}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.get("/").status_code == 200 and "alice" in client.get("/").text
    # an act without the page's CSRF token is refused even with a session
    assert client.post("/act", data={"campaign": "x", "act": "approve", "target": "y"}).status_code == 403
    assert client.post("/report", data={"campaign": "x", "target": "WO-0001", "value.y": "1"}).status_code == 403


def test_it_serves_loopback_only_unless_a_token_is_set(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a-token")
    with pytest.raises(LabflowError, match="refusing to serve the dashboard on 0.0.0.0"):
        check_bind("0.0.0.0", None)
    from typer.testing import CliRunner

    from labflow.cli import app

    result = CliRunner().invoke(app, ["dashboard", str(tmp_path), "--host", "192.168.1.20"], env={"LABFLOW_DASHBOARD_TOKEN": ""})
    assert result.exit_code == 2 and "hint:" in result.output and "refusing" in result.output


def test_a_live_ledger_is_followed_record_by_record_without_its_documents(tmp_path):
    from labflow.store.ledger import Ledger, read_new_records

    path = tmp_path / "ledger.lfl"
    ledger = Ledger(path)
    ledger.append({"k": "campaign", "campaign": "c"})
    ledger.append({"k": "doc", "name": "start", "doc": {"uid": "r1"}})
    records, offset = read_new_records(path, 0, skip_documents=True)
    assert [r["k"] for r in records] == ["campaign"]
    ledger.append({"k": "started", "uid": "e1"})
    with open(path, "ab") as f:  # a record still being written: left for the next call
        f.write(b"\xa5\x4c\x10\x00")
    records, offset2 = read_new_records(path, offset)
    assert [r["k"] for r in records] == ["started"] and offset2 < path.stat().st_size
    assert read_new_records(path, offset2) == ([], offset2)
    ledger.close()


def test_a_damaged_campaign_is_named_on_the_page_and_hides_nothing_else(tmp_path):
    from typer.testing import CliRunner

    from labflow.cli import app

    damaged = tmp_path / "broken-20260101-000000.labflow"
    damaged.mkdir()
    (damaged / "ledger.lfl").write_bytes(b"not a ledger at all")
    client = TestClient(create_app(tmp_path))
    client.post("/login", data={"user": "alice"})
    page = client.get("/")
    assert page.status_code == 200 and "broken-20260101-000000.labflow cannot be shown" in page.text and "bad file magic" in page.text
    result = CliRunner().invoke(app, ["pending", str(damaged)])
    assert result.exit_code == 1 and "not a labflow ledger" in result.output and "Traceback" not in result.output


def test_work_order_results_typed_or_uploaded_in_the_page_reach_the_ledger_and_a_wrong_one_is_refused(tmp_path):
    from labflow.store.provenance import read_campaign
    from manual_helpers import write_bench

    sync_playwright = browser_or_skip()
    out = tmp_path / "out"
    campaign = RunningCampaign(write_bench(tmp_path, budget=2, stations="[{name: bench}, {name: hood}]"), out)
    wait_for(lambda: len(campaign.records("work_order")) == 2, 60, "a work order on each bench")
    results = tmp_path / "results.csv"
    results.write_text("work_order,product_yield,comment\nWO-0002,0.4,from the plate reader\n")
    with serving(out) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#user", "ivy")
            page.click("#login")
            row = page.locator("tr.work-order[data-order='WO-0001']")
            row.wait_for()
            assert "temperature" in row.inner_text() and "degC" in row.inner_text()
            row.locator("input[name='value.product_yield']").fill("120")
            row.locator("button.report").click()
            page.locator("#status", has_text="outside the range it can physically take").wait_for()
            assert campaign.records("human") == []  # refused before anything was posted
            row.locator("input[name='value.product_yield']").fill("64 percent")
            row.locator("input[name=comment]").fill("weighed twice")
            row.locator("button.report").click()
            page.locator("#status", has_text="applied").wait_for()
            upload = page.locator("form.csv")
            upload.locator("input[type=file]").set_input_files(str(results))
            upload.locator("button.upload").click()
            page.locator("#status", has_text="1 report(s): report WO-0002: applied").wait_for()
        finally:
            browser.close()
    outcome = campaign.join()
    acts = campaign.records("human")
    assert [(a["act"], a["target"], a["who"], a["via"], a["comment"]) for a in acts] == [
        ("report", "WO-0001", "ivy", "dashboard", "weighed twice"), ("report", "WO-0002", "ivy", "dashboard", "from the plate reader")]
    assert sorted(read_campaign(outcome.path).experiments["product_yield"].tolist()) == [0.4, 64.0]
