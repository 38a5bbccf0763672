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
from prefect.task_runners import ThreadPoolTaskRunner

from labflow.campaign.policy import AttemptPolicy
from labflow.campaign.result import ExperimentResult, ExperimentStatus
from labflow.campaign.station import StationRunner
from labflow.executors.base import BaseExecutor
from labflow.records import Candidate

__all__ = ["PrefectExecutor", "experiment_task", "run_as_flow"]

T = TypeVar("T")


def _experiment(policy: AttemptPolicy, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> ExperimentResult:
    """One experiment, all its attempts (the policy's), as a Prefect task body. Each failed attempt's
    reason goes to the task run's log, so the Prefect UI shows what failed and why."""
    result = policy.run(runner, candidate, md)
    if result.reasons or result.status is not ExperimentStatus.COMPLETED:
        logger = get_run_logger()
        for number, reason in enumerate(result.reasons, start=result.attempts - len(result.reasons) + 1):
            logger.warning("attempt %d failed: %s", number, reason)
        logger.info("experiment %s: %s after %d attempt(s)%s", candidate.uid, result.status, result.attempts,
                    " (sample fault: not retried)" if result.sample_fault else "")
    return result


experiment_task = task(_experiment, name="experiment", cache_policy=NO_CACHE, persist_result=False, retries=0)


class PrefectExecutor(BaseExecutor):
    """Submits each experiment as a Prefect task; ``submit`` must be called inside a running flow
    (:meth:`drive` runs the campaign loop as one)."""

    name = "prefect"

    def __init__(self, *, policy: AttemptPolicy | None = None, retries: int = 0, retry_delay: float = 0.0,
                 workers: int | None = None) -> None:
        # No Prefect task timeout (see the module docstring): the plan bounds every experiment.
        super().__init__(policy=policy, retries=retries, retry_delay=retry_delay)
        self.workers = workers
        self._done: queue.Queue = queue.Queue()
        self._t0 = time.monotonic()
        self._count = itertools.count(1)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        number = next(self._count)
        t_started = self.now()
        named = experiment_task.with_options(task_run_name=f"experiment-{number:04d}-{runner.name}")
        future = named.submit(self.policy, runner, candidate, md)
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

    def drive(self, body: Callable[[], T], *, name: str, run_name: str, workers: int) -> T:
        """Run the campaign loop ``body`` as a Prefect flow with ``workers`` task threads."""
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
