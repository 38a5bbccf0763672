"""Virtual time: a discrete-event executor for the campaign loop.

Each submitted experiment runs at once on instant simulated devices (the real plans, RunEngine
and documents), and its completion is scheduled at ``now + duration``, where the duration comes
from the station's duration model. ``next_result`` advances the virtual clock to the earliest
completion. Nothing depends on wall time, so the same seed gives the same trace, and a
200-experiment campaign with hour-long experiments runs in seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labflow.campaign.policy import AttemptPolicy
from labflow.campaign.result import ExperimentResult
from labflow.campaign.station import StationRunner
from labflow.executors.base import BaseExecutor
from labflow.records import Candidate

__all__ = ["VirtualTimeExecutor"]


def _no_wait(seconds: float) -> None:
    """Between attempts in virtual time nothing waits: each attempt costs its duration instead."""


class VirtualTimeExecutor(BaseExecutor):
    """Runs the campaign loop in simulated time.

    Parameters
    ----------
    policy: the attempt rule (or ``retries``: attempts after a failure; each attempt costs the
        experiment's duration again).
    overhead: orchestration time per experiment, in seconds of virtual time.
    planning_time: time the planner takes per suggestion, in seconds of virtual time
        (modelled, not measured, so that traces stay deterministic).
    workers: accepted for the registry's uniform signature; virtual time needs no threads.
    """

    name = "virtual"
    virtual_time = True

    def __init__(self, *, policy: AttemptPolicy | None = None, retries: int = 0, overhead: float = 0.0,
                 planning_time: float = 0.0, workers: int | None = None) -> None:
        super().__init__(policy=policy, retries=retries)
        self.overhead = overhead
        self.planning_time = planning_time
        self._now = 0.0
        self._events: list[tuple[float, int, ExperimentResult]] = []
        self._seq = itertools.count()
        self.busy_time: dict[str, float] = {}

    def now(self) -> float:
        return self._now

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None:
        start = self._now + self.planning_time
        result = self.policy.run(runner, candidate, md, wait=_no_wait)
        if result.interrupted:  # stopped by the campaign: it takes no virtual time
            heapq.heappush(self._events, (start, next(self._seq), replace(result, t_started=start, t_finished=start)))
            return
        params = runner.space.to_quantities(candidate.params)
        duration = self.overhead + result.attempts * float(runner.station.expected_duration(params))
        self.busy_time[runner.name] = self.busy_time.get(runner.name, 0.0) + duration
        heapq.heappush(self._events, (start + duration, next(self._seq), replace(result, t_started=start, t_finished=start + duration)))

    def next_result(self) -> ExperimentResult:
        t, _, result = heapq.heappop(self._events)
        self._now = max(self._now, t)
        return result

    def utilization(self, stations: int) -> float:
        """Fraction of station-time spent running experiments, over the makespan so far."""
        if self._now <= 0:
            return 0.0
        return sum(self.busy_time.values()) / (stations * self._now)
