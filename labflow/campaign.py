"""The closed loop: ask the planner, run experiments on free stations, record, tell, repeat.

The loop is independent of how experiments are executed. An *executor* starts an
experiment on a station and hands back results as they finish: threads in real time
(:class:`LocalExecutor`), Prefect tasks (:class:`labflow.flows.PrefectExecutor`), or a
discrete-event simulation in virtual time (:class:`labflow.sim.clock.VirtualTimeExecutor`).

One experiment is in flight per station. When one finishes, the planner is told and asked
for the next, with the still-running candidates passed as pending so that no two stations
get the same point.

Reliability (``docs/reliability.md``)
-------------------------------------
* With a *journal* (:class:`labflow.store.journal.CampaignJournal`, as :func:`labflow.launch.run_recipe`
  builds it) every decision is ledgered, fsynced, before it is acted on: a suggestion before
  its candidates run, ``started`` before a run begins, ``finished`` before the planner is told.
  Given the *history* of a ledger, the loop resumes: in-flight experiments are repeated once
  (``repeated=1``), proposed-but-unstarted candidates are run, nothing finished is run again.
* Failure budget (:class:`FailureBudget`): the loop stops with
  :class:`~labflow.errors.FailureRateExceeded` when failures pass the threshold, and a
  candidate that failed twice for the same reason is *abandoned*: never proposed again.
* Pause and stop (:class:`CampaignControl`), bluesky's semantics: ``request_pause(defer=True)``
  pauses each station's RunEngine at its next checkpoint, ``defer=False`` at once;
  ``resume()`` continues; ``request_stop()`` pauses (deferred, then immediate after
  ``stop_grace`` seconds) and stops the runs cleanly (``exit_status='success'``); the cut
  experiments are ledgered as *interrupted* and repeated on resume. With ``handle_signals``,
  SIGTERM and a first Ctrl-C request a deferred stop, a second Ctrl-C an immediate one.
* Suspenders (e.g. a glovebox oxygen interlock) are installed on every station's RunEngine:
  a tripped one suspends the run, which resumes by itself when the signal recovers.
* The planner cannot wedge the loop: if ``ask`` raises, or proposes a point outside the space,
  the loop substitutes seeded random candidates tagged ``generator="fallback"``.

Materials campaigns (``docs/decisions/0004-recipes-for-real-campaigns.md``)
----------------------------------------------------------------------------
* Sample faults: a failure whose exception (anywhere in its chain) has a true
  ``sample_fault`` attribute (:class:`labflow.sim.devices.SampleFault`), or whose reason
  matches one of ``sample_fault_patterns``, is the sample's fault: it is not retried, it is
  told to the planner as ``Observation.sample_fault=True`` (a feasibility model learns from
  it), recorded in the ``sample_fault`` column, and it does not count against the failure
  budget (it is a result, not a malfunction). Every other failure is the instrument's.
* Routing: with ``routes`` (value of the candidate's ``route_parameter``, e.g. its fidelity ->
  station names), a candidate runs only on those stations; a queued candidate waits for one of
  them rather than run elsewhere. ``costs`` (same keys) gives each experiment's cost, recorded
  in the ``cost`` column and summed per fidelity in ``CampaignState.cost``.
* Several objectives: each finished experiment records the hypervolume of this campaign's
  completed experiments so far (``hypervolume`` column; against the objectives' thresholds,
  else the planner's current reference point).
* Each suggestion's record carries the planner's ``last_decision`` (generator, reason for a
  fallback, acquisition values, model summary) under ``state["last_decision"]``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from labflow.errors import (
    CampaignInterrupted,
    DiskFullError,
    ExperimentFailed,
    FailureRateExceeded,
    LabflowError,
    SpaceError,
    UnitError,
)
from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.records import Candidate, Observation, Status
from labflow.space import Space
from labflow.store.provenance import ProvenanceWriter
from labflow.faults import crashpoint
from labflow.units import convert

log = logging.getLogger("labflow.campaign")


class ExperimentInterrupted(LabflowError, RuntimeError):
    """An experiment was cut short by a pause/stop (or a full disk): not a failure; it is repeated on resume."""


@dataclass
class ExperimentResult:
    """What came of running one candidate on one station (all attempts included)."""

    candidate: Candidate
    station: str
    status: Status
    outcomes: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    run_uids: list[str] = field(default_factory=list)
    attempts: int = 1
    t_started: float = math.nan
    t_finished: float = math.nan
    sample_fault: bool = False
    interrupted: bool = False  # cut short by a stop/pause: not finished, repeated on resume
    reasons: list[str] = field(default_factory=list)  # one per failed attempt
    repeated: bool = False  # this attempt repeats one a crash or a stop interrupted
    abandoned: bool = False

    def observation(self) -> Observation:
        return Observation(
            uid=self.candidate.uid,
            params=dict(self.candidate.params),
            outcomes=dict(self.outcomes) if self.status is Status.COMPLETED else {},
            status=self.status,
            reason=self.reason,
            sample_fault=self.sample_fault,
        )


# -- pause / resume / stop ------------------------------------------------------------------
class CampaignControl:
    """Pause, resume and stop a running campaign, from any thread (or a signal handler).

    States: ``running`` -> ``paused`` (``request_pause``) -> ``running`` (``resume``), and
    ``stopping`` (``request_stop``), from which there is no way back. While paused or stopping
    no new experiment starts. Each station's RunEngine is paused the bluesky way; a worker whose
    run was paused waits here for the decision: resume the run, or stop it cleanly.
    """

    def __init__(self, stop_grace: float = 5.0) -> None:
        self.stop_grace = float(stop_grace)
        self.state = "running"
        self.reason = ""
        self._cond = threading.Condition()
        self._engines: dict[str, RunEngine] = {}
        self._timer: threading.Timer | None = None

    def register(self, name: str, RE: RunEngine) -> None:
        self._engines[name] = RE

    def _pause_engines(self, defer: bool) -> None:
        for RE in list(self._engines.values()):
            try:
                if RE.state == "running":
                    RE.request_pause(defer=defer)
            except Exception:  # noqa: BLE001 - idle or finishing: nothing to pause
                pass

    def request_pause(self, defer: bool = True) -> None:
        """Pause at the next checkpoint (``defer``) or now; no new experiment starts."""
        with self._cond:
            if self.state == "stopping":
                return
            self.state = "paused"
            self._cond.notify_all()
        self._pause_engines(defer)

    def resume(self) -> None:
        """Continue after a pause: paused runs resume from their last checkpoint."""
        with self._cond:
            if self.state == "paused":
                self.state = "running"
                self._cond.notify_all()

    def request_stop(self, reason: str = "stop requested", *, defer: bool = True) -> None:
        """Stop: a deferred pause, then (after ``stop_grace`` s, or at once) an immediate one;
        paused runs are stopped cleanly and their experiments repeated on resume."""
        with self._cond:
            first = self.state != "stopping"
            if first:
                self.state = "stopping"
                self.reason = reason
            self._cond.notify_all()
        if defer and first:
            self._pause_engines(True)
            self._timer = threading.Timer(self.stop_grace, self._pause_engines, args=(False,))
            self._timer.daemon = True
            self._timer.start()
        else:
            self._pause_engines(False)

    @property
    def accepting(self) -> bool:
        return self.state == "running"

    def wait_decision(self) -> str:
        """For a worker whose run is paused: block until 'resume' or 'stop'."""
        with self._cond:
            while self.state == "paused":
                self._cond.wait(0.5)
            return "stop" if self.state == "stopping" else "resume"

    def wait_running(self, timeout: float) -> bool:
        with self._cond:
            if self.state == "paused":
                self._cond.wait(timeout)
            return self.state == "running"

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class StationRunner:
    """Runs experiments on one station with its own RunEngine, one at a time.

    The RunEngine is built with ``context_managers=[]`` so it can run in a worker thread
    (bluesky installs a SIGINT handler otherwise); the campaign handles interruption itself
    (:class:`CampaignControl`). ``suspenders`` (bluesky suspenders, e.g. an interlock, or
    zero-argument callables making one: a suspender serves a single RunEngine, so give factories
    when several stations share an interlock) are installed beside those the station brings
    (``station.suspenders()``).
    """

    def __init__(
        self,
        station: Any,
        space: Space,
        objectives: Sequence[Objective],
        *,
        subscribers: Iterable[Callable[[str, Mapping[str, Any]], None]] = (),
        timeout: float | None = None,
        suspenders: Iterable[Any] = (),
    ) -> None:
        self.station = station
        self.name = station.name
        self.space = space
        self.objectives = list(objectives)
        self.timeout = timeout
        self.control: CampaignControl | None = None
        self.RE = RunEngine({}, context_managers=[])
        for cb in subscribers:
            self.RE.subscribe(cb)
        # A station may bring bluesky suspenders (an interlock, a remote server's heartbeat):
        # the RunEngine then pauses the run while they are tripped and resumes after.
        for suspender in [*getattr(station, "suspenders", lambda: [])(), *suspenders]:
            if callable(suspender) and not hasattr(suspender, "install"):
                suspender = suspender()  # a factory: a bluesky suspender serves one RunEngine, so one each
            self.RE.install_suspender(suspender)
        self._lock = threading.Lock()

    def run_once(self, candidate: Candidate, md: Mapping[str, Any], attempt: int = 1) -> ExperimentResult:
        """One attempt: run the plan, extract the outcomes. Raises ``ExperimentFailed`` when the run fails,
        ``ExperimentInterrupted`` when the campaign stopped it."""
        from labflow.plans import run_experiment

        docs: list[tuple[str, dict]] = []

        def collect(name: str, doc: dict) -> None:
            docs.append((name, doc))

        params = self.space.to_quantities(candidate.params)
        run_md = {**md, "experiment_uid": candidate.uid, "attempt": attempt, "station": self.name,
                  "generator": candidate.generator}
        with self._lock:
            if self.control is not None and self.control.state == "stopping":
                raise ExperimentInterrupted(f"{self.name}: the campaign is stopping ({self.control.reason}); not started")
            token = self.RE.subscribe(collect)
            try:
                try:
                    self.RE(run_experiment(self.station, params, run_md, timeout=self.timeout))
                except RunEngineInterrupted:
                    self._after_pause()
            except ExperimentInterrupted as exc:
                exc.labflow_run_uids = [d["uid"] for n, d in docs if n == "start"]  # type: ignore[attr-defined]
                raise
            except Exception as exc:  # the RunEngine has closed the run with exit_status 'fail'
                run_uids = [d["uid"] for n, d in docs if n == "start"]
                disk = _find(exc, DiskFullError)
                if disk is not None:  # our own record could not be written: pause, don't blame the sample
                    raise ExperimentInterrupted(f"{self.name}: {disk.message}") from _tag(disk, run_uids)
                raise ExperimentFailed(f"{self.name}: {type(exc).__name__}: {exc}") from _tag(exc, run_uids)
            finally:
                self.RE.unsubscribe(token)
        return self._outcome(candidate, docs, attempt)

    def _after_pause(self) -> None:
        """The run is paused: resume it or stop it, as the campaign decides."""
        while True:
            decision = self.control.wait_decision() if self.control is not None else "stop"
            try:
                if decision == "resume":
                    self.RE.resume()
                    return
                reason = self.control.reason if self.control is not None else "paused"
                try:
                    self.RE.stop()  # bluesky's clean stop: the run closes with exit_status 'success'
                except Exception:  # noqa: BLE001 - already idle
                    pass
                raise ExperimentInterrupted(f"{self.name}: stopped ({reason})")
            except RunEngineInterrupted:
                continue

    def _outcome(self, candidate: Candidate, docs: list[tuple[str, dict]], attempt: int) -> ExperimentResult:
        run_uids = [d["uid"] for n, d in docs if n == "start"]
        stop = next((d for n, d in docs if n == "stop"), {})
        if stop.get("exit_status", "success") != "success":
            raise ExperimentFailed(f"{self.name}: run ended with exit_status {stop.get('exit_status')!r}: {stop.get('reason', '')}")
        descriptors = {d["uid"]: d for n, d in docs if n == "descriptor"}
        events = [d for n, d in docs if n == "event" and descriptors.get(d["descriptor"], {}).get("name") == "primary"]
        if not events:
            raise ExperimentFailed(f"{self.name}: the run recorded no primary event")
        event = events[-1]
        data_keys = descriptors[event["descriptor"]]["data_keys"]
        outcomes: dict[str, float] = {}
        raw: dict[str, Any] = {}
        bad: list[str] = []
        for obj in self.objectives:
            key = self.station.reading_key(obj.name)
            if key not in event["data"]:
                raise ExperimentFailed(f"{self.name}: the instrument reported no {key!r} for objective {obj.name!r}")
            value = event["data"][key]
            raw[obj.name] = value
            try:
                value = float(value)
            except (TypeError, ValueError):
                bad.append(f"{obj.name} = {value!r} is not a number")
                continue
            if not math.isfinite(value):
                bad.append(f"{obj.name} = {value}")
                continue
            try:
                outcomes[obj.name] = convert(value, obj.unit, from_unit=data_keys[key].get("units") or "")
            except UnitError as exc:
                raise ExperimentFailed(f"{self.name}: {obj.name}: {exc.message}") from exc
        status = Status.INVALID if bad else Status.COMPLETED
        return ExperimentResult(
            candidate=candidate,
            station=self.name,
            status=status,
            outcomes=outcomes if not bad else {},  # an invalid experiment gives the model no numbers at all
            raw=raw,
            reason="; ".join(f"invalid reading: {b}" for b in bad),
            run_uids=run_uids,
            attempts=attempt,
        )


def _find(exc: BaseException | None, kind: type) -> Any:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _tag(exc: BaseException, run_uids: list[str]) -> BaseException:
    exc.labflow_run_uids = run_uids  # type: ignore[attr-defined]
    return exc


def run_with_retries(runner: StationRunner, candidate: Candidate, md: Mapping[str, Any], retries: int, retry_delay: float = 0.0) -> ExperimentResult:
    """Run a candidate up to ``1 + retries`` times; a final failure becomes a FAILED result (never raises).

    A stop or pause that cuts the run short gives an ``interrupted`` result (not retried)."""
    run_uids: list[str] = []
    reasons: list[str] = []
    first = int(md.get("attempt_offset", 0) or 0)
    for attempt in range(first + 1, first + retries + 2):
        try:
            result = runner.run_once(candidate, md, attempt)
            result.run_uids = run_uids + result.run_uids
            result.reasons = reasons
            return result
        except ExperimentInterrupted as exc:
            run_uids += getattr(exc, "labflow_run_uids", []) or getattr(exc.__cause__, "labflow_run_uids", [])
            return ExperimentResult(candidate, runner.name, Status.FAILED, reason=exc.message, run_uids=run_uids,
                                    attempts=attempt, interrupted=True, reasons=reasons)
        except ExperimentFailed as exc:
            reasons.append(exc.message)
            run_uids += getattr(exc.__cause__, "labflow_run_uids", [])
            if is_sample_fault(exc):  # a result, not a malfunction: making it again would fail again
                return ExperimentResult(candidate, runner.name, Status.FAILED, reason=exc.message, run_uids=run_uids,
                                        attempts=attempt, reasons=reasons, sample_fault=True)
            if attempt < first + retries + 1 and retry_delay > 0:
                time.sleep(retry_delay)
    return ExperimentResult(candidate, runner.name, Status.FAILED, reason=reasons[-1], run_uids=run_uids,
                            attempts=first + retries + 1, reasons=reasons)


def is_sample_fault(exc: BaseException | None) -> bool:
    """True when ``exc`` or any exception in its chain (causes and contexts) has a true
    ``sample_fault`` attribute: the device said the sample, not the instrument, failed."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if getattr(exc, "sample_fault", False) is True:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class Executor(Protocol):
    """Starts experiments and hands back results in the order they finish."""

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None: ...

    def next_result(self) -> ExperimentResult: ...

    def now(self) -> float: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Real time, one thread per station, retries in process. No orchestration server needed."""

    def __init__(self, max_workers: int, *, retries: int = 0, retry_delay: float = 0.0) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="labflow-station")
        self._futures: set[cf.Future] = set()
        self.retries = retries
        self.retry_delay = retry_delay
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _run(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> ExperimentResult:
        t0 = self.now()
        result = run_with_retries(runner, candidate, md, self.retries, self.retry_delay)
        result.t_started, result.t_finished = t0, self.now()
        return result

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        self._futures.add(self._pool.submit(self._run, runner, candidate, md))

    def next_result(self) -> ExperimentResult:
        # Wait in short slices so that the main thread stays responsive to signals.
        while True:
            done, _ = cf.wait(self._futures, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            if done:
                break
        fut = min(done, key=lambda f: id(f))
        self._futures.discard(fut)
        return fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# -- failure budget ------------------------------------------------------------------------
@dataclass(frozen=True)
class FailureBudget:
    """When a campaign gives up.

    ``max_fraction``: stop when failed/finished exceeds it, once at least ``min_failures``
    experiments failed (failed and invalid both count). ``abandon_after``: a candidate whose
    attempts failed this many times with the same reason is abandoned, never proposed again.
    """

    max_fraction: float = 0.5
    min_failures: int = 5
    abandon_after: int = 2

    def exceeded(self, failed: int, finished: int) -> bool:
        return failed >= self.min_failures and finished > 0 and failed / finished > self.max_fraction


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUM = re.compile(r"\d+(?:\.\d+)?")


def reason_key(reason: str) -> str:
    """A failure reason with uids and numbers blanked: the same fault gives the same key."""
    return _NUM.sub("#", _UUID.sub("<uid>", reason))


def _point_key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: (round(float(v), 9) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                       for k, v in sorted(params.items())}, default=str)


# -- the loop -------------------------------------------------------------------------------
@dataclass
class CampaignState:
    """Counters the live display and the summary read."""

    budget: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    best: Observation | None = None
    last: ExperimentResult | None = None
    busy: dict[str, Candidate] = field(default_factory=dict)
    interrupted: int = 0
    repeated: int = 0
    abandoned: int = 0
    fallbacks: int = 0
    stop_reason: str = ""
    sample_faults: int = 0
    cost: dict[str, float] = field(default_factory=dict)  # route value (fidelity) -> total cost so far
    hypervolume: float = math.nan  # several objectives: of this campaign's completed experiments

    @property
    def finished(self) -> int:
        return self.completed + self.failed


Listener = Callable[[str, CampaignState], None]


class _WriterSink:
    """The journal interface over a bare ProvenanceWriter (or nothing): the pre-ledger behaviour."""

    def __init__(self, writer: ProvenanceWriter | None) -> None:
        self.writer = writer

    def suggestion(self, *, candidates: Sequence[Candidate], **kw: Any) -> int:
        if self.writer is None:
            return -1
        return self.writer.record_suggestion(candidates=[c.uid for c in candidates], **kw)

    def started(self, **kw: Any) -> None:
        pass

    def finished(self, row: Mapping[str, Any], obs: Observation, **kw: Any) -> None:
        if self.writer is not None:
            self.writer.record_experiment(row)

    def interrupted(self, row: Mapping[str, Any]) -> None:
        if self.writer is not None and hasattr(self.writer, "record_interrupted"):
            self.writer.record_interrupted(row)

    def snapshot(self, state: Mapping[str, Any]) -> None:
        pass


class Campaign:
    """Runs the closed loop until ``budget`` experiments have finished.

    Parameters
    ----------
    planner: proposes candidates (``ask``) and learns from observations (``tell``).
    runners: one :class:`StationRunner` per station; one experiment in flight on each.
    executor: how experiments run (threads, Prefect tasks, virtual time).
    writer: the provenance file; every suggestion and experiment is recorded as it happens.
    batch: candidates asked per planner call (q).
    md: metadata put in every bluesky run's start document (campaign id, recipe hash, ...).
    choices: for pool labs, a callable giving the points still available.
    journal: a :class:`labflow.store.journal.CampaignJournal` (ledger + provenance); when given,
        every step is ledgered before it is acted on and ``writer`` is not used.
    history: a replayed ledger (:class:`labflow.store.campaign_dir.CampaignHistory`) to resume
        from; the planner must already hold its observations (``labflow.launch.resume_campaign``).
    failure_budget: when to give up (:class:`FailureBudget`; default: >50 % after >= 5 failures).
    handle_signals: install SIGINT/SIGTERM handlers for the run (main thread only).
    stop_grace: seconds a deferred stop waits for a checkpoint before pausing at once.
    snapshot_every: write the planner snapshot every this many finished experiments.
    sample_fault_patterns: regular expressions; a failure whose reason matches is the sample's fault.
    routes, route_parameter: ``candidate.params[route_parameter]`` -> names of the stations that may run it.
    costs: the same keys -> cost of one experiment (recorded per experiment and summed per key).
    """

    def __init__(
        self,
        *,
        planner: Planner,
        runners: Sequence[StationRunner],
        executor: Executor,
        budget: int,
        writer: ProvenanceWriter | None = None,
        batch: int = 1,
        md: Mapping[str, Any] | None = None,
        choices: Callable[[], Any] | None = None,
        listeners: Iterable[Listener] = (),
        journal: Any = None,
        history: Any = None,
        failure_budget: FailureBudget | None = None,
        handle_signals: bool = False,
        stop_grace: float = 5.0,
        snapshot_every: int = 10,
        sample_fault_patterns: Iterable[str] = (),
        routes: Mapping[str, Sequence[str]] | None = None,
        route_parameter: str | None = None,
        costs: Mapping[str, float] | None = None,
    ) -> None:
        if not runners:
            raise LabflowError("a campaign needs at least one station")
        self.sample_fault_patterns = [re.compile(p) for p in sample_fault_patterns]
        self.route_parameter = route_parameter
        self.routes = {k: list(v) for k, v in (routes or {}).items()}
        self.costs = dict(costs or {})
        names = {r.name for r in runners}
        for key, stations in self.routes.items():
            if not stations or not set(stations) <= names:
                raise LabflowError(f"route {key!r} names stations {stations}; the campaign has {sorted(names)}")
        self._Y: list[list[float]] = []  # oriented outcomes of this campaign's completed experiments
        self.planner = planner
        self.runners = list(runners)
        self.executor = executor
        self.writer = writer
        self.journal = journal if journal is not None else _WriterSink(writer)
        self.batch = int(batch)
        self.md = dict(md or {})
        self.choices = choices
        self.listeners = list(listeners)
        self.state = CampaignState(budget=int(budget))
        self.results: list[ExperimentResult] = []
        self.failure_budget = failure_budget or FailureBudget()
        self.handle_signals = handle_signals
        self.snapshot_every = max(1, int(snapshot_every))
        self.control = CampaignControl(stop_grace)
        for r in self.runners:
            r.control = self.control
            self.control.register(r.name, r.RE)
        self._suggestion_of: dict[str, int] = {}
        self._t_suggested: dict[str, float] = {}
        self._queue: list[Candidate] = []
        self._attempt_offset: dict[str, int] = {}  # uid -> attempts already spent (repeats)
        self._repeat: set[str] = set()
        self._fail_reasons: dict[str, list[str]] = {}
        self._abandoned: dict[str, str] = {}
        self._error: BaseException | None = None
        self._last_sigint = -math.inf
        self._fallback_reason = ""
        if history is not None:
            self._restore(history)

    # -- pause / resume / stop (any thread) --------------------------------------------------
    def request_pause(self, defer: bool = True) -> None:
        self.control.request_pause(defer)

    def resume(self) -> None:
        self.control.resume()

    def request_stop(self, reason: str = "stop requested", *, defer: bool = True) -> None:
        self.control.request_stop(reason, defer=defer)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGTERM:
            print("labflow: SIGTERM: stopping at the next checkpoint (in-flight experiments are repeated on resume)", file=sys.stderr)
            self.control.request_stop("SIGTERM", defer=True)
            return
        now = time.monotonic()
        if now - self._last_sigint < 10.0:
            print("labflow: second Ctrl-C: pausing now and stopping", file=sys.stderr)
            self.control.request_stop("Ctrl-C twice", defer=False)
        else:
            print("labflow: Ctrl-C: pausing at the next checkpoint, then stopping (Ctrl-C again within 10 s: now)", file=sys.stderr)
            self.control.request_stop("Ctrl-C", defer=True)
        self._last_sigint = now

    # -- resuming -------------------------------------------------------------------------
    def _restore(self, h: Any) -> None:
        state = self.state
        for r in h.finished:
            status = Status(r["obs"]["status"])
            if status is Status.COMPLETED:
                state.completed += 1
            else:
                state.failed += 1
            row = r["row"]
            self._account(r["obs"]["params"], dict(row), status, bool(r["obs"].get("sample_fault")), r["obs"].get("outcomes", {}))
            if row.get("abandoned"):
                self._abandoned[_point_key(r["obs"]["params"])] = row.get("reason", "")
                state.abandoned += 1
            for reason in r.get("reasons", []):
                self._fail_reasons.setdefault(_point_key(r["obs"]["params"]), []).append(reason_key(reason))
        state.started = state.finished
        state.best = self.planner.best()
        for s in h.suggestions:
            for c in s["candidates"]:
                self._suggestion_of[c["uid"]] = s["index"]
                self._t_suggested[c["uid"]] = s["t"]
        for r in h.in_flight():
            cand = Candidate(uid=r["uid"], params=r["params"], planner=r.get("planner", ""), generator=r.get("generator", ""))
            spent = int(r.get("attempt", 1))
            if h.interruptions(r["uid"]) > 1:  # repeated once already: don't loop on it
                reason = "interrupted twice (crash or stop); not repeated automatically again"
                result = ExperimentResult(cand, r.get("station", ""), Status.FAILED, reason=reason, attempts=spent)
                self._record(result, retryable=True)
                continue
            self._attempt_offset[cand.uid] = spent
            self._repeat.add(cand.uid)
            self._queue.append(cand)
        for c in h.not_started():
            self._queue.append(Candidate(uid=c["uid"], params=c["params"], planner=c.get("planner", ""), generator=c.get("generator", "")))

    # -- asking ---------------------------------------------------------------------------
    def _emit(self, event: str) -> None:
        for listener in self.listeners:
            listener(event, self.state)

    def _decision(self, candidates: Sequence[Candidate]) -> dict[str, Any]:
        """The planner's account of this suggestion (``last_decision``), as plain JSON."""
        gens = {c.generator for c in candidates}
        if "fallback" in gens and self._fallback_reason:
            decision = {"generator": "fallback", "reason": self._fallback_reason}
        else:
            decision = dict(getattr(self.planner, "last_decision", None) or {})
            decision.setdefault("generator", candidates[0].generator if candidates else "")
        self._fallback_reason = ""
        return _plain_json(decision)

    def _fallback(self, n: int) -> list[Candidate]:
        space = self.planner.space
        rng = np.random.default_rng([int(self.planner.seed), int(self.planner.state_dict().get("asked", 0)), 7919])
        X = rng.random((n, space.dim))
        if space.constraints:
            X = space.repair(space.snap(X))
        df = space.decode(X)
        self.state.fallbacks += n
        return [Candidate(uid=_new_uid(), params={k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
                          planner=self.planner.name, generator="fallback") for row in df.to_dict("records")]

    def _propose(self, n: int, pending: list[Candidate], choices: Any) -> list[Candidate]:
        """planner.ask, guarded: an exception or an out-of-space point gives seeded random fallbacks."""
        try:
            got = self.planner.ask(n, pending, choices=choices) if choices is not None else self.planner.ask(n, pending)
        except Exception as exc:  # noqa: BLE001 - the planner must not wedge the loop (P14)
            if choices is not None:
                raise
            log.warning("planner %s failed to propose (%s: %s); using random fallback candidates", self.planner.name, type(exc).__name__, exc)
            self._fallback_reason = f"the planner raised {type(exc).__name__}: {exc}"
            return self._fallback(n)
        out = []
        for c in got:
            try:
                self.planner.space.coerce(c.params)
                out.append(c)
            except (SpaceError, KeyError, ValueError, TypeError):
                log.warning("planner %s proposed a point outside the space (%s); using a fallback", self.planner.name, c)
                self._fallback_reason = f"the planner proposed a point outside the space: {c}"
                out.extend(self._fallback(1))
        return out

    def _ask(self, n: int, pending: list[Candidate]) -> list[Candidate]:
        t0 = time.perf_counter()
        choices = self.choices() if self.choices is not None else None
        if choices is not None:
            n = min(n, len(choices))
            if n == 0:
                return []
        candidates = self._propose(n, pending, choices)
        # Abandoned candidates (failed twice for the same reason) are never proposed again.
        for _ in range(3):
            bad = [c for c in candidates if _point_key(c.params) in self._abandoned]
            if not bad:
                break
            avoid = pending + [Candidate(uid=f"abandoned-{i}", params=json.loads(k)) for i, k in enumerate(self._abandoned)]
            keep = [c for c in candidates if c not in bad]
            candidates = keep + self._propose(len(bad), avoid + keep, choices)
        bad = [c for c in candidates if _point_key(c.params) in self._abandoned]
        if bad:  # the planner insists: run something else rather than stall
            log.warning("planner %s keeps proposing abandoned candidates; using random fallbacks", self.planner.name)
            candidates = [c for c in candidates if c not in bad] + self._fallback(len(bad))
        crashpoint("planner.after_ask")
        latency = time.perf_counter() - t0
        now = self.executor.now()
        if self.writer is not None or not isinstance(self.journal, _WriterSink):
            state = {k: v for k, v in self.planner.state_dict().items() if k != "observations"}
            state["last_decision"] = self._decision(candidates)
            index = self.journal.suggestion(
                t=now,
                planner=self.planner.name,
                generator=candidates[0].generator if candidates else "",
                candidates=candidates,
                n_observations=self.planner.n_observations,
                state_hash=self.planner.state_hash(),
                state=state,
                latency=latency,
            )
        else:
            index = -1
        for c in candidates:
            self._suggestion_of[c.uid] = index
            self._t_suggested[c.uid] = now
        return candidates

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> CampaignState:
        """Run to the budget (or until a pool is exhausted). Returns the final counters.

        Raises :class:`~labflow.errors.CampaignInterrupted` when stopped (signal, ``request_stop``),
        :class:`~labflow.errors.FailureRateExceeded` past the failure budget, and
        :class:`~labflow.errors.DiskFullError` when the record cannot be written; in every case
        what finished is recorded and the in-flight experiments are marked interrupted.
        """
        installed = {}
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                installed[sig] = signal.signal(sig, self._on_signal)
        try:
            return self._run()
        finally:
            for sig, old in installed.items():
                signal.signal(sig, old)
            self.control.close()

    def _run(self) -> CampaignState:
        state = self.state
        queue = self._queue
        free = list(self.runners)
        in_flight: dict[str, tuple[Candidate, StationRunner]] = {}
        self._emit("start")
        try:
            while state.finished < state.budget or in_flight:
                while free and state.started < state.budget and self.control.accepting and self._error is None:
                    if not queue:
                        n = min(self.batch, state.budget - state.started)
                        pending = [c for c, _ in in_flight.values()] + queue
                        queue.extend(self._ask(n, pending))
                        if not queue:
                            break
                    pick = self._match(queue, free)
                    if pick is None:  # every queued candidate waits for a station of its own kind
                        break
                    candidate, runner = queue.pop(pick[0]), free.pop(pick[1])
                    md = {**self.md, "planner": self.planner.name}
                    if self.route_parameter is not None and self.route_parameter in candidate.params:
                        md[self.route_parameter] = candidate.params[self.route_parameter]
                    offset = self._attempt_offset.get(candidate.uid, 0)
                    if offset:
                        md["attempt_offset"] = offset
                    repeated = candidate.uid in self._repeat
                    self.journal.started(candidate=candidate, station=runner.name, attempt=offset + 1,
                                         repeated=repeated, t=self.executor.now(), suggestion=self._suggestion_of.get(candidate.uid, -1))
                    self.executor.submit(runner, candidate, md)
                    in_flight[candidate.uid] = (candidate, runner)
                    state.busy[runner.name] = candidate
                    state.started += 1
                    self._emit("submitted")
                if not in_flight:
                    if self.control.state == "paused" and self._error is None:
                        self.control.wait_running(0.5)
                        continue
                    break
                result = self.executor.next_result()
                _, runner = in_flight.pop(result.candidate.uid)
                state.busy.pop(runner.name, None)
                free.append(runner)
                free.sort(key=self.runners.index)
                try:
                    if result.interrupted:
                        self._interrupted(result)
                    else:
                        result.repeated = result.candidate.uid in self._repeat
                        self._record(result)
                except DiskFullError as exc:
                    self._fail_fast(exc)
                if self._error is None and "disk full" in result.reason and result.interrupted:
                    self._fail_fast(DiskFullError(result.reason, hint="free some space, then run labflow resume"))
        finally:
            self._emit("end")
        if self._error is not None:
            raise self._error
        if self.control.state == "stopping" and state.finished < state.budget:
            reason = self.control.reason or "stopped"
            state.stop_reason = reason
            raise CampaignInterrupted(
                f"campaign stopped ({reason}) after {state.finished} of {state.budget} experiments; "
                f"{len(queue) + state.interrupted} to run on resume",
                hint="continue it with: labflow resume <campaign>",
            )
        return state

    def _match(self, queue: list[Candidate], free: list[StationRunner]) -> tuple[int, int] | None:
        """(queue index, free-runner index) of the first queued candidate that a free station may run."""
        if not self.routes:
            return (0, 0)
        for i, c in enumerate(queue):
            allowed = self.routes.get(str(c.params.get(self.route_parameter))) if self.route_parameter else None
            for j, r in enumerate(free):
                if allowed is None or r.name in allowed:
                    return (i, j)
        return None

    def _route_key(self, params: Mapping[str, Any], station: str) -> str | None:
        """The cost key of an experiment: its fidelity, or the one route that holds its station."""
        if self.route_parameter is not None and self.route_parameter in params:
            return str(params[self.route_parameter])
        keys = [k for k, v in self.routes.items() if station in v]
        if len(keys) == 1:
            return keys[0]
        if len(self.costs) == 1:
            return next(iter(self.costs))
        return None

    def _account(self, params: Mapping[str, Any], row: dict[str, Any], status: Status, sample_fault: bool,
                 outcomes: Mapping[str, float]) -> None:
        """Update the counters that span the campaign (sample faults, cost, hypervolume) and fill ``row``."""
        state = self.state
        if sample_fault:
            state.sample_faults += 1
        key = self._route_key(params, str(row.get("station", "")))
        cost = self.costs.get(key, math.nan) if key is not None else math.nan
        row["cost"] = cost
        if key is not None and math.isfinite(cost):
            state.cost[key] = state.cost.get(key, 0.0) + cost
        objectives = self.planner.objectives
        if status is Status.COMPLETED and all(o.name in outcomes for o in objectives):
            self._Y.append([o.sign * float(outcomes[o.name]) for o in objectives])
        if len(objectives) >= 2:
            state.hypervolume = self._hypervolume()
            row["hypervolume"] = state.hypervolume

    def _hypervolume(self) -> float:
        from labflow.pareto import hypervolume

        objectives = self.planner.objectives
        if all(o.threshold is not None for o in objectives):
            ref = {o.name: float(o.threshold) for o in objectives}
        else:
            try:
                ref = self.planner.reference_point()
            except Exception:  # noqa: BLE001 - a planner without one: no hypervolume
                ref = None
        if not ref or not self._Y:
            return 0.0 if ref else math.nan
        return hypervolume(np.array(self._Y), np.array([o.sign * ref[o.name] for o in objectives]))

    def _fail_fast(self, exc: BaseException) -> None:
        """Stop taking new work and interrupt what runs; the loop raises ``exc`` once drained."""
        if self._error is None:
            self._error = exc
        self.state.stop_reason = getattr(exc, "message", str(exc))
        self.control.request_stop(type(exc).__name__, defer=False)

    def _interrupted(self, result: ExperimentResult) -> None:
        state = self.state
        state.interrupted += 1
        state.started -= 1
        self._queue.insert(0, result.candidate)  # in-process resume would run it again
        self.journal.interrupted(
            {"uid": result.candidate.uid, "station": result.station, "attempt": result.attempts, "reason": result.reason,
             "t": self.executor.now(), "run_uids": ",".join(result.run_uids)}
        )
        self._emit("interrupted")

    def _record(self, result: ExperimentResult, *, retryable: bool | None = None) -> None:
        state = self.state
        c = result.candidate
        key = _point_key(c.params)
        if result.status is Status.FAILED and not result.sample_fault and not result.interrupted:
            if any(p.search(r) for p in self.sample_fault_patterns for r in (result.reasons or [result.reason])):
                result.sample_fault = True
        if result.status is Status.FAILED:
            reasons = self._fail_reasons.setdefault(key, [])
            reasons.extend(reason_key(r) for r in (result.reasons or [result.reason]))
            if any(reasons.count(r) >= self.failure_budget.abandon_after for r in set(reasons)):
                result.abandoned = True
                self._abandoned[key] = result.reason
                state.abandoned += 1
        self.results.append(result)
        obs = result.observation()
        row = {
            "uid": c.uid,
            "station": result.station,
            "status": result.status.value,
            "reason": result.reason,
            "attempts": result.attempts,
            "run_uids": ",".join(result.run_uids),
            "suggestion": self._suggestion_of.get(c.uid, -1),
            "generator": c.generator,
            "t_suggested": self._t_suggested.get(c.uid, math.nan),
            "t_started": result.t_started,
            "t_finished": result.t_finished,
            "repeated": int(result.repeated),
            "abandoned": int(result.abandoned),
            "raw": _strict_json(result.raw),
            "sample_fault": int(result.sample_fault),
            **dict(c.params),
            **{o.name: result.outcomes.get(o.name, result.raw.get(o.name)) for o in self.planner.objectives},
        }
        self._account(c.params, row, result.status, result.sample_fault, result.outcomes)
        # Ledger first (fsynced): once this returns, the outcome survives any crash.
        self.journal.finished(row, obs, reasons=result.reasons, retryable=retryable if retryable is not None else result.status is Status.FAILED)
        self.planner.tell(obs)
        if result.status is Status.COMPLETED:
            state.completed += 1
        else:
            state.failed += 1
        if result.repeated:
            state.repeated += 1
        state.best = self.planner.best()
        state.last = result
        if state.finished % self.snapshot_every == 0:
            self._snapshot()
        self._emit("finished")
        # Sample faults are results (the film did not form), not malfunctions: they do not count.
        if self._error is None and self.failure_budget.exceeded(state.failed - state.sample_faults, state.finished):
            self._fail_fast(
                FailureRateExceeded(
                    f"{state.failed} of {state.finished} experiments failed (more than "
                    f"{self.failure_budget.max_fraction:.0%} after at least {self.failure_budget.min_failures} failures); "
                    f"last reason: {result.reason}",
                    hint="fix the instrument or the recipe, then resume; the threshold is configurable (FailureBudget)",
                )
            )

    def _snapshot(self) -> None:
        s = self.state
        self.journal.snapshot(
            {"planner": self.planner.state_dict(), "state_hash": self.planner.state_hash(),
             "finished": s.finished, "completed": s.completed, "failed": s.failed, "budget": s.budget}
        )


def _plain_json(obj: Any) -> Any:
    """``obj`` with numpy scalars made plain, tuples made lists and non-finite floats made None
    (the ledger takes strict JSON only)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _strict_json(raw: Mapping[str, Any]) -> str:
    from labflow.store.ledger import encode

    return encode(dict(raw)).decode()


def _new_uid() -> str:
    from labflow.records import new_uid

    return new_uid()
