"""Virtual time: a discrete-event executor for the campaign loop.

Each submitted experiment runs at once on instant simulated devices (the real plans,
RunEngine and documents), and its completion is scheduled at ``now + duration``, where the
duration comes from the station's duration model. ``next_result`` advances the virtual clock
to the earliest completion. Nothing depends on wall time, so the same seed gives the same
trace, and a 200-experiment campaign with hour-long experiments runs in seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from typing import Any

from labflow.campaign import ExperimentResult, StationRunner, run_with_retries
from labflow.records import Candidate


class VirtualTimeExecutor:
    """Runs the campaign loop in simulated time.

    Parameters
    ----------
    retries: attempts after a failure (each attempt costs the experiment's duration again).
    overhead: orchestration time per experiment, in seconds of virtual time.
    planning_time: time the planner takes per suggestion, in seconds of virtual time
        (modelled, not measured, so that traces stay deterministic).
    """

    def __init__(self, *, retries: int = 0, overhead: float = 0.0, planning_time: float = 0.0) -> None:
        self.retries = retries
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
        result = run_with_retries(runner, candidate, md, self.retries)
        if result.interrupted:  # stopped by the campaign: it takes no virtual time
            result.t_started = result.t_finished = start
            heapq.heappush(self._events, (start, next(self._seq), result))
            return
        params = runner.space.to_quantities(candidate.params)
        duration = self.overhead + result.attempts * float(runner.station.expected_duration(params))
        result.t_started, result.t_finished = start, start + duration
        self.busy_time[runner.name] = self.busy_time.get(runner.name, 0.0) + duration
        heapq.heappush(self._events, (result.t_finished, next(self._seq), result))

    def next_result(self) -> ExperimentResult:
        t, _, result = heapq.heappop(self._events)
        self._now = max(self._now, t)
        return result

    def utilization(self, stations: int) -> float:
        """Fraction of station-time spent running experiments, over the makespan so far."""
        if self._now <= 0:
            return 0.0
        return sum(self.busy_time.values()) / (stations * self._now)

    def close(self) -> None:
        pass
