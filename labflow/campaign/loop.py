"""The closed loop on one page: ask the planner, start experiments on free stations, record
what finished, tell the planner, react -- until the budget is spent.

:meth:`Campaign.run` is the loop; everything else has a module of its own: the station runner
(:mod:`~labflow.campaign.station`), the attempt policy, failure budget and abandoning
(:mod:`~labflow.campaign.policy`), pause and stop (:mod:`~labflow.campaign.control`), fidelity
routing (:mod:`~labflow.campaign.routing`), the guarded planner (:mod:`~labflow.campaign.proposer`),
resuming from a ledger (:mod:`~labflow.campaign.resume`) and the record
(:mod:`~labflow.campaign.recorder`). How experiments run -- threads, Prefect tasks, virtual time --
is the executor's business (:mod:`labflow.executors`); the loop only submits and collects.

One experiment is in flight per station. In a multi-fidelity campaign whose planner has
``idle_stations="fill"`` (or ``"worth"``, where its hand-over rule says the free station's fidelity is
worth its cost), a free station is kept busy while the queued candidates wait for stations
of another fidelity: the planner is asked for one at the free station's fidelity (decision 0009). With a journal every decision is ledgered, fsynced,
before it is acted on: a suggestion before its candidates run, ``started`` before a run begins,
``finished`` before the planner is told.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from labflow.campaign.control import CampaignControl, StopOnSignals
from labflow.campaign.executor import Executor
from labflow.campaign.human import PeopleInTheLoop
from labflow.campaign.policy import FailureBudget, FailureMemory
from labflow.campaign.proposer import PlanningSite, Proposer
from labflow.campaign.recorder import Recorder, WriterRecorder, experiment_row
from labflow.campaign.result import ExperimentResult, ExperimentStatus
from labflow.campaign.routing import Routing
from labflow.campaign.state import CampaignState, Listener
from labflow.campaign.station import StationRunner
from labflow.errors import CampaignInterrupted, DiskFullError, LabflowError, PlanningUnavailable
from labflow.faults import crashpoint
from labflow.pareto import objective_hypervolume
from labflow.planners.base import Planner
from labflow.records import Candidate, Status

__all__ = ["Campaign"]


class Campaign:
    """Runs the closed loop until ``budget`` experiments have finished.

    Parameters
    ----------
    planner: proposes candidates (``ask``) and learns from observations (``tell``).
    runners: one :class:`StationRunner` per station; one experiment in flight on each.
    executor: how experiments run (:mod:`labflow.executors`: threads, Prefect tasks, virtual time);
        its attempt policy (retries, sample faults) decides what a failure means.
    budget: experiments to finish.
    writer: a bare provenance file, when there is no ``journal``.
    batch: candidates asked per planner call (q).
    md: metadata put in every bluesky run's start document (campaign id, recipe hash, ...).
    choices: for pool labs, a callable giving the points still available.
    listeners: called with each event ("start", "submitted", "finished", "interrupted", "end") and the state.
    journal: a :class:`labflow.store.journal.CampaignJournal` (ledger + provenance); when given,
        every step is ledgered before it is acted on and ``writer`` is not used.
    history: a replayed ledger (:class:`labflow.store.campaign_dir.CampaignHistory`) to resume
        from; the planner must already hold its observations (``labflow.launch.resume_campaign``).
    failure_budget: when to give up (:class:`FailureBudget`; default: >50 % after >= 5 failures).
    handle_signals: stop cleanly on SIGINT/SIGTERM during the run (main thread only).
    stop_grace: seconds a deferred stop waits for a checkpoint before pausing at once.
    snapshot_every: write the planner snapshot every this many finished experiments (later in a long
        campaign, every tenth of those finished: a snapshot holds the whole history).
    sample_fault_patterns: regular expressions; a failure whose reason matches is the sample's
        fault. Added to the executor's attempt policy, which applies them (kept for callers that
        build the executor without them).
    routes, route_parameter, costs: fidelity routing (:class:`~labflow.campaign.routing.Routing`).
    people: approvals, operator experiments and annotations (:class:`~labflow.campaign.human.PeopleInTheLoop`);
        None: no one acts on the campaign while it runs.
    cost_budget: the total cost (in the costs' unit) the campaign may spend: no experiment starts
        whose cost would take the finished and running experiments past it (``stop_reason`` says so).
    planning: where the planner's ``ask`` is computed (:class:`~labflow.campaign.proposer.PlanningSite`,
        e.g. a worker of another work pool); None: here. When it gets no answer
        (:class:`~labflow.errors.PlanningUnavailable`) no new experiment starts, those running
        finish and are recorded, and :meth:`run` raises it.
    """

    def __init__(
        self,
        *,
        planner: Planner,
        runners: Sequence[StationRunner],
        executor: Executor,
        budget: int,
        writer: Any = None,
        batch: int = 1,
        md: Mapping[str, Any] | None = None,
        choices: Callable[[], Any] | None = None,
        listeners: Iterable[Listener] = (),
        journal: Recorder | None = None,
        history: Any = None,
        failure_budget: FailureBudget | None = None,
        handle_signals: bool = False,
        stop_grace: float = 5.0,
        snapshot_every: int = 10,
        sample_fault_patterns: Iterable[str] = (),
        routes: Mapping[str, Sequence[str]] | None = None,
        route_parameter: str | None = None,
        costs: Mapping[str, float] | None = None,
        people: PeopleInTheLoop | None = None,
        cost_budget: float | None = None,
        planning: PlanningSite | None = None,
    ) -> None:
        if not runners:
            raise LabflowError("a campaign needs at least one station")
        self.planner = planner
        self.runners = list(runners)
        self.executor = executor
        patterns = tuple(sample_fault_patterns)
        if patterns:
            policy = executor.policy
            executor.policy = replace(policy, sample_fault_patterns=(*policy.sample_fault_patterns, *patterns))
        self.writer = writer
        self.journal: Recorder = journal if journal is not None else WriterRecorder(writer)
        self.batch = int(batch)
        self.md = dict(md or {})
        self.listeners = list(listeners)
        self.state = CampaignState(budget=int(budget))
        self.results: list[ExperimentResult] = []
        self.failure_budget = failure_budget or FailureBudget()
        self.failures = FailureMemory(self.failure_budget.abandon_after)
        self.proposer = Proposer(planner, self.failures, choices, site=planning)
        self.routing = Routing(routes, route_parameter, costs, [r.name for r in self.runners])
        self.cost_budget = None if cost_budget is None else float(cost_budget)
        self._committed: dict[str, float] = {}  # uid -> cost of an experiment in flight
        self.handle_signals = handle_signals
        self.snapshot_every = max(1, int(snapshot_every))
        self._next_snapshot = self.snapshot_every
        self.control = CampaignControl(stop_grace)
        for r in self.runners:
            r.control = self.control
            self.control.register(r.name, r.RE)
        self.queue: list[Candidate] = []  # asked, not yet started
        self.attempt_offset: dict[str, int] = {}  # uid -> attempts already spent (resumed experiments)
        self.repeat: set[str] = set()  # uids that repeat an interrupted experiment
        self._suggestion_of: dict[str, int] = {}
        self._t_suggested: dict[str, float] = {}
        self.clock_offset = 0.0
        """Seconds added to the executor's clock: on a resume, the time the record already covers,
        so that times continue across a resume (the time the campaign was down is not counted)."""
        self._Y: list[list[float]] = []  # oriented outcomes of this campaign's completed experiments
        self._free = list(self.runners)
        self._in_flight: dict[str, StationRunner] = {}
        self._error: BaseException | None = None
        if history is not None:
            from labflow.campaign.resume import restore

            restore(self, history)
        self.people = people if people is not None and people.active else None
        if self.people is not None:
            self.people.attach(self, history)

    def now(self) -> float:
        """The campaign's clock: the executor's, continued across resumes (:attr:`clock_offset`)."""
        return self.executor.now() + self.clock_offset

    # -- pause / resume / stop (any thread) --------------------------------------------------
    def request_pause(self, defer: bool = True) -> None:
        """Pause at the next checkpoint (``defer``) or now; no new experiment starts."""
        self.control.request_pause(defer)

    def resume(self) -> None:
        """Continue after a pause."""
        self.control.resume()

    def request_stop(self, reason: str = "stop requested", *, defer: bool = True) -> None:
        """Stop cleanly; the cut experiments are recorded as interrupted and repeated on resume."""
        self.control.request_stop(reason, defer=defer)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> CampaignState:
        """Run to the budget (or until a pool is exhausted). Returns the final counters.

        Raises :class:`~labflow.errors.CampaignInterrupted` when stopped (signal, ``request_stop``),
        :class:`~labflow.errors.FailureRateExceeded` past the failure budget, and
        :class:`~labflow.errors.DiskFullError` when the record cannot be written; in every case
        what finished is recorded and the in-flight experiments are marked interrupted.
        """
        try:
            with StopOnSignals(self.control, enabled=self.handle_signals):
                self._emit("start")
                try:
                    self._loop()
                finally:
                    self._emit("end")
        finally:
            self.control.close()
        return self._outcome()

    def _loop(self) -> None:
        """Ask, start, record, tell, react: one experiment in flight per free station."""
        while self.state.finished < self.state.budget or self._in_flight:
            while self._may_start():
                picked = self._next_experiment()  # asks the planner when the queue is empty, or nothing queued fits a free station
                if picked is None:
                    break
                self._start(*picked)
            if not self._in_flight:
                if self.control.state == "paused" and self._error is None:
                    self.control.wait_running(0.5)
                    continue
                if self.people is not None and self.people.holds_work() and self.control.accepting and self._error is None:
                    self.people.idle(0.5)  # a suggestion waits for a person: nothing else may run
                    continue
                break
            result = self._next_result()
            if result is None:  # a person acted while experiments ran: start what they allowed
                continue
            self._station_is_free(result)
            try:
                self._record_and_tell(result)
            except DiskFullError as exc:
                self._fail_fast(exc)
            self._react(result)

    # -- the steps ------------------------------------------------------------------------
    def _may_start(self) -> bool:
        s = self.state
        return bool(self._free) and s.started < s.budget and self.control.accepting and self._error is None

    def _next_experiment(self) -> tuple[Candidate, StationRunner] | None:
        """The next (candidate, free station): the first queued candidate a free station may run
        (with people in the loop, none that waits for approval)."""
        people = self.people
        if people is not None:
            people.poll()
        runnable = self.queue if people is None else people.runnable(self.queue)
        for _ in range(3):  # with people: a point a person rejected, proposed again, is dropped; ask again
            n = min(self.batch, self.state.budget - self.state.started - len(self.queue))
            if runnable or n <= 0 or not (people is None or people.may_ask(len(self._free))):
                break
            pending = [self._candidate_on(r) for r in self._in_flight.values()] + self.queue
            asked = self._ask(n, pending + (people.excluded() if people is not None else []))
            self.queue.extend(asked)
            if people is None:
                runnable = self.queue
                break
            people.submitted(asked)
            runnable = people.runnable(self.queue)
            if not asked or any(c in self.queue for c in asked):
                break
        pick = self.routing.match(runnable, [r.name for r in self._free])
        if pick is None:  # every runnable candidate waits for a station of its fidelity: keep the free one busy
            runnable = self._ask_for_idle_station(runnable)
            pick = self.routing.match(runnable, [r.name for r in self._free])
        if pick is None:  # nothing runnable, or every runnable candidate waits for a station of its kind
            return None
        candidate = runnable[pick[0]]
        if self.cost_budget is not None and not self._affordable(candidate, self._free[pick[1]].name):
            return None
        self.queue.remove(candidate)
        return candidate, self._free.pop(pick[1])

    def _ask_for_idle_station(self, runnable: list[Candidate]) -> list[Candidate]:
        """A free station whose fidelity no queued candidate has: ask the planner for candidates at that
        fidelity (decision 0009); the queued ones keep their place and wait for their own stations.

        Only for a planner that takes a given fidelity (``fidelity_parameter`` is the route parameter)
        and only within the budgets: the queued candidates count against the experiment budget, and
        the cost budget must still cover them after the new ones. Returns the runnable queue.
        """
        fidelity = self._idle_fidelity()
        people = self.people
        n = min(self.batch, self.state.budget - self.state.started - len(self.queue))
        if fidelity is None or n <= 0 or not (people is None or people.may_ask(len(self._free))):
            return runnable
        if self.cost_budget is not None and not self._room_beside_queue(fidelity):
            return runnable
        pending = [self._candidate_on(r) for r in self._in_flight.values()] + self.queue
        asked = self._ask(n, pending + (people.excluded() if people is not None else []), fidelity)
        self.queue.extend(asked)
        if people is None:
            return self.queue
        people.submitted(asked)
        return people.runnable(self.queue)

    def _idle_fidelity(self) -> str | None:
        """The fidelity of a free station that no queued candidate has, if the planner can propose at a given fidelity."""
        param = self.routing.route_parameter
        if param is None or getattr(self.planner, "fidelity_parameter", None) != param:
            return None  # single-fidelity campaigns, and planners that choose no fidelity, ask as before
        if getattr(self.planner, "idle_stations", "wait") not in ("fill", "worth"):
            return None  # the planner's choice (multi-fidelity option idle_stations): wait for the queued candidates' stations
        queued = {str(c.params.get(param)) for c in self.queue}
        for runner in self._free:
            for key in self.routing.keys_for(runner.name):
                if key not in queued:
                    return key
        return None

    def _room_beside_queue(self, fidelity: str) -> bool:
        """Whether the cost budget covers one more experiment at ``fidelity`` on top of what finished, what
        runs and what waits in the queue (a cheap experiment never starves a queued expensive one)."""
        cost = self.routing.cost(fidelity)
        if not math.isfinite(cost):
            return True
        waiting = [self.routing.cost(self.routing.cost_key(c.params, "")) for c in self.queue]
        spent = sum(self.state.cost.values()) + sum(self._committed.values()) + sum(w for w in waiting if math.isfinite(w))
        return spent + cost <= self.cost_budget * (1 + 1e-12)  # type: ignore[operator]

    def _next_result(self) -> ExperimentResult | None:
        """The next finished experiment; with people in the loop and a free station, None as soon as
        a person's act lets something start (the executor's ``poll_result``, where it has one). While a
        manual station waits for a report, the inbox is read even with no station free."""
        poll_result = getattr(self.executor, "poll_result", None)
        if self.people is None or poll_result is None:
            return self.executor.next_result()
        while True:
            result = poll_result(self.people.poll_interval)
            if result is not None:
                return result
            if (self._free or self.people.awaits_reports()) and self.control.accepting and self.people.poll(force=True):
                return None

    def _affordable(self, candidate: Candidate, station: str) -> bool:
        """Whether the cost budget still covers ``candidate`` after what finished and what is running."""
        cost = self.routing.cost(self.routing.cost_key(candidate.params, station))
        spent = sum(self.state.cost.values()) + sum(self._committed.values())
        if math.isfinite(cost) and spent + cost > self.cost_budget * (1 + 1e-12):  # type: ignore[operator]
            if not self.state.stop_reason:
                self.state.stop_reason = f"cost budget {self.cost_budget:g} reached ({spent:g} spent or committed)"
            return False
        self._committed[candidate.uid] = cost if math.isfinite(cost) else 0.0
        return True

    def _ask(self, n: int, pending: list[Candidate], fidelity: str | None = None) -> list[Candidate]:
        """Ask the planner (guarded; at ``fidelity`` when given) and record the suggestion before anything runs."""
        t0 = time.perf_counter()
        try:
            candidates = self.proposer.ask(n, pending, fidelity)
        except PlanningUnavailable as exc:  # no new work; what runs finishes and is recorded; run() raises it
            if self._error is None:
                self._error = exc
            self.state.stop_reason = exc.message
            return []
        self.state.fallbacks = self.proposer.fallbacks
        crashpoint("planner.after_ask")
        latency = time.perf_counter() - t0
        now = self.now()
        index = -1
        if not candidates and fidelity is not None:
            return candidates  # the planner declined to fill an idle station (idle_stations="worth"): nothing to record
        if getattr(self.journal, "records_suggestions", True):
            state = self.planner.state_summary()
            state["last_decision"] = self.proposer.decision(candidates)
            index = self.journal.suggestion(
                t=now, planner=self.planner.name, generator=candidates[0].generator if candidates else "",
                candidates=candidates, n_observations=self.planner.n_observations, state_hash=self.planner.state_hash(),
                state=state, latency=latency,
            )
        for c in candidates:
            self._suggestion_of[c.uid] = index
            self._t_suggested[c.uid] = now
        return candidates

    def _start(self, candidate: Candidate, runner: StationRunner) -> None:
        """Ledger ``started``, then hand the experiment to the executor."""
        md = {**self.md, "planner": self.planner.name, **self.routing.metadata(candidate)}
        if self.people is not None:
            md.update(self.people.metadata(candidate))
        offset = self.attempt_offset.get(candidate.uid, 0)
        if offset:
            md["attempt_offset"] = offset
        self.journal.started(candidate=candidate, station=runner.name, attempt=offset + 1, repeated=candidate.uid in self.repeat,
                             t=self.now(), suggestion=self._suggestion_of.get(candidate.uid, -1))
        self.executor.submit(runner, candidate, md)
        self._in_flight[candidate.uid] = runner
        self.state.busy[runner.name] = candidate
        self.state.started += 1
        self._emit("submitted")

    def _station_is_free(self, result: ExperimentResult) -> None:
        runner = self._in_flight.pop(result.candidate.uid)
        self._committed.pop(result.candidate.uid, None)  # its cost is counted in state.cost once recorded
        self.state.busy.pop(runner.name, None)
        self._free.append(runner)
        self._free.sort(key=self.runners.index)

    def _record_and_tell(self, result: ExperimentResult) -> None:
        """Interrupted: record it and queue it again. Finished: ledger it (fsynced), then tell the planner."""
        if self.clock_offset:
            result = replace(result, t_started=result.t_started + self.clock_offset, t_finished=result.t_finished + self.clock_offset)
        if result.interrupted:
            self._interrupted(result)
        else:
            self.record(replace(result, repeated=result.candidate.uid in self.repeat))

    def _react(self, result: ExperimentResult) -> None:
        """Stop taking work past the failure budget, or when the disk is full."""
        s = self.state
        if self._error is None and not result.interrupted:
            # Sample faults are results (the film did not form), not malfunctions: they do not count.
            exceeded = self.failure_budget.check(failed=s.failed - s.sample_faults, finished=s.finished, last_reason=result.reason)
            if exceeded is not None:
                self._fail_fast(exceeded)
        if self._error is None and result.interrupted and "disk full" in result.reason:
            self._fail_fast(DiskFullError(result.reason, hint="free some space, then run labflow resume"))

    def _outcome(self) -> CampaignState:
        s = self.state
        if self._error is not None:
            raise self._error
        if self.control.state == "stopping" and s.finished < s.budget:
            s.stop_reason = self.control.reason or "stopped"
            raise CampaignInterrupted(
                f"campaign stopped ({s.stop_reason}) after {s.finished} of {s.budget} experiments; "
                f"{len(self.queue) + s.interrupted} to run on resume",
                hint="continue it with: labflow resume <campaign>",
            )
        return s

    # -- recording ------------------------------------------------------------------------
    def record(self, result: ExperimentResult, *, retryable: bool | None = None) -> None:
        """Record a finished experiment (ledger first: once this returns, it survives any crash), then tell the planner."""
        s = self.state
        if result.failed and self.failures.note_failure(result.candidate.params, result.reasons or (result.reason,), result.reason):
            result = replace(result, status=ExperimentStatus.ABANDONED)
            s.abandoned += 1
        self.results.append(result)
        obs = result.observation()
        row = experiment_row(result, suggestion=self._suggestion_of.get(result.candidate.uid, -1),
                             t_suggested=self._t_suggested.get(result.candidate.uid, math.nan), objectives=self.planner.objectives)
        self.account(result.candidate.params, row, obs.status, result.sample_fault, result.outcomes)
        self.journal.finished(row, obs, reasons=list(result.reasons),
                              retryable=retryable if retryable is not None else obs.status is Status.FAILED)
        self.planner.tell(obs)
        if obs.status is Status.COMPLETED:
            s.completed += 1
        else:
            s.failed += 1
        if result.repeated:
            s.repeated += 1
        s.best = self.planner.best()
        s.last = result
        if s.finished >= self._next_snapshot:
            self.snapshot()
        self._emit("finished")

    def account(self, params: Mapping[str, Any], row: dict[str, Any], status: Status, sample_fault: bool,
                outcomes: Mapping[str, float]) -> None:
        """Update the counters that span the campaign (sample faults, cost, hypervolume) and fill ``row``'s."""
        s = self.state
        if sample_fault:
            s.sample_faults += 1
        key = self.routing.cost_key(params, str(row.get("station", "")))
        row["cost"] = cost = self.routing.cost(key)
        if key is not None and math.isfinite(cost):
            s.cost[key] = s.cost.get(key, 0.0) + cost
        objectives = self.planner.objectives
        if status is Status.COMPLETED and all(o.name in outcomes for o in objectives):
            self._Y.append([o.sign * float(outcomes[o.name]) for o in objectives])
        if len(objectives) >= 2:
            s.hypervolume = row["hypervolume"] = objective_hypervolume(np.array(self._Y), objectives, self._reference_point)

    def _reference_point(self) -> Mapping[str, float] | None:
        try:
            return self.planner.reference_point()
        except Exception:  # noqa: BLE001 - a planner without one: no hypervolume (NaN)
            return None

    def _interrupted(self, result: ExperimentResult) -> None:
        s = self.state
        s.interrupted += 1
        s.started -= 1
        self.queue.insert(0, result.candidate)  # in-process resume would run it again
        self.journal.interrupted({"uid": result.candidate.uid, "station": result.station, "attempt": result.attempts,
                                  "reason": result.reason, "t": self.now(), "run_uids": ",".join(result.run_uids)})
        self._emit("interrupted")

    def _fail_fast(self, exc: BaseException) -> None:
        """Stop taking new work and interrupt what runs; the loop raises ``exc`` once drained."""
        if self._error is None:
            self._error = exc
        self.state.stop_reason = getattr(exc, "message", str(exc))
        self.control.request_stop(type(exc).__name__, defer=False)

    def snapshot(self) -> None:
        """Record the planner's state and the counters (a resume checks against it)."""
        s = self.state
        # Every ``snapshot_every`` experiments, and never more often than every tenth of those
        # finished: a snapshot holds the whole history, so a fixed period would cost O(N^2).
        self._next_snapshot = s.finished + max(self.snapshot_every, s.finished // 10)
        self.journal.snapshot({"planner": self.planner.state_dict(), "state_hash": self.planner.state_hash(),
                               "finished": s.finished, "completed": s.completed, "failed": s.failed, "budget": s.budget})

    _snapshot = snapshot  # the name launch used

    def _candidate_on(self, runner: StationRunner) -> Candidate:
        return self.state.busy[runner.name]

    def _emit(self, event: str) -> None:
        for listener in self.listeners:
            listener(event, self.state)
