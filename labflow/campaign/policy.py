"""The attempt policy: the one place that decides what a failure means, for every executor.

* **Attempts** (:class:`AttemptPolicy`): an experiment gets up to ``1 + retries`` attempts.
  Only the instrument's faults are retried. A **sample fault** -- an exception anywhere in the
  chain with a true ``sample_fault`` attribute (:class:`labflow.sim.devices.SampleFault`), or a
  reason matching one of ``sample_fault_patterns`` -- is a result (the film did not form), so it
  is never retried: making the sample again would fail again. A stop, a pause or a full disk
  (:class:`~labflow.campaign.result.ExperimentInterrupted`) is never retried either: the
  experiment is repeated when the campaign resumes.
* **Failure budget** (:class:`FailureBudget`): the campaign stops with
  :class:`~labflow.errors.FailureRateExceeded` once too many experiments failed; sample faults
  do not count (they are results, not malfunctions).
* **Abandoning** (:class:`FailureMemory`): a candidate whose attempts failed ``abandon_after``
  times for the same reason (numbers and uids blanked, :func:`reason_key`) is abandoned: never
  proposed again.

Executors (:mod:`labflow.executors`) call :meth:`AttemptPolicy.run` and only decide *when* it
runs (a thread, a Prefect task, a point in virtual time); so a campaign's records do not depend
on the executor (``tests/test_executor_equivalence.py``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labflow.campaign.result import ExperimentInterrupted, ExperimentResult, ExperimentStatus
from labflow.campaign.station import run_uids_of
from labflow.errors import ExperimentFailed, FailureRateExceeded
from labflow.records import Candidate

if TYPE_CHECKING:
    from labflow.campaign.station import StationRunner

__all__ = [
    "AttemptPolicy",
    "FailureBudget",
    "FailureMemory",
    "is_sample_fault",
    "point_key",
    "reason_key",
    "run_with_retries",
]


def is_sample_fault(exc: BaseException | None) -> bool:
    """True when ``exc`` or any exception in its chain (causes and contexts) has a true
    ``sample_fault`` attribute: the device said the sample, not the instrument, failed."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if getattr(exc, "sample_fault", False) is True:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class AttemptPolicy:
    """How one experiment is attempted; the same rule for every executor.

    Parameters
    ----------
    retries: attempts after a failed one (instrument faults only).
    retry_delay: seconds to wait between attempts (``wait`` decides how: real executors sleep,
        the virtual-time one does not).
    sample_fault_patterns: regular expressions; a failure whose reason matches is the sample's fault.
    """

    retries: int = 0
    retry_delay: float = 0.0
    sample_fault_patterns: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if int(self.retries) < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        object.__setattr__(self, "retries", int(self.retries))
        object.__setattr__(self, "retry_delay", float(self.retry_delay))
        object.__setattr__(self, "sample_fault_patterns", tuple(self.sample_fault_patterns))
        object.__setattr__(self, "_patterns", tuple(re.compile(p) for p in self.sample_fault_patterns))

    def is_sample_fault(self, failure: ExperimentFailed) -> bool:
        """The sample's fault: the device says so (:func:`is_sample_fault`) or the reason matches a pattern."""
        return is_sample_fault(failure) or any(p.search(failure.message) for p in self._patterns)

    def run(self, runner: StationRunner, candidate: Candidate, md: Mapping[str, Any], *,
            wait: Callable[[float], None] = time.sleep) -> ExperimentResult:
        """Attempt ``candidate`` on ``runner`` until it completes, fails for good or is interrupted.

        Never raises for a failed experiment: a final failure is a FAILED result, with one reason
        and the run uids of every attempt. Attempts are numbered after ``md["attempt_offset"]``
        (the attempts a resumed experiment already spent).
        """
        run_uids: list[str] = []
        reasons: list[str] = []
        first = int(md.get("attempt_offset", 0) or 0) + 1
        last = first + self.retries
        for attempt in range(first, last + 1):
            try:
                result = runner.run_once(candidate, md, attempt)
            except ExperimentInterrupted as exc:
                return ExperimentResult(candidate, runner.name, ExperimentStatus.INTERRUPTED, reason=exc.message,
                                        run_uids=(*run_uids, *run_uids_of(exc)), attempts=attempt, reasons=tuple(reasons))
            except ExperimentFailed as exc:
                reasons.append(exc.message)
                run_uids.extend(run_uids_of(exc))
                sample_fault = self.is_sample_fault(exc)
                if sample_fault or attempt == last:
                    return ExperimentResult(candidate, runner.name, ExperimentStatus.FAILED, reason=exc.message,
                                            run_uids=tuple(run_uids), attempts=attempt, reasons=tuple(reasons),
                                            sample_fault=sample_fault)
                if self.retry_delay > 0:
                    wait(self.retry_delay)
                continue
            return ExperimentResult(result.candidate, result.station, result.status, outcomes=result.outcomes, raw=result.raw,
                                    reason=result.reason, run_uids=(*run_uids, *result.run_uids), attempts=attempt,
                                    reasons=tuple(reasons))
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover


def run_with_retries(runner: StationRunner, candidate: Candidate, md: Mapping[str, Any], retries: int,
                     retry_delay: float = 0.0) -> ExperimentResult:
    """Run a candidate up to ``1 + retries`` times (:meth:`AttemptPolicy.run`); kept for its callers."""
    return AttemptPolicy(retries=retries, retry_delay=retry_delay).run(runner, candidate, md)


@dataclass(frozen=True)
class FailureBudget:
    """When a campaign gives up.

    ``max_fraction``: stop when failed/finished exceeds it, once at least ``min_failures``
    experiments failed (failed and invalid both count; sample faults do not). ``abandon_after``: a
    candidate whose attempts failed this many times with the same reason is abandoned, never
    proposed again.
    """

    max_fraction: float = 0.5
    min_failures: int = 5
    abandon_after: int = 2

    def exceeded(self, failed: int, finished: int) -> bool:
        """True when ``failed`` of ``finished`` experiments is past the budget."""
        return failed >= self.min_failures and finished > 0 and failed / finished > self.max_fraction

    def check(self, *, failed: int, finished: int, last_reason: str) -> FailureRateExceeded | None:
        """The error to stop with when past the budget, else None."""
        if not self.exceeded(failed, finished):
            return None
        return FailureRateExceeded(
            f"{failed} of {finished} experiments failed (more than {self.max_fraction:.0%} after at least "
            f"{self.min_failures} failures); last reason: {last_reason}",
            hint="fix the instrument or the recipe, then resume; the threshold is configurable (FailureBudget)",
        )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUM = re.compile(r"\d+(?:\.\d+)?")


def reason_key(reason: str) -> str:
    """A failure reason with uids and numbers blanked: the same fault gives the same key."""
    return _NUM.sub("#", _UUID.sub("<uid>", reason))


def point_key(params: Mapping[str, Any]) -> str:
    """A point of the space as a stable string (floats rounded to 9 digits): the same point, the same key."""
    return json.dumps({k: (round(float(v), 9) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                       for k, v in sorted(params.items())}, default=str)


class FailureMemory:
    """The failure reasons of every point; a point that failed ``abandon_after`` times for the same
    reason is abandoned (:attr:`abandoned`: point key -> the reason)."""

    def __init__(self, abandon_after: int = 2) -> None:
        self.abandon_after = int(abandon_after)
        self.abandoned: dict[str, str] = {}
        self._reasons: dict[str, list[str]] = {}

    def note_failure(self, params: Mapping[str, Any], reasons: Iterable[str], reason: str) -> bool:
        """Remember a failed experiment's per-attempt ``reasons``; True when its point is now abandoned."""
        key = point_key(params)
        seen = self._reasons.setdefault(key, [])
        seen.extend(reason_key(r) for r in reasons)
        if any(seen.count(r) >= self.abandon_after for r in set(seen)):
            self.abandoned[key] = reason
            return True
        return False

    def restore(self, params: Mapping[str, Any], reasons: Iterable[str], *, abandoned: bool, reason: str) -> None:
        """Replay a ledgered experiment: its per-attempt ``reasons``, and whether it was abandoned."""
        key = point_key(params)
        self._reasons.setdefault(key, []).extend(reason_key(r) for r in reasons)
        if abandoned:
            self.abandoned[key] = reason

    def is_abandoned(self, params: Mapping[str, Any]) -> bool:
        """True when the point was abandoned."""
        return point_key(params) in self.abandoned

    def abandoned_points(self) -> list[dict[str, Any]]:
        """The abandoned points, as parameter dicts (to pass to a planner as pending)."""
        return [json.loads(k) for k in self.abandoned]
