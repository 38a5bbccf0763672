"""The labflow error family.

Every error carries a ``message`` (what went wrong, where) and an optional ``hint``
(what to change). Each subclass also subclasses the matching builtin, so callers can
catch ``ValueError`` or ``TimeoutError`` without knowing labflow's types.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabflowError(Exception):
    """Base of all labflow errors: a message and, where useful, a hint to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")

    def __reduce__(self):  # keep errors picklable across processes
        return (self.__class__, (self.message, self.hint))


class Problem:
    """One problem found while validating input: a dotted ``path`` and a ``message``."""

    __slots__ = ("path", "message")

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "<root>"
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __repr__(self) -> str:
        return f"Problem({self.path!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


class RecipeError(LabflowError, ValueError):
    """A recipe or lab config is invalid. ``problems`` lists every problem found in one pass."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        problems: Sequence[Problem] = (),
        source: str | None = None,
    ) -> None:
        self.problems = list(problems)
        self.source = source
        body = message
        if self.problems:
            body += "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(body, hint)
        self.message = message

    def __reduce__(self):
        return (self.__class__, (self.message, self.hint, self.problems, self.source))


class UnitError(LabflowError, ValueError):
    """A quantity's unit is unknown or of the wrong dimension."""


class SpaceError(LabflowError, ValueError):
    """A search space is ill-formed, or a point lies outside it."""


class ObservationError(LabflowError, ValueError):
    """Data given to a planner cannot be used: missing columns, NaN, points outside the space."""


class PlannerError(LabflowError, RuntimeError):
    """A planner could not produce a suggestion."""


class DeviceError(LabflowError, RuntimeError):
    """An instrument failed while running an experiment."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """An instrument operation did not finish within its timeout."""


class ExperimentFailed(LabflowError, RuntimeError):
    """An experiment's run ended without a usable result; ``reason`` says why."""


class ProvenanceError(LabflowError, OSError):
    """A provenance file cannot be read or written."""


# -- reliability: the durable record, locks, budgets ----------------------------------------
class CampaignLocked(LabflowError, RuntimeError):
    """Another process holds the campaign's lock; ``holder`` says who (pid, host, started)."""

    def __init__(self, message: str, hint: str | None = None, holder: dict | None = None) -> None:
        super().__init__(message, hint)
        self.holder = dict(holder or {})

    def __reduce__(self):
        return (self.__class__, (self.message, self.hint, self.holder))


class CampaignExists(LabflowError, FileExistsError):
    """An unfinished campaign of this recipe is already in the output directory: resume it."""


class CampaignInterrupted(LabflowError, RuntimeError):
    """The campaign was paused or stopped (signal, disk full); ``labflow resume`` continues it."""


class DiskFullError(ProvenanceError):
    """A write to the campaign's record failed for lack of space (ENOSPC); nothing partial is kept."""


class LedgerCorruptError(ProvenanceError):
    """A record in the middle of a campaign ledger fails its checksum: the ledger cannot be trusted."""


class FailureRateExceeded(LabflowError, RuntimeError):
    """Too many experiments failed: the campaign stopped instead of retrying forever."""


class PlanningUnavailable(LabflowError, RuntimeError):
    """Planning on another machine (``planner.where`` in the recipe) gave no answer: the planning
    flow run timed out, failed or crashed, or no server or work pool can take it. The campaign
    stops taking work (what runs finishes or is repeated on resume); ``labflow resume`` continues it."""
