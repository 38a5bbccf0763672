"""Running a campaign as a Prefect flow: each experiment is a Prefect task.

Retries and timeouts come from the recipe's ``execution`` section and are Prefect's own
(``retries``, ``retry_delay_seconds``, ``timeout_seconds``). Tasks run on a thread pool
with one worker per station, so one experiment is in flight per station; the flow run
and its task runs appear in the Prefect UI with readable names.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable, Mapping
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from labflow.campaign import ExperimentInterrupted, ExperimentResult, StationRunner
from labflow.errors import ExperimentFailed
from labflow.records import Candidate, Status


def _experiment(runner: StationRunner, candidate: Candidate, md: Mapping[str, Any], attempts: dict[str, int]) -> ExperimentResult:
    """One attempt of one experiment, as a Prefect task body: raises on failure so Prefect retries.

    A run the campaign stopped is not a failure: it comes back as an ``interrupted`` result, so
    Prefect does not retry it (it is repeated when the campaign resumes)."""
    attempts[candidate.uid] = attempts.get(candidate.uid, int(md.get("attempt_offset", 0) or 0)) + 1
    try:
        return runner.run_once(candidate, md, attempts[candidate.uid])
    except ExperimentInterrupted as exc:
        return ExperimentResult(candidate, runner.name, Status.FAILED, reason=exc.message, attempts=attempts[candidate.uid],
                                interrupted=True, run_uids=list(getattr(exc, "labflow_run_uids", [])))


experiment_task = task(_experiment, name="experiment", cache_policy=NO_CACHE, persist_result=False)


class PrefectExecutor:
    """Submits each experiment as a Prefect task; must be used inside a running flow."""

    def __init__(self, *, retries: int = 0, retry_delay: float = 0.0) -> None:
        # No Prefect task timeout: tasks run in worker threads, where Prefect cannot interrupt a
        # blocking call. Experiments are bounded where it works: every device wait in the plan
        # has a timeout (the recipe's execution.timeout), and ophyd Status objects time out too.
        self.retries = retries
        self.retry_delay = retry_delay
        self._done: queue.Queue = queue.Queue()
        self._attempts: dict[str, int] = {}
        self._t0 = time.monotonic()
        self._count = itertools.count(1)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        number = next(self._count)
        t_started = self.now()
        t = experiment_task.with_options(
            retries=self.retries,
            retry_delay_seconds=self.retry_delay,
            task_run_name=f"experiment-{number:04d}-{runner.name}",
        )
        future = t.submit(runner, candidate, md, self._attempts)
        future.add_done_callback(lambda f: self._done.put((f, runner, candidate, t_started)))

    def next_result(self) -> ExperimentResult:
        while True:  # short waits keep the main thread responsive to signals
            try:
                future, runner, candidate, t_started = self._done.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        try:
            result: ExperimentResult = future.result(raise_on_failure=True)
        except ExperimentFailed as exc:
            result = self._failed(runner, candidate, exc.message)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded with its reason, none is dropped
            result = self._failed(runner, candidate, f"{runner.name}: {type(exc).__name__}: {exc}")
        result.t_started, result.t_finished = t_started, self.now()
        return result

    def _failed(self, runner: StationRunner, candidate: Candidate, reason: str) -> ExperimentResult:
        return ExperimentResult(candidate, runner.name, Status.FAILED, reason=reason, attempts=self._attempts.get(candidate.uid, 1))

    def close(self) -> None:
        pass


def run_as_flow(body: Callable[[], Any], *, name: str, run_name: str, workers: int) -> Any:
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
