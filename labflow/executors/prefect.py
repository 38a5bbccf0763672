"""Running a campaign as a Prefect flow: each experiment is a Prefect task.

The flow run and its task runs appear in the Prefect UI with readable names; tasks run on a
thread pool with one worker per station, so one experiment is in flight per station. Each task
runs the experiment's attempts under the campaign's attempt policy -- the same rule as every
other executor -- so Prefect's own task retries stay off: they would retry sample faults, which
must never be retried, and lose the per-attempt reasons and run uids.

Prefect's task timeouts stay off too: tasks run in worker threads, where Prefect cannot interrupt
a blocking call. Experiments are bounded inside the plan instead: every wait has the recipe's
``execution.timeout``, every device Status times out, and reads are bounded
(:func:`labflow.plans.bounded_read`).

Station limits: campaigns that share instruments (several flow runs on one Prefect server) are
kept off each other's stations by Prefect global concurrency limits, one per station, named
:func:`station_limit_name` (``labflow-station:<lab>:<station>``, one slot). With
``station_limits=<lab name>`` each experiment's task holds its station's slot while it runs, so
two campaigns never drive the same station at once; a campaign whose station is busy waits.
A missing limit is created with one slot (an administrator may raise it with
``prefect gcl update``). Slots are leased: a holder that dies frees its slot after
``lease_duration`` seconds (at least 60, Prefect's minimum).
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from labflow.campaign.policy import AttemptPolicy
from labflow.campaign.result import ExperimentResult, ExperimentStatus
from labflow.campaign.station import StationRunner
from labflow.executors.base import BaseExecutor
from labflow.records import Candidate

__all__ = ["PrefectExecutor", "ensure_station_limit", "experiment_task", "run_as_flow", "station_limit_name"]

#: Prefix of the global concurrency limits that guard stations.
STATION_LIMIT_PREFIX = "labflow-station"


def station_limit_name(lab: str, station: str) -> str:
    """The Prefect global concurrency limit that guards ``station`` of the lab ``lab``.

    Prefect names may not hold ``/ % & > <``: those become ``_``, so that any lab name works."""
    clean = {ord(c): "_" for c in "/%&><"}
    return f"{STATION_LIMIT_PREFIX}:{lab.translate(clean)}:{station.translate(clean)}"


def ensure_station_limit(name: str, slots: int = 1) -> bool:
    """Create the global concurrency limit ``name`` with ``slots`` slots unless it exists (an
    existing limit is left as it is). Returns True when this call created it."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        except ObjectAlreadyExists:  # another campaign created it between our read and our create
            return False
        return True

T = TypeVar("T")


def _experiment(number: int, station: str, policy: AttemptPolicy, runner: StationRunner, candidate: Candidate,
                md: Mapping[str, Any], limits: tuple[str, ...] = (), lease_duration: float = 60.0) -> ExperimentResult:
    """One experiment, all its attempts (the policy's), as a Prefect task body. Each failed attempt's
    reason goes to the task run's log, so the Prefect UI shows what failed and why. With ``limits``
    (global concurrency limit names), the experiment runs only while it holds a slot of each.
    ``number`` and ``station`` name the task run (``experiment-0007-station2``)."""
    if limits:
        from prefect.client.schemas.objects import ConcurrencyLeaseHolder

        ctx = TaskRunContext.get()
        holder = ConcurrencyLeaseHolder(type="task_run", id=ctx.task_run.id) if ctx is not None else None
        with concurrency(list(limits), occupy=1, strict=True, lease_duration=lease_duration, holder=holder):
            result = policy.run(runner, candidate, md)
    else:
        result = policy.run(runner, candidate, md)
    if result.reasons or result.status is not ExperimentStatus.COMPLETED:
        logger = get_run_logger()
        for number, reason in enumerate(result.reasons, start=result.attempts - len(result.reasons) + 1):
            logger.warning("attempt %d failed: %s", number, reason)
        logger.info("experiment %s: %s after %d attempt(s)%s", candidate.uid, result.status, result.attempts,
                    " (sample fault: not retried)" if result.sample_fault else "")
    return result


experiment_task = task(_experiment, name="experiment", task_run_name="experiment-{number:04d}-{station}",
                       cache_policy=NO_CACHE, persist_result=False, retries=0)


class PrefectExecutor(BaseExecutor):
    """Submits each experiment as a Prefect task; ``submit`` must be called inside a running flow
    (:meth:`drive` runs the campaign loop as one)."""

    name = "prefect"

    def __init__(self, *, policy: AttemptPolicy | None = None, retries: int = 0, retry_delay: float = 0.0,
                 workers: int | None = None, station_limits: str | None = None, lease_duration: float = 60.0) -> None:
        """``station_limits``: the lab's name, to hold each station's global concurrency limit
        (:func:`station_limit_name`) while an experiment runs on it; None: no limits.
        ``lease_duration``: seconds a slot outlives a holder that died (renewed while it lives)."""
        # No Prefect task timeout (see the module docstring): the plan bounds every experiment.
        super().__init__(policy=policy, retries=retries, retry_delay=retry_delay)
        self.workers = workers
        self._done: queue.Queue = queue.Queue()
        self._t0 = time.monotonic()
        self._count = itertools.count(1)
        if not float(lease_duration) >= 60.0:
            raise ValueError(f"lease_duration must be at least 60 s (Prefect's minimum lease), got {lease_duration!r}")
        self.station_limits = station_limits
        self.lease_duration = float(lease_duration)
        self._limits_ready: set[str] = set()

    def limits_for(self, station: str) -> tuple[str, ...]:
        """The concurrency limits an experiment on ``station`` holds (created on first use)."""
        if self.station_limits is None:
            return ()
        name = station_limit_name(self.station_limits, station)
        if name not in self._limits_ready:
            ensure_station_limit(name)
            self._limits_ready.add(name)
        return (name,)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        number = next(self._count)
        t_started = self.now()
        # quote(): Prefect need not walk these objects looking for futures to resolve (there are
        # none), which it otherwise does twice per parameter and task run.
        future = experiment_task.submit(number, runner.name, quote(self.policy), quote(runner), quote(candidate), quote(md),
                                        self.limits_for(runner.name), self.lease_duration)
        future.add_done_callback(lambda f: self._done.put((f, t_started)))

    def next_result(self) -> ExperimentResult:
        while True:  # short waits keep the main thread responsive to signals
            try:
                future, t_started = self._done.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        # The task body never raises for a failed experiment (the policy records it); anything it
        # raises is a fault of labflow or Prefect and propagates, as it does under every executor.
        result: ExperimentResult = future.result(raise_on_failure=True)
        return replace(result, t_started=t_started, t_finished=self.now())

    def poll_result(self, timeout: float) -> ExperimentResult | None:
        """The next finished experiment, or None when none finishes within ``timeout`` seconds."""
        try:
            future, t_started = self._done.get(timeout=timeout)
        except queue.Empty:
            return None
        result: ExperimentResult = future.result(raise_on_failure=True)
        return replace(result, t_started=t_started, t_finished=self.now())

    def drive(self, body: Callable[[], T], *, name: str, run_name: str, workers: int) -> T:
        """Run the campaign loop ``body`` as a Prefect flow with ``workers`` task threads, against
        ``PREFECT_API_URL`` or else a Prefect API server that dies with this process
        (:mod:`labflow.executors.prefect_server`)."""
        from labflow.executors.prefect_server import campaign_api

        with campaign_api():
            return run_as_flow(body, name=name, run_name=run_name, workers=workers)


def run_as_flow(body: Callable[[], T], *, name: str, run_name: str, workers: int) -> T:
    """Run ``body`` (which drives the campaign loop) as a Prefect flow with a thread pool of ``workers``."""
    f = flow(
        body,
        name=name,
        flow_run_name=run_name,
        task_runner=ThreadPoolTaskRunner(max_workers=workers),
        persist_result=False,
        validate_parameters=False,
        log_prints=False,
    )
    return f()
