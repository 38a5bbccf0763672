"""What every built-in executor shares: the attempt policy it applies, and the defaults of the
parts of :class:`~labflow.campaign.executor.Executor` that most executors need not change."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from labflow.campaign.policy import AttemptPolicy

__all__ = ["BaseExecutor"]

T = TypeVar("T")


class BaseExecutor:
    """Holds the attempt ``policy`` (or one built from ``retries`` and ``retry_delay``, seconds).

    Subclasses implement ``submit``, ``next_result`` and ``now``; ``drive`` (just call the loop),
    ``utilization`` (unknown) and ``close`` (nothing to release) have defaults.
    """

    name: str = ""
    virtual_time: bool = False

    def __init__(self, *, policy: AttemptPolicy | None = None, retries: int = 0, retry_delay: float = 0.0) -> None:
        self.policy = policy if policy is not None else AttemptPolicy(retries=retries, retry_delay=retry_delay)

    @property
    def retries(self) -> int:
        """Attempts after a failed one (the policy's)."""
        return self.policy.retries

    @property
    def retry_delay(self) -> float:
        """Seconds between attempts (the policy's)."""
        return self.policy.retry_delay

    def drive(self, body: Callable[[], T], *, name: str, run_name: str, workers: int) -> T:
        """Run the campaign loop ``body``: here, simply call it."""
        return body()

    def utilization(self, stations: int) -> float | None:
        """Busy fraction of the stations, when the executor knows it."""
        return None

    def close(self) -> None:
        """Release what the executor holds (threads...)."""
