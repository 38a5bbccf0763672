"""The counters a running campaign keeps (:class:`CampaignState`), which the live display,
the Prefect artifacts and the summary read, and the listener hook that receives them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from labflow.campaign.result import ExperimentResult
from labflow.records import Candidate, Observation

__all__ = ["CampaignState", "Listener"]


@dataclass
class CampaignState:
    """Counters of a running campaign (one instance, updated by the loop as experiments finish)."""

    budget: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    best: Observation | None = None
    last: ExperimentResult | None = None
    busy: dict[str, Candidate] = field(default_factory=dict)
    interrupted: int = 0
    repeated: int = 0
    abandoned: int = 0
    fallbacks: int = 0
    stop_reason: str = ""
    sample_faults: int = 0
    cost: dict[str, float] = field(default_factory=dict)  # route value (fidelity) -> total cost so far
    hypervolume: float = math.nan  # several objectives: of this campaign's completed experiments
    waiting: dict[str, Candidate] = field(default_factory=dict)  # suggestions waiting for a person's approval

    @property
    def finished(self) -> int:
        """Experiments that finished: completed, invalid, failed or abandoned."""
        return self.completed + self.failed


Listener = Callable[[str, CampaignState], None]
"""Called with an event ("start", "submitted", "finished", "interrupted", "end"; "waiting" when the
suggestions waiting for approval change) and the state."""
