"""The local executor: real time, one thread per station. No orchestration server needed."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labflow.campaign.policy import AttemptPolicy
from labflow.campaign.result import ExperimentResult
from labflow.campaign.station import StationRunner
from labflow.executors.base import BaseExecutor
from labflow.records import Candidate

__all__ = ["LocalExecutor"]


class LocalExecutor(BaseExecutor):
    """Runs each experiment's attempts (the policy's) in a thread of a pool with ``max_workers``
    threads (one per station); ``now()`` is seconds since the executor was made."""

    name = "local"

    def __init__(self, max_workers: int | None = None, *, workers: int | None = None, policy: AttemptPolicy | None = None,
                 retries: int = 0, retry_delay: float = 0.0) -> None:
        super().__init__(policy=policy, retries=retries, retry_delay=retry_delay)
        n = max_workers if max_workers is not None else workers
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, int(n or 1)), thread_name_prefix="labflow-station")
        self._futures: set[cf.Future] = set()
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _attempts(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> ExperimentResult:
        t_started = self.now()
        result = self.policy.run(runner, candidate, md)
        return replace(result, t_started=t_started, t_finished=self.now())

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        self._futures.add(self._pool.submit(self._attempts, runner, candidate, md))

    def next_result(self) -> ExperimentResult:
        # Wait in short slices so that the main thread stays responsive to signals.
        while True:
            done, _ = cf.wait(self._futures, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            if done:
                break
        future = min(done, key=lambda f: id(f))
        self._futures.discard(future)
        return future.result()

    def poll_result(self, timeout: float) -> ExperimentResult | None:
        """The next finished experiment, or None when none finishes within ``timeout`` seconds
        (the loop then checks whether a person's act lets another experiment start)."""
        done, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        if not done:
            return None
        future = min(done, key=lambda f: id(f))
        self._futures.discard(future)
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
