"""The executor protocol: what the loop needs of whatever runs its experiments.

It is declared here, beside the loop that calls it (``labflow.executors`` re-exports it with
the registry and the built-in executors). An executor *schedules*: it runs
``self.policy.run(runner, candidate, md)`` (:class:`~labflow.campaign.policy.AttemptPolicy`)
somewhere -- a thread, a Prefect task, a point in virtual time -- stamps the result's
``t_started``/``t_finished`` on its clock, and hands results back in the order they finish.
It decides nothing about retries or faults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from labflow.campaign.policy import AttemptPolicy
from labflow.campaign.result import ExperimentResult
from labflow.campaign.station import StationRunner
from labflow.records import Candidate

__all__ = ["Executor"]

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Starts experiments and hands back results in the order they finish.

    ``policy``: the attempt rule applied to every experiment (the campaign may add its sample-fault
    patterns). ``virtual_time``: True when ``now()`` is simulated (the lab's devices are then built
    instant). ``drive(body, ...)`` runs the campaign loop ``body`` in the executor's context (a
    Prefect flow, or just a call). ``utilization(stations)``: busy fraction, or None when unknown.
    """

    policy: AttemptPolicy
    virtual_time: bool

    def submit(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any]) -> None: ...

    def next_result(self) -> ExperimentResult: ...

    def now(self) -> float: ...

    def drive(self, body: Callable[[], T], *, name: str, run_name: str, workers: int) -> T: ...

    def utilization(self, stations: int) -> float | None: ...

    def close(self) -> None: ...
