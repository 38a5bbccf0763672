"""What the dashboard knows of each campaign, read from its ledger as it grows.

A :class:`CampaignFollower` keeps the byte offset it has read a campaign's ledger to and folds only
the records appended since (:func:`labflow.store.ledger.read_new_records`), so a page refresh over
many long campaigns reads kilobytes, not the whole ledgers again. Nothing here writes: people's
acts go through the campaign's inbox (:mod:`labflow.store.inbox`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labflow.errors import LabflowError
from labflow.store.campaign_dir import LEDGER, SUFFIX, CampaignDir
from labflow.store.inbox import read_inbox
from labflow.store.ledger import read_new_records

__all__ = ["CampaignFollower", "CampaignSummary", "Campaigns"]

DECIDING = ("approve", "reject", "edit")


@dataclass
class CampaignSummary:
    """One campaign as the dashboard shows it."""

    key: str  # the campaign directory's name without .labflow: unique under DIR, used in URLs
    name: str
    budget: int
    finished: int
    completed: int
    failed: int
    running: bool
    ended: bool
    stations: list[str]
    busy: dict[str, str]  # station -> experiment uid
    best: dict[str, Any] | None  # {"uid", "values": {name: (value, unit)}}
    objectives: list[dict[str, Any]]
    units: dict[str, str]
    waiting: list[dict[str, Any]]
    acts: list[dict[str, Any]]
    posted: list[dict[str, Any]]
    provenance: Path
    updated: float = field(default_factory=time.time)
    work_orders: list[dict[str, Any]] = field(default_factory=list)  # manual stations' orders waiting for a result, oldest first

    @property
    def state(self) -> str:
        """running, waiting for approval, ended, or stopped (not running, not ended: resumable)."""
        if self.ended:
            return "ended"
        if not self.running:
            return "stopped"
        return "waiting for approval" if self.waiting and not self.busy else "running"


class CampaignFollower:
    """Follows one campaign's ledger; :meth:`summary` folds what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.cdir = CampaignDir(path)
        self.key = path.name[: -len(SUFFIX)]
        self.offset = 0
        self.header: dict[str, Any] | None = None
        self.started: dict[str, dict[str, Any]] = {}
        self.running: dict[str, str] = {}  # uid -> station
        self.finished: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, dict[str, Any]] = {}
        self.acts: list[dict[str, Any]] = []
        self.annotated: set[str] = set()
        self.orders: dict[str, dict[str, Any]] = {}  # work orders of manual stations: id -> its record
        self.reported: set[str] = set()  # ids of work orders whose report is recorded
        self.ended = False

    def _fold(self, r: dict[str, Any]) -> None:
        k = r.get("k")
        if k == "campaign":
            self.header = r
        elif k == "started":
            self.started[r["uid"]] = r
            self.running[r["uid"]] = r.get("station", "")
            self.waiting.pop(r["uid"], None)
        elif k == "finished":
            self.finished[r["uid"]] = r
            self.running.pop(r["uid"], None)
        elif k == "interrupted":
            self.running.pop(r["uid"], None)
        elif k == "waiting":
            if r["uid"] not in self.started:
                self.waiting[r["uid"]] = r
        elif k == "human":
            self.acts.append(r)
            if r.get("outcome") == "applied":
                act = r.get("act")
                if act in DECIDING or (act == "expire" and (r.get("after") or {}).get("on_timeout") == "skip"):
                    self.waiting.pop(r.get("target", ""), None)
                if act == "annotate":
                    self.annotated.add(r.get("target", ""))
                if act == "report":
                    self.reported.add(r.get("target", ""))
        elif k == "work_order":
            self.orders[r["id"]] = r
        elif k == "end":
            self.ended = bool(r.get("complete", False))
        elif k == "resumed":
            self.ended = False
            self.running.clear()

    def summary(self) -> CampaignSummary | None:
        """The campaign now (None while its ledger has no header yet)."""
        records, self.offset = read_new_records(self.cdir.ledger_path, self.offset, skip_documents=True)
        for r in records:
            self._fold(r)
        h = self.header
        if h is None:
            return None
        running = self.cdir.is_held()
        objectives = list(h.get("objectives", []))
        space = h.get("space") or []
        parameters = space.get("parameters", []) if isinstance(space, dict) else space
        units = {p["name"]: p.get("unit", "") for p in parameters}
        units.update({o["name"]: o.get("unit", "") for o in objectives})
        completed = [r for r in self.finished.values() if r["obs"]["status"] == "completed"]
        ledgered = {a["id"] for a in self.acts}
        return CampaignSummary(
            key=self.key, name=str(h.get("campaign", self.key)), budget=int(h.get("budget", 0)), finished=len(self.finished),
            completed=len(completed), failed=len(self.finished) - len(completed), running=running, ended=self.ended,
            stations=self._stations(h), busy={st: uid for uid, st in self.running.items()} if running else {},
            best=self._best(completed, objectives, units), objectives=objectives, units=units,
            waiting=[] if self.ended else sorted(self.waiting.values(), key=lambda w: w.get("requested", 0.0)),
            acts=self.acts[-8:][::-1], posted=[] if self.ended else [a for a in read_inbox(self.cdir.path) if a["id"] not in ledgered],
            provenance=self.cdir.provenance_path, work_orders=self._open_orders(),
        )

    def _open_orders(self) -> list[dict[str, Any]]:
        """Work orders waiting for a result: not reported, their experiment not finished, not past their deadline."""
        if self.ended:
            return []
        now = time.time()
        return [o for o in self.orders.values()
                if o["id"] not in self.reported and o["uid"] not in self.finished and float(o["deadline"]) > now]

    def _stations(self, h: dict[str, Any]) -> list[str]:
        names = {r.get("station", "") for r in self.started.values()} - {""}
        count = (h.get("lab") or {}).get("stations")
        if isinstance(count, int):
            names |= {f"station{i}" for i in range(1, count + 1)}
        return sorted(names)

    def _best(self, completed: list[dict[str, Any]], objectives: list[dict[str, Any]], units: dict[str, str]) -> dict[str, Any] | None:
        usable = [r for r in completed if r["uid"] not in self.annotated]
        if not usable or not objectives:
            return None
        first = objectives[0]
        sign = 1.0 if first.get("direction", "maximize") == "maximize" else -1.0

        def score(r: dict[str, Any]) -> float:
            v = r["obs"]["outcomes"].get(first["name"])
            return sign * float(v) if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf

        best = max(usable, key=score)
        obs = best["obs"]
        values = {**obs["params"], **obs["outcomes"]}
        return {"uid": best["uid"], "values": {k: (v, units.get(k, "")) for k, v in values.items()}}


class Campaigns:
    """Every campaign under a folder (searched two levels deep), each followed incrementally."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._followers: dict[Path, CampaignFollower] = {}
        self.problems: dict[str, str] = {}  # campaign directory -> why it cannot be shown (a damaged ledger)

    def scan(self) -> list[CampaignSummary]:
        """The campaigns now, newest first."""
        found = sorted({*self.root.glob(f"*{SUFFIX}"), *self.root.glob(f"*/*{SUFFIX}")})
        out = []
        for d in found:
            if not (d / LEDGER).is_file():
                continue
            follower = self._followers.get(d)
            if follower is None:
                follower = self._followers[d] = CampaignFollower(d)
            try:
                s = follower.summary()
            except LabflowError as exc:  # one damaged campaign must not hide the others
                self.problems[d.name] = exc.message
                continue
            self.problems.pop(d.name, None)
            if s is not None:
                out.append(s)
        return sorted(out, key=lambda s: s.key, reverse=True)

    def follower(self, key: str) -> CampaignFollower | None:
        """The follower of the campaign ``key`` (a name :meth:`scan` returned), else None."""
        return next((f for f in self._followers.values() if f.key == key), None)
