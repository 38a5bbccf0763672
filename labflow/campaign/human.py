"""People in the loop: approvals, operator experiments and annotations, every act a ledger record.

A person acts from another process (``labflow approve``, the dashboard, a Prefect form): the act
goes to the campaign's inbox (:mod:`labflow.store.inbox`). :class:`PeopleInTheLoop`, which the
loop calls at each turn, reads the inbox, checks each new act and ledgers it as a ``human``
record -- applied, or refused with the reason -- before acting on it:

* **approve** a suggestion that waits: it may run. **edit** it: the edited values (inside the
  recipe's bounds and constraints and the lab's device limits, units converted) are what runs and
  what the planner learns. **reject** it: it never runs, and the planner never proposes that point
  again (it is pending forever, and abandoned for the guarded proposer).
* **add** an operator experiment: it joins the queue ahead of the planner's suggestions, runs
  through the same plan and records, teaches the planner, and carries ``generator="operator"``
  (``/experiments``, the ledger) and ``source="operator"`` (every bluesky start document).
* **annotate** a finished experiment as an outlier or invalid: the planner stops learning from it
  (its observation becomes ``invalid``); nothing is deleted.
* **report** the result of a manual station's work order: checked and applied by the campaign's
  :class:`~labflow.campaign.work_orders.WorkOrderBoard` (``work_orders``), which hands it to the
  station waiting for it.

Which suggestions wait is the recipe's ``approval`` (:class:`ApprovalRules`). A suggestion held for
approval is ledgered once (``waiting``, with its deadline), so a resumed campaign keeps waiting
for the same suggestion and asks nothing twice; an approval given is in the ledger, so it is
never asked again. While a suggestion waits, the other stations take other approved work; the
campaign never runs an unapproved experiment. On a timeout the suggestion is skipped (an
``expire`` act by ``labflow``) or keeps waiting, as the recipe says.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labflow.campaign.policy import point_key
from labflow.errors import LabflowError, SpaceError, UnitError
from labflow.records import Candidate, Status
from labflow.space import Categorical, Integer, Space
from labflow.store.inbox import ACTS, new_act, read_inbox
from labflow.units import convert

if TYPE_CHECKING:
    from labflow.campaign.loop import Campaign

__all__ = ["ApprovalRules", "PeopleInTheLoop", "RefusedAct", "check_point", "is_outside_seen_region"]

log = logging.getLogger("labflow.campaign")

OPERATOR = "operator"


class RefusedAct(LabflowError):
    """An act that cannot be applied: the experiment does not wait, a value breaks a limit..."""


@dataclass(frozen=True)
class ApprovalRules:
    """Which planner suggestions wait for a person (the recipe's ``approval`` section).

    ``mode``: ``every``, ``never``, ``outside_seen_region`` or ``first`` (with ``first`` = N);
    ``timeout_s``: how long one waits; ``on_timeout``: ``skip`` or ``wait``.
    """

    mode: str = "never"
    first: int = 0
    timeout_s: float = 24 * 3600.0
    on_timeout: str = "wait"

    @classmethod
    def from_spec(cls, spec: Any) -> ApprovalRules:
        """From a recipe's :class:`labflow.recipe.ApprovalSpec` (None: never)."""
        if spec is None:
            return cls()
        first = spec.first
        return cls(mode="first" if first is not None else str(spec.mode), first=int(first or 0), timeout_s=spec.timeout_s,
                   on_timeout=spec.on_timeout)


def is_outside_seen_region(space: Space, params: Mapping[str, Any], measured: Sequence[Mapping[str, Any]]) -> str:
    """Why ``params`` lies outside the region measured so far ('' when inside): a number beyond
    the range of the completed experiments' values, or a category not measured yet."""
    if not measured:
        return "nothing has been measured yet"
    for p in space.parameters:
        seen = [m[p.name] for m in measured if p.name in m]
        v = params.get(p.name)
        if isinstance(p, Categorical):
            if v not in seen:
                return f"{p.name} = {v!r} has not been measured yet"
            continue
        lo, hi = min(float(s) for s in seen), max(float(s) for s in seen)
        if not lo <= float(v) <= hi:
            unit = f" {p.unit}" if p.unit else ""
            return f"{p.name} = {float(v):g}{unit} lies outside the measured range [{lo:g}, {hi:g}]{unit}"
    return ""


def check_point(space: Space, limits: Mapping[str, Any], values: Mapping[str, Any], *,
                base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``values`` (numbers in the recipe's units or text with units, "250 degC") checked into a point
    of ``space``: every parameter known, units convertible, inside the recipe's bounds and
    constraints, inside the lab's device ``limits`` (name -> object with ``low``, ``high``,
    ``unit``, ``choices``). ``base`` fills the parameters not given (an edit). Raises
    :class:`RefusedAct` naming the parameter, the value and the bound or limit it breaks."""
    unknown = [k for k in values if k not in space]
    if unknown:
        raise RefusedAct(f"unknown parameter(s) {unknown}; the recipe's parameters are {space.names}")
    point: dict[str, Any] = dict(base or {})
    for name, raw in values.items():
        p = space[name]
        if isinstance(p, Categorical):
            if str(raw) not in p.choices:
                raise RefusedAct(f"{name} = {raw!r} is not one of the recipe's choices {list(p.choices)}")
            point[name] = str(raw)
            continue
        try:
            v = convert(raw, p.unit) if isinstance(raw, str) else float(raw)
        except (UnitError, ValueError, TypeError) as exc:
            raise RefusedAct(f"{name} = {raw!r}: {getattr(exc, 'message', exc)}") from None
        if not math.isfinite(v):
            raise RefusedAct(f"{name} = {raw!r} is not a finite value")
        if isinstance(p, Integer):
            if v != round(v):
                raise RefusedAct(f"{name} = {raw!r} is not a whole number")
            v = int(round(v))
        unit = f" {p.unit}" if p.unit else ""
        if v < p.low or v > p.high:
            raise RefusedAct(f"{name} = {raw!r} ({v:g}{unit}) is outside the recipe's bounds [{p.low:g}, {p.high:g}]{unit}")
        lim = limits.get(name)
        if lim is not None and lim.choices is None and lim.low is not None and lim.high is not None:
            device = convert(v, lim.unit, from_unit=p.unit)
            if device < lim.low or device > lim.high:
                raise RefusedAct(f"{name} = {raw!r} breaks the device limit [{lim.low:g}, {lim.high:g}] {lim.unit} "
                                 f"({device:g} {lim.unit})")
        point[name] = v
    missing = [n for n in space.names if n not in point]
    if missing:
        raise RefusedAct(f"missing value(s) for {missing}; an experiment needs every parameter: {space.names}")
    try:
        point = space.coerce(point, where="the point")
    except SpaceError as exc:
        raise RefusedAct(exc.message) from None
    if space.constraints and not bool(space.feasible_unit(space.encode([point]))[0]):
        broken = "; ".join(c.describe() for c in space.constraints)
        raise RefusedAct(f"the point breaks the recipe's constraints ({broken})")
    return point


class PeopleInTheLoop:
    """The loop's link to people: approvals, operator experiments, annotations (module docstring).

    ``inbox``: the campaign directory whose ``inbox.lfl`` people post to (None: no one can act,
    only the approval rule holds suggestions; used in tests). ``space`` and ``limits`` check the
    values people give. ``clock``: wall-clock seconds (deadlines survive a restart). ``work_orders``:
    the campaign's :class:`~labflow.campaign.work_orders.WorkOrderBoard` when its lab has manual stations.
    """

    def __init__(self, *, inbox: str | Path | None, rules: ApprovalRules, space: Space, limits: Mapping[str, Any] | None = None,
                 poll_interval: float = 0.25, clock: Callable[[], float] = time.time, work_orders: Any = None) -> None:
        self.inbox = Path(inbox) if inbox is not None else None
        self.work_orders = work_orders
        self.rules = rules
        self.space = space
        self.limits = dict(limits or {})
        self.poll_interval = float(poll_interval)
        self.clock = clock
        self.waiting: dict[str, dict[str, Any]] = {}  # uid -> its 'waiting' record
        self.approved_by: dict[str, str] = {}  # uid -> who approved (or added) it
        self.rejected: dict[str, Candidate] = {}  # uid -> the point, pending forever
        self.operator: set[str] = set()
        self.applied: set[str] = set()  # ids of acts already ledgered (applied or refused)
        self.expired_noted: set[str] = set()
        self.planner_candidates = 0  # planner candidates classified so far (for first: N)
        self.campaign: Campaign | None = None
        self._last_poll = -math.inf
        self._malformed: set[str] = set()

    # -- wiring ---------------------------------------------------------------------------------
    def attach(self, campaign: Campaign, history: Any = None) -> None:
        """Join ``campaign`` (after its own restore) and replay the ledger's waits and acts."""
        self.campaign = campaign
        if history is None:
            return
        self.planner_candidates = history.asked
        if self.work_orders is not None:
            self.work_orders.replay(history)  # before the acts: a report names its order
        for w in history.waiting:
            self.waiting[w["uid"]] = dict(w)
        for act in history.human:
            self.applied.add(act["id"])
            if act.get("outcome") == "applied":
                self._apply(act, replay=True)
        started = set(history.started)
        finished = set(history.finished_uids)
        queued = {c.uid for c in campaign.queue}
        for uid in list(self.waiting):  # what ran, or left the queue, no longer waits
            if uid in started or uid in finished or uid not in queued:
                self.waiting.pop(uid)
        ordinal = {c["uid"]: i for i, c in enumerate(c for s in history.suggestions for c in s["candidates"])}
        for c in list(campaign.queue):  # a crash between a suggestion and its 'waiting' record: classify it now
            if c.uid in self.waiting or c.uid in self.approved_by or c.uid in started or c.uid in self.operator:
                continue
            if not self._drop_if_rejected(c):
                self._classify(c, ordinal.get(c.uid, 0))
        self._publish()

    @property
    def active(self) -> bool:
        """True when people can act or suggestions may wait (the loop then polls)."""
        return self.inbox is not None or self.rules.mode != "never"

    # -- what the loop asks ------------------------------------------------------------------------
    def submitted(self, candidates: Sequence[Candidate]) -> None:
        """The planner just proposed ``candidates`` (ledgered, queued): drop any at a point a person
        rejected (it never runs, never waits again), hold those the approval rule says must wait."""
        for c in candidates:
            ordinal = self.planner_candidates
            self.planner_candidates += 1
            if not self._drop_if_rejected(c):
                self._classify(c, ordinal)
        self._publish()

    def _drop_if_rejected(self, c: Candidate) -> bool:
        """Remove ``c`` from the queue when its point was rejected; True when dropped."""
        if not self.rejected:
            return False
        key = point_key(c.params)
        if not any(point_key(r.params) == key for r in self.rejected.values()):
            return False
        campaign = self._campaign()
        campaign.queue[:] = [q for q in campaign.queue if q.uid != c.uid]
        log.warning("the planner proposed %s again, a point a person rejected; it is dropped", c.params)
        return True

    def runnable(self, queue: Sequence[Candidate]) -> list[Candidate]:
        """The queued candidates that may run now (none that waits for approval)."""
        return [c for c in queue if c.uid not in self.waiting]

    def may_ask(self, free_stations: int) -> bool:
        """True when the planner may be asked for more work: fewer suggestions wait than stations are free."""
        return len(self.waiting) < free_stations

    def awaits_reports(self) -> bool:
        """True while a manual station waits for a person's report (the loop keeps reading the inbox)."""
        return self.work_orders is not None and self.work_orders.awaits_reports()

    def holds_work(self) -> bool:
        """True while a suggestion waits for a person (the campaign must not end)."""
        return bool(self.waiting)

    def excluded(self) -> list[Candidate]:
        """Rejected points: pending forever, so the planner never proposes them again."""
        return list(self.rejected.values())

    def metadata(self, candidate: Candidate) -> dict[str, Any]:
        """What a run's start document says about people: ``source`` and who approved it."""
        md: dict[str, Any] = {"source": OPERATOR if candidate.uid in self.operator else "planner"}
        if candidate.uid in self.approved_by:
            md["approved_by"] = self.approved_by[candidate.uid]
        return md

    def idle(self, seconds: float) -> None:
        """Nothing can run until a person acts: wait up to ``seconds`` (in slices), polling the inbox."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.poll(force=True):
                return
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    # -- the inbox ---------------------------------------------------------------------------------
    def poll(self, *, force: bool = False) -> bool:
        """Ledger and apply the inbox's new acts, and expire overdue waits. True when anything changed."""
        now = time.monotonic()
        if not force and now - self._last_poll < self.poll_interval:
            return False
        self._last_poll = now
        changed = self._expire()
        if self.inbox is None:
            return changed
        for act in read_inbox(self.inbox):
            ident = act.get("id")
            key = ident if isinstance(ident, str) else repr(act)
            if key in self.applied or key in self._malformed:
                continue
            if not isinstance(ident, str) or act.get("act") not in ACTS or not isinstance(act.get("after", {}), dict):
                # written by something other than labflow's tools: without an id it cannot be ledgered exactly once
                self._malformed.add(key)
                log.warning("ignoring a malformed act in %s/inbox.lfl: %r", self.inbox, act)
                continue
            changed |= self.handle(act)
        return changed

    def _publish(self) -> None:
        """Show the campaign's listeners what waits (``state.waiting``; a "waiting" event when it changed)."""
        campaign = self._campaign()
        queued = {c.uid: c for c in campaign.queue}
        now = {uid: queued[uid] for uid in self.waiting if uid in queued}
        if now.keys() != campaign.state.waiting.keys():
            campaign.state.waiting = now
            campaign._emit("waiting")  # noqa: SLF001 - the loop's listeners

    def handle(self, act: Mapping[str, Any]) -> bool:
        """Check one act, ledger it (applied or refused, with the reason), then act on it. True when applied."""
        record = {k: v for k, v in act.items() if k != "k"}
        record["requested"] = act.get("after") or {}
        try:
            record.update(self._check(record))
            record["outcome"], record["refusal"] = "applied", ""
        except RefusedAct as exc:
            record["outcome"], record["refusal"] = "refused", exc.message
            log.warning("%s's %s of %s refused: %s", record.get("who"), record.get("act"), record.get("target"), exc.message)
        self._journal().human(record)
        self.applied.add(record["id"])
        if record["outcome"] == "applied":
            self._apply(record, replay=False)
            self._publish()
            return True
        return False

    # -- checking and applying ------------------------------------------------------------------
    def _check(self, act: Mapping[str, Any]) -> dict[str, Any]:
        """Refuse what cannot be applied now; returns the fields to complete the record with (before, after)."""
        kind, uid = act.get("act"), str(act.get("target", ""))
        campaign = self._campaign()
        if kind in ("approve", "reject", "edit"):
            queued = next((c for c in campaign.queue if c.uid == uid), None)
            if uid not in self.waiting or queued is None:
                raise RefusedAct(f"experiment {uid} is not waiting for approval ({self._where(uid)})")
            if kind == "edit":
                after = check_point(self.space, self.limits, act.get("after") or {}, base=queued.params)
                return {"before": dict(queued.params), "after": after}
            return {"before": dict(queued.params), "after": {}}
        if kind == "add":
            s = campaign.state
            if s.started + len([c for c in campaign.queue if c.uid in self.operator]) >= s.budget:
                raise RefusedAct(f"the campaign's budget of {s.budget} experiments is taken; nothing more will run")
            if not uid or any(c.uid == uid for c in campaign.queue) or self._ran(uid):
                raise RefusedAct(f"an operator experiment needs a new uid, got {uid!r}")
            return {"after": check_point(self.space, self.limits, act.get("after") or {})}
        if kind == "annotate":
            obs = next((o for o in campaign.planner.observations if o.uid == uid), None)
            if obs is None:
                raise RefusedAct(f"experiment {uid} has not finished ({self._where(uid)}); annotate it once it has")
            flag = str((act.get("after") or {}).get("flag", ""))
            if flag not in ("outlier", "invalid"):
                raise RefusedAct(f"an annotation flags an experiment 'outlier' or 'invalid', got {flag!r}")
            return {"before": {"status": obs.status.value, "outcomes": dict(obs.outcomes)}, "after": {"flag": flag}}
        if kind == "expire":
            return {}
        if kind == "report":
            if self.work_orders is None:
                raise RefusedAct("this campaign's lab has no manual station: it issues no work orders to report")
            return self.work_orders.check(act)
        raise RefusedAct(f"unknown act {kind!r}")

    def _apply(self, act: Mapping[str, Any], *, replay: bool) -> None:
        """Act on a ledgered, applied act (also when replaying the ledger on resume)."""
        kind, uid, who = act["act"], str(act.get("target", "")), str(act.get("who", ""))
        campaign = self._campaign()
        queue = campaign.queue
        if kind in ("approve", "edit"):
            self.waiting.pop(uid, None)
            self.approved_by[uid] = who
            if kind == "edit":
                for i, c in enumerate(queue):
                    if c.uid == uid:
                        queue[i] = Candidate(uid=c.uid, params=dict(act["after"]), planner=c.planner, generator=c.generator)
        elif kind == "reject" or (kind == "expire" and (act.get("after") or {}).get("on_timeout") == "skip"):
            self.waiting.pop(uid, None)
            point = next((c for c in queue if c.uid == uid), None)
            params = dict(act.get("before") or (point.params if point is not None else {}))
            queue[:] = [c for c in queue if c.uid != uid]
            if params:
                self.rejected[uid] = Candidate(uid=f"rejected-{uid}", params=params)
                why = "rejected by " + who if kind == "reject" else "approval timed out"
                campaign.failures.abandoned[point_key(params)] = f"{why}: {act.get('comment', '')}".rstrip(": ")
        elif kind == "expire":
            self.expired_noted.add(uid)
        elif kind == "add":
            self.operator.add(uid)
            self.approved_by[uid] = who
            if not self._ran(uid) and not any(c.uid == uid for c in queue):  # on resume it may have run, or be queued again
                n = sum(1 for c in queue if c.uid in self.operator)
                queue.insert(n, Candidate(uid=uid, params=dict(act["after"]), planner=OPERATOR, generator=OPERATOR))
        elif kind == "report":
            if self.work_orders is not None:
                self.work_orders.apply(act)
        elif kind == "annotate":
            flag = (act.get("after") or {}).get("flag", "outlier")
            reason = f"annotated {flag} by {who}" + (f": {act['comment']}" if act.get("comment") else "")
            self._forget(uid, reason)

    def _forget(self, uid: str, reason: str) -> None:
        """The planner stops learning from ``uid``: its observation becomes invalid (it stays in the record)."""
        planner = self._campaign().planner
        state = planner.state_dict()
        for o in state["observations"]:
            if o["uid"] == uid:
                o["status"], o["reason"], o["outcomes"] = Status.INVALID.value, reason, {}
        planner.load_state_dict(state)
        self._campaign().state.best = planner.best()

    def _classify(self, c: Candidate, ordinal: int) -> None:
        rules = self.rules
        why = ""
        if rules.mode == "every":
            why = "every suggestion is approved (approval: every)"
        elif rules.mode == "first" and ordinal < rules.first:
            why = f"suggestion {ordinal + 1} of the first {rules.first} (approval: first {rules.first})"
        elif rules.mode == "outside_seen_region":
            measured = [o.params for o in self._campaign().planner.completed()]
            outside = is_outside_seen_region(self.space, c.params, measured)
            if outside:
                why = f"outside the measured region: {outside}"
        if not why:
            return
        now = self.clock()
        record = {"uid": c.uid, "params": dict(c.params), "why": why, "requested": now, "deadline": now + rules.timeout_s,
                  "on_timeout": rules.on_timeout}
        self._journal().waiting(record)
        self.waiting[c.uid] = record

    def _expire(self) -> bool:
        now = self.clock()
        changed = False
        for uid, w in list(self.waiting.items()):
            if now < float(w.get("deadline", math.inf)) or uid in self.expired_noted:
                continue
            act = new_act("expire", target=uid, who="labflow", via="timeout", after={"on_timeout": self.rules.on_timeout},
                          before=dict(w.get("params", {})),
                          comment=f"no decision within {self.rules.timeout_s:g} s; " + ("skipped" if self.rules.on_timeout == "skip" else "still waiting"))
            changed |= self.handle(act)
        return changed

    # -- helpers ------------------------------------------------------------------------------------
    def _ran(self, uid: str) -> bool:
        """True when ``uid`` runs or finished (this process's results, or the planner's history on resume)."""
        c = self._campaign()
        return (any(b.uid == uid for b in c.state.busy.values()) or any(r.candidate.uid == uid for r in c.results)
                or any(o.uid == uid for o in c.planner.observations))

    def _where(self, uid: str) -> str:
        c = self._campaign()
        if uid in self.rejected:
            return "it was rejected"
        if any(b.uid == uid for b in c.state.busy.values()):
            return "it is running"
        if self._ran(uid):
            return "it already ran"
        if uid in self.approved_by:
            return f"approved by {self.approved_by[uid]}"
        return "no such experiment is queued"

    def _campaign(self) -> Campaign:
        if self.campaign is None:
            raise RuntimeError("PeopleInTheLoop.attach(campaign) was not called")
        return self.campaign

    def _journal(self) -> Any:
        journal = self._campaign().journal
        if not hasattr(journal, "human"):  # a campaign without a ledger: log the act, nothing to ledger it in
            return _LogOnly()
        return journal


class _LogOnly:
    """Where acts go for a campaign recorded without a ledger (no resume): the log."""

    def waiting(self, record: Mapping[str, Any]) -> None:
        log.info("waiting for approval: %s", json.dumps(record, default=str))

    def human(self, act: Mapping[str, Any]) -> None:
        log.info("human act: %s", json.dumps(act, default=str))
