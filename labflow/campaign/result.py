"""The one record of what came of an experiment: :class:`ExperimentResult`, frozen.

Its lifecycle (``status``)::

    started --> COMPLETED     outcomes measured
            |-> INVALID       ran, but a reading was NaN, infinite or not a number
            |-> FAILED        every attempt failed (``reasons``: one per attempt; ``sample_fault``
            |                 says the sample, not the instrument, failed)
            |-> ABANDONED     failed, and the candidate failed this way before: never proposed again
            '-> INTERRUPTED   cut short by a stop, a pause or a full disk: not finished; it runs again

Executors and the attempt policy build a result once; the loop derives the next one with
:func:`dataclasses.replace` (``repeated``, ``ABANDONED``, times), never by mutation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labflow.errors import LabflowError
from labflow.records import Candidate, Observation, Status

__all__ = ["ExperimentInterrupted", "ExperimentResult", "ExperimentStatus"]


class ExperimentInterrupted(LabflowError, RuntimeError):
    """An experiment was cut short by a pause/stop (or a full disk): not a failure; it is repeated on resume."""


class ExperimentStatus(str, enum.Enum):
    """How an experiment ended (see the module docstring for the lifecycle)."""

    COMPLETED = "completed"
    INVALID = "invalid"
    FAILED = "failed"
    ABANDONED = "abandoned"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value

    @property
    def recorded(self) -> Status:
        """The status the planner and the ``/experiments`` table see: an abandoned experiment failed."""
        if self is ExperimentStatus.COMPLETED:
            return Status.COMPLETED
        if self is ExperimentStatus.INVALID:
            return Status.INVALID
        return Status.FAILED


@dataclass(frozen=True)
class ExperimentResult:
    """What came of running one candidate on one station, all attempts included.

    ``outcomes``: objective name -> value in the objective's unit (completed experiments only);
    ``raw``: the readings as the instrument gave them; ``reason``: why it did not complete (the
    last attempt's reason); ``reasons``: one per failed attempt; ``run_uids``: one bluesky run per
    attempt; ``attempts``: the last attempt's number (counting attempts before a resume);
    ``t_started``/``t_finished``: seconds on the executor's clock.
    """

    candidate: Candidate
    station: str
    status: ExperimentStatus
    outcomes: Mapping[str, float] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    run_uids: tuple[str, ...] = ()
    attempts: int = 1
    reasons: tuple[str, ...] = ()
    sample_fault: bool = False
    repeated: bool = False  # this experiment repeats one that a crash or a stop interrupted
    t_started: float = math.nan
    t_finished: float = math.nan

    def __post_init__(self) -> None:
        # Accept a labflow.records.Status (same values) and lists, and store the canonical forms.
        object.__setattr__(self, "status", ExperimentStatus(self.status))
        object.__setattr__(self, "run_uids", tuple(self.run_uids))
        object.__setattr__(self, "reasons", tuple(self.reasons))

    @property
    def interrupted(self) -> bool:
        return self.status is ExperimentStatus.INTERRUPTED

    @property
    def abandoned(self) -> bool:
        return self.status is ExperimentStatus.ABANDONED

    @property
    def failed(self) -> bool:
        """Finished without outcomes: failed or abandoned (not invalid, not interrupted)."""
        return self.status in (ExperimentStatus.FAILED, ExperimentStatus.ABANDONED)

    def observation(self) -> Observation:
        """What the planner is told: outcomes only for a completed experiment."""
        status = self.status.recorded
        return Observation(
            uid=self.candidate.uid,
            params=dict(self.candidate.params),
            outcomes=dict(self.outcomes) if status is Status.COMPLETED else {},
            status=status,
            reason=self.reason,
            sample_fault=self.sample_fault,
        )
