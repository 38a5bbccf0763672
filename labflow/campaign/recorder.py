"""Where the loop records: the :class:`Recorder` protocol, which
:class:`labflow.store.journal.CampaignJournal` implements (ledger first, then HDF5), and
:class:`WriterRecorder`, the same interface over a bare provenance writer (or nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from labflow.campaign.result import ExperimentResult
from labflow.objectives import Objective
from labflow.records import Candidate, Observation
from labflow.store.columns import experiment_row_values
from labflow.store.ledger import encode

__all__ = ["Recorder", "WriterRecorder", "experiment_row"]


def experiment_row(result: ExperimentResult, *, suggestion: int, t_suggested: float, objectives: Sequence[Objective]) -> dict[str, Any]:
    """The ``/experiments`` row of a finished experiment, as :mod:`labflow.store.columns` declares
    it (the loop's accounting adds ``cost`` and ``hypervolume``)."""
    c = result.candidate
    values = {
        "uid": c.uid,
        "station": result.station,
        "status": result.status.recorded.value,
        "reason": result.reason,
        "attempts": result.attempts,
        "run_uids": ",".join(result.run_uids),
        "suggestion": suggestion,
        "generator": c.generator,
        "t_suggested": t_suggested,
        "t_started": result.t_started,
        "t_finished": result.t_finished,
        "repeated": int(result.repeated),
        "abandoned": int(result.abandoned),
        "raw": encode(dict(result.raw)).decode(),
        "sample_fault": int(result.sample_fault),
    }
    outcomes = {o.name: result.outcomes.get(o.name, result.raw.get(o.name)) for o in objectives}
    return experiment_row_values(values, c.params, outcomes, [o.name for o in objectives])


class Recorder(Protocol):
    """What the loop records, in order: a suggestion before its candidates run, ``started`` before
    a run begins, ``finished`` before the planner is told, ``interrupted`` for a cut experiment."""

    def suggestion(self, *, t: float, planner: str, generator: str, candidates: Sequence[Candidate], n_observations: int,
                   state_hash: str, state: Mapping[str, Any], latency: float) -> int: ...

    def started(self, *, candidate: Candidate, station: str, attempt: int, repeated: bool, t: float, suggestion: int = -1) -> None: ...

    def finished(self, row: Mapping[str, Any], obs: Observation, *, reasons: Sequence[str] = (), retryable: bool = False) -> None: ...

    def interrupted(self, row: Mapping[str, Any]) -> None: ...

    def snapshot(self, state: Mapping[str, Any]) -> None: ...


class WriterRecorder:
    """The recorder interface over a bare :class:`~labflow.store.provenance.ProvenanceWriter`
    (or nothing): no ledger, so no resume; suggestions are recorded only with a writer."""

    def __init__(self, writer: Any | None) -> None:
        self.writer = writer

    @property
    def records_suggestions(self) -> bool:
        return self.writer is not None

    def suggestion(self, *, candidates: Sequence[Candidate], **kw: Any) -> int:
        if self.writer is None:
            return -1
        return self.writer.record_suggestion(candidates=[c.uid for c in candidates], **kw)

    def started(self, **kw: Any) -> None:
        pass

    def finished(self, row: Mapping[str, Any], obs: Observation, **kw: Any) -> None:
        if self.writer is not None:
            self.writer.record_experiment(row)

    def interrupted(self, row: Mapping[str, Any]) -> None:
        if self.writer is not None and hasattr(self.writer, "record_interrupted"):
            self.writer.record_interrupted(row)

    def snapshot(self, state: Mapping[str, Any]) -> None:
        pass
