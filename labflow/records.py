"""The two records that cross the planner boundary: a Candidate and its Observation.

Their lifecycle::

    PROPOSED --run--> RUNNING --> COMPLETED   (outcomes measured)
                          |-----> FAILED      (reason recorded; ``sample_fault`` says whether the
                          |                    sample itself failed, which planners may learn from)
                          '-----> INVALID     (ran, but a reading was NaN or infinite)
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """Where an experiment stands."""

    PROPOSED = "proposed"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INVALID = "invalid"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> Status:
        from labflow.errors import ObservationError

        raise ObservationError(f"unknown status {value!r}; a status is one of {', '.join(s.value for s in cls)}",
                               hint="mark each row completed, failed or invalid (proposed and running are for the loop's own use)")


def new_uid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Candidate:
    """A point a planner proposes: ``params`` maps parameter names to plain values in declared units."""

    uid: str
    params: Mapping[str, Any]
    planner: str = ""
    generator: str = ""  # e.g. "sobol", "qLogNEI", "fallback"

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in self.params.items())
        return f"Candidate({self.uid[:8]}, {ps})"


@dataclass(frozen=True)
class Observation:
    """What came of a candidate: measured ``outcomes`` (objective name -> value) and a status."""

    uid: str
    params: Mapping[str, Any]
    outcomes: Mapping[str, float] = field(default_factory=dict)
    status: Status = Status.COMPLETED
    reason: str = ""
    sample_fault: bool = False

    @property
    def ok(self) -> bool:
        return self.status is Status.COMPLETED
