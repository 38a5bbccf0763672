"""The closed loop: ask the planner, run experiments on free stations, record, tell, repeat.

The loop is independent of how experiments are executed. An *executor* starts an
experiment on a station and hands back results as they finish: threads in real time
(:class:`LocalExecutor`), Prefect tasks (:class:`labflow.flows.PrefectExecutor`), or a
discrete-event simulation in virtual time (:class:`labflow.sim.clock.VirtualTimeExecutor`).

One experiment is in flight per station. When one finishes, the planner is told and asked
for the next, with the still-running candidates passed as pending so that no two stations
get the same point.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bluesky import RunEngine

from labflow.errors import ExperimentFailed, LabflowError, UnitError
from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.records import Candidate, Observation, Status
from labflow.space import Space
from labflow.store.provenance import ProvenanceWriter
from labflow.units import convert


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

    def observation(self) -> Observation:
        return Observation(
            uid=self.candidate.uid,
            params=dict(self.candidate.params),
            outcomes=dict(self.outcomes) if self.status is Status.COMPLETED else {},
            status=self.status,
            reason=self.reason,
            sample_fault=self.sample_fault,
        )


class StationRunner:
    """Runs experiments on one station with its own RunEngine, one at a time.

    The RunEngine is built with ``context_managers=[]`` so it can run in a worker thread
    (bluesky installs a SIGINT handler otherwise); the campaign handles interruption itself.
    """

    def __init__(
        self,
        station: Any,
        space: Space,
        objectives: Sequence[Objective],
        *,
        subscribers: Iterable[Callable[[str, Mapping[str, Any]], None]] = (),
        timeout: float | None = None,
    ) -> None:
        self.station = station
        self.name = station.name
        self.space = space
        self.objectives = list(objectives)
        self.timeout = timeout
        self.RE = RunEngine({}, context_managers=[])
        for cb in subscribers:
            self.RE.subscribe(cb)
        # A station may bring bluesky suspenders (an interlock, a remote server's heartbeat):
        # the RunEngine then pauses the run while they are tripped and resumes after.
        for suspender in getattr(station, "suspenders", lambda: [])():
            self.RE.install_suspender(suspender)
        self._lock = threading.Lock()

    def run_once(self, candidate: Candidate, md: Mapping[str, Any], attempt: int = 1) -> ExperimentResult:
        """One attempt: run the plan, extract the outcomes. Raises ``ExperimentFailed`` when the run fails."""
        from labflow.plans import run_experiment

        docs: list[tuple[str, dict]] = []

        def collect(name: str, doc: dict) -> None:
            docs.append((name, doc))

        params = self.space.to_quantities(candidate.params)
        run_md = {**md, "experiment_uid": candidate.uid, "attempt": attempt, "station": self.name,
                  "generator": candidate.generator}
        with self._lock:
            token = self.RE.subscribe(collect)
            try:
                self.RE(run_experiment(self.station, params, run_md, timeout=self.timeout))
            except Exception as exc:  # the RunEngine has closed the run with exit_status 'fail'
                run_uids = [d["uid"] for n, d in docs if n == "start"]
                raise ExperimentFailed(f"{self.name}: {type(exc).__name__}: {exc}") from _tag(exc, run_uids)
            finally:
                self.RE.unsubscribe(token)
        return self._outcome(candidate, docs, attempt)

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
            outcomes=outcomes,
            raw=raw,
            reason="; ".join(f"invalid reading: {b}" for b in bad),
            run_uids=run_uids,
            attempts=attempt,
        )


def _tag(exc: BaseException, run_uids: list[str]) -> BaseException:
    exc.labflow_run_uids = run_uids  # type: ignore[attr-defined]
    return exc


def run_with_retries(runner: StationRunner, candidate: Candidate, md: Mapping[str, Any], retries: int, retry_delay: float = 0.0) -> ExperimentResult:
    """Run a candidate up to ``1 + retries`` times; a final failure becomes a FAILED result (never raises)."""
    run_uids: list[str] = []
    reason = ""
    for attempt in range(1, retries + 2):
        try:
            result = runner.run_once(candidate, md, attempt)
            result.run_uids = run_uids + result.run_uids
            return result
        except ExperimentFailed as exc:
            reason = exc.message
            run_uids += getattr(exc.__cause__, "labflow_run_uids", [])
            if attempt <= retries and retry_delay > 0:
                time.sleep(retry_delay)
    return ExperimentResult(candidate, runner.name, Status.FAILED, reason=reason, run_uids=run_uids, attempts=retries + 1)


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
        done, _ = cf.wait(self._futures, return_when=cf.FIRST_COMPLETED)
        fut = min(done, key=lambda f: id(f))
        self._futures.discard(fut)
        return fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


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

    @property
    def finished(self) -> int:
        return self.completed + self.failed


Listener = Callable[[str, CampaignState], None]


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
    ) -> None:
        if not runners:
            raise LabflowError("a campaign needs at least one station")
        self.planner = planner
        self.runners = list(runners)
        self.executor = executor
        self.writer = writer
        self.batch = int(batch)
        self.md = dict(md or {})
        self.choices = choices
        self.listeners = list(listeners)
        self.state = CampaignState(budget=int(budget))
        self.results: list[ExperimentResult] = []
        self._suggestion_of: dict[str, int] = {}
        self._t_suggested: dict[str, float] = {}

    def _emit(self, event: str) -> None:
        for listener in self.listeners:
            listener(event, self.state)

    def _ask(self, n: int, pending: list[Candidate]) -> list[Candidate]:
        t0 = time.perf_counter()
        choices = self.choices() if self.choices is not None else None
        if choices is not None:
            pend = {c.uid for c in pending}
            n = min(n, len(choices))
            if n == 0:
                return []
        candidates = self.planner.ask(n, pending, choices=choices) if choices is not None else self.planner.ask(n, pending)
        latency = time.perf_counter() - t0
        now = self.executor.now()
        if self.writer is not None:
            state = {k: v for k, v in self.planner.state_dict().items() if k != "observations"}
            index = self.writer.record_suggestion(
                t=now,
                planner=self.planner.name,
                generator=candidates[0].generator if candidates else "",
                candidates=[c.uid for c in candidates],
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

    def run(self) -> CampaignState:
        """Run to the budget (or until a pool is exhausted). Returns the final counters."""
        state = self.state
        queue: list[Candidate] = []
        free = list(self.runners)
        in_flight: dict[str, tuple[Candidate, StationRunner]] = {}
        self._emit("start")
        try:
            while state.finished < state.budget:
                while free and state.started < state.budget:
                    if not queue:
                        n = min(self.batch, state.budget - state.started)
                        pending = [c for c, _ in in_flight.values()] + queue
                        queue.extend(self._ask(n, pending))
                        if not queue:
                            break
                    candidate = queue.pop(0)
                    runner = free.pop(0)
                    md = {**self.md, "planner": self.planner.name}
                    self.executor.submit(runner, candidate, md)
                    in_flight[candidate.uid] = (candidate, runner)
                    state.busy[runner.name] = candidate
                    state.started += 1
                    self._emit("submitted")
                if not in_flight:
                    break
                result = self.executor.next_result()
                _, runner = in_flight.pop(result.candidate.uid)
                state.busy.pop(runner.name, None)
                free.append(runner)
                free.sort(key=self.runners.index)
                self._record(result)
        finally:
            self._emit("end")
        return state

    def _record(self, result: ExperimentResult) -> None:
        state = self.state
        self.results.append(result)
        obs = result.observation()
        self.planner.tell(obs)
        if result.status is Status.COMPLETED:
            state.completed += 1
        else:
            state.failed += 1
        state.best = self.planner.best()
        state.last = result
        if self.writer is not None:
            c = result.candidate
            self.writer.record_experiment(
                {
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
                    **dict(c.params),
                    **{o.name: result.outcomes.get(o.name, result.raw.get(o.name)) for o in self.planner.objectives},
                }
            )
        self._emit("finished")
