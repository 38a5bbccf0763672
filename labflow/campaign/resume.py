"""Resuming a campaign from its ledger (:class:`labflow.store.campaign_dir.CampaignHistory`).

Finished experiments are counted again (and their failures remembered, so an abandoned point
stays abandoned); an experiment in flight when the campaign stopped or crashed is repeated once
(``repeated=1``, its attempts counted after those it spent); one interrupted twice is recorded
as failed instead of looping on it; candidates proposed but never started are run. The planner
must already hold the ledgered observations (:func:`labflow.launch.restore_planner`).

Times continue: the resumed campaign's clock starts at the latest time the ledger records (a
suggestion, a start, a finish, an interruption), so ``t_suggested``/``t_started``/``t_finished``
keep increasing across a resume; the time the campaign was down is not counted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from labflow.campaign.result import ExperimentResult, ExperimentStatus
from labflow.records import Candidate, Status

if TYPE_CHECKING:
    from labflow.campaign.loop import Campaign

__all__ = ["last_time", "restore"]

INTERRUPTED_TWICE = "interrupted twice (crash or stop); not repeated automatically again"


def restore(campaign: Campaign, history: Any) -> None:
    """Bring a new ``campaign`` to where ``history`` left off: counters, failures, suggestions, queue."""
    state = campaign.state
    campaign.clock_offset = last_time(history)
    for r in history.finished:
        obs, row = r["obs"], r["row"]
        status = Status(obs["status"])
        if status is Status.COMPLETED:
            state.completed += 1
        else:
            state.failed += 1
        campaign.account(obs["params"], dict(row), status, bool(obs.get("sample_fault")), obs.get("outcomes", {}))
        campaign.failures.restore(obs["params"], r.get("reasons", []), abandoned=bool(row.get("abandoned")), reason=row.get("reason", ""))
        if row.get("abandoned"):
            state.abandoned += 1
    state.started = state.finished
    state.best = campaign.planner.best()
    for s in history.suggestions:
        for c in s["candidates"]:
            campaign._suggestion_of[c["uid"]] = s["index"]  # noqa: SLF001 - the loop's own bookkeeping
            campaign._t_suggested[c["uid"]] = s["t"]  # noqa: SLF001
    for r in history.in_flight():
        candidate = _candidate(r)
        spent = int(r.get("attempt", 1))
        if history.interruptions(r["uid"]) > 1:  # repeated once already: don't loop on it
            result = ExperimentResult(candidate, r.get("station", ""), ExperimentStatus.FAILED, reason=INTERRUPTED_TWICE, attempts=spent)
            campaign.record(result, retryable=True)
            campaign._react(result)  # noqa: SLF001 - the failure budget applies to these too
            continue
        campaign.attempt_offset[candidate.uid] = spent
        campaign.repeat.add(candidate.uid)
        campaign.queue.append(candidate)
    for c in history.not_started():
        campaign.queue.append(_candidate(c))


def _candidate(r: dict[str, Any]) -> Candidate:
    return Candidate(uid=r["uid"], params=r["params"], planner=r.get("planner", ""), generator=r.get("generator", ""))


def last_time(history: Any) -> float:
    """The latest campaign-clock time (seconds) that ``history`` records, 0 for an empty one."""
    times = [s.get("t") for s in history.suggestions]
    times += [r.get("t") for r in history.started.values()]
    times += [r.get("t") for r in history.interrupted]
    times += [r["row"].get(k) for r in history.finished for k in ("t_suggested", "t_started", "t_finished")]
    finite = [float(t) for t in times if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)]
    return max(finite, default=0.0)
