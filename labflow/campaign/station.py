"""The station runner: one attempt of one experiment on one station's own RunEngine.

:meth:`StationRunner.run_once` runs :func:`labflow.plans.run_experiment` and turns the bluesky
documents into an :class:`~labflow.campaign.result.ExperimentResult` (completed or invalid), or
raises :class:`~labflow.errors.ExperimentFailed` (the run failed) or
:class:`~labflow.campaign.result.ExperimentInterrupted` (the campaign paused and stopped it, or
the disk is full). How many attempts an experiment gets is the attempt policy's business
(:mod:`labflow.campaign.policy`); when it runs is the executor's (:mod:`labflow.executors`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from labflow.campaign.control import CampaignControl
from labflow.campaign.result import ExperimentInterrupted, ExperimentResult, ExperimentStatus
from labflow.errors import DiskFullError, ExperimentFailed, UnitError
from labflow.objectives import Objective
from labflow.records import Candidate
from labflow.space import Space
from labflow.units import convert

__all__ = ["StationRunner", "find_in_chain", "run_uids_of"]


class StationRunner:
    """Runs experiments on one station with its own RunEngine, one at a time.

    The RunEngine is built with ``context_managers=[]`` so it can run in a worker thread
    (bluesky installs a SIGINT handler otherwise); the campaign handles interruption itself
    (:class:`CampaignControl`). ``suspenders`` (bluesky suspenders, e.g. an interlock, or
    zero-argument callables making one: a suspender serves a single RunEngine, so give factories
    when several stations share an interlock) are installed beside those the station brings
    (``station.suspenders()``). A station may bring document callbacks too (``station.subscribers()``:
    a manual station learns from the start document which experiment its work order is for), and may
    bound its waits itself (``station.waits_on_people``: a work order's own timeout, not ``timeout``).
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
        self.timeout = None if getattr(station, "waits_on_people", False) else timeout
        self.control: CampaignControl | None = None
        self.RE = RunEngine({}, context_managers=[])
        # One subscription for the station's life: it files the documents of the run in progress
        # (subscribing and unsubscribing around every run cost about 1 ms an experiment).
        self._docs: list[tuple[str, dict]] | None = None
        self.RE.subscribe(self._collect)
        for cb in [*getattr(station, "subscribers", lambda: [])(), *subscribers]:
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
        params = self.space.to_quantities(candidate.params)
        run_md = {**md, "experiment_uid": candidate.uid, "attempt": attempt, "station": self.name,
                  "generator": candidate.generator}
        with self._lock:
            if self.control is not None and self.control.state == "stopping":
                raise ExperimentInterrupted(f"{self.name}: the campaign is stopping ({self.control.reason}); not started")
            self._docs = docs
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
                disk = find_in_chain(exc, DiskFullError)
                if disk is not None:  # our own record could not be written: pause, don't blame the sample
                    raise ExperimentInterrupted(f"{self.name}: {disk.message}") from _tag(disk, run_uids)
                raise ExperimentFailed(f"{self.name}: {type(exc).__name__}: {exc}") from _tag(exc, run_uids)
            finally:
                self._docs = None
        return self._outcome(candidate, docs, attempt)

    def _collect(self, name: str, doc: dict) -> None:
        if self._docs is not None:
            self._docs.append((name, doc))

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
        status = ExperimentStatus.INVALID if bad else ExperimentStatus.COMPLETED
        return ExperimentResult(
            candidate=candidate,
            station=self.name,
            status=status,
            outcomes=outcomes if not bad else {},  # an invalid experiment gives the model no numbers at all
            raw=raw,
            reason="; ".join(f"invalid reading: {b}" for b in bad),
            run_uids=tuple(run_uids),
            attempts=attempt,
        )


def find_in_chain(exc: BaseException | None, kind: type) -> Any:
    """The first exception of type ``kind`` in ``exc``'s chain (causes and contexts), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _tag(exc: BaseException, run_uids: list[str]) -> BaseException:
    """Attach the bluesky run uids of a failed attempt to its exception (the policy collects them)."""
    exc.labflow_run_uids = run_uids  # type: ignore[attr-defined]
    return exc


def run_uids_of(exc: BaseException) -> list[str]:
    """The bluesky run uids a failed or interrupted attempt left on its exception (or its cause)."""
    return list(getattr(exc, "labflow_run_uids", None) or getattr(exc.__cause__, "labflow_run_uids", None) or [])
