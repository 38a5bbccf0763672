"""Shared by the people-in-the-loop tests: a small gated recipe, and a campaign running in a thread
of the test process that people act on through its inbox, as another process would."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

from labflow.launch import resume_campaign, run_recipe
from labflow.recipe import load_recipe
from labflow.store.campaign_dir import CampaignDir
from labflow.store.inbox import people_view, post_act
from labflow.store.ledger import read_records

LAB = """
name: people-lab
kind: simulated
stations: {stations}
landscape: {{name: branin}}
"""

RECIPE = """
name: people
lab: lab.yaml
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: sobol}}
budget: {budget}
seed: 0
execution: {{executor: {executor}, timeout: 30 s}}
{approval}
"""


def write_recipe(d: Path, *, budget: int = 3, stations: int = 1, executor: str = "local",
                 approval: str = "approval: {mode: every, timeout: 2 h, on_timeout: skip}") -> Path:
    (d / "lab.yaml").write_text(textwrap.dedent(LAB.format(stations=stations)))
    p = d / "recipe.yaml"
    p.write_text(textwrap.dedent(RECIPE.format(budget=budget, executor=executor, approval=approval)))
    return p


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _has_header(ledger: Path) -> bool:
    return ledger.is_file() and any(r.get("k") == "campaign" for r in read_records(ledger))


class RunningCampaign:
    """A campaign running in a thread of this process; people act through its inbox, as another process would."""

    def __init__(self, recipe: Path, out: Path, *, resume: bool = False) -> None:
        self.out = out
        self.error: BaseException | None = None
        self.outcome = None
        target = (lambda: resume_campaign(out, handle_signals=False)) if resume else (
            lambda: run_recipe(load_recipe(recipe), out, handle_signals=False))

        def body():
            try:
                self.outcome = target()
            except BaseException as exc:  # noqa: BLE001 - re-raised in join()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        self.cdir = wait_for(lambda: next((CampaignDir(d) for d in out.glob("*.labflow") if _has_header(d / "ledger.lfl")), None),
                             60, "the campaign directory")

    def records(self, kind: str) -> list[dict]:
        return [r for r in read_records(self.cdir.ledger_path) if r.get("k") == kind]

    def next_waiting(self, seen: set[str]) -> dict:
        w = wait_for(lambda: next((w for w in people_view(self.cdir.path)["waiting"] if w["uid"] not in seen), None), 60,
                     "a suggestion waiting for approval")
        seen.add(w["uid"])
        return w

    def act(self, act: dict) -> dict:
        post_act(self.cdir.path, act)
        return wait_for(lambda: next((a for a in self.records("human") if a["id"] == act["id"]), None), 30, f"the campaign to ledger {act['act']}")

    def join(self, timeout: float = 120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the campaign did not finish"
        if self.error is not None:
            raise self.error
        return self.outcome
