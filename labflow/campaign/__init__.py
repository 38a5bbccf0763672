"""The closed loop: ask the planner, run experiments on free stations, record, tell, repeat.

One module per job::

    loop.py       Campaign: the loop itself (ask, start, record, tell, react)
    station.py    StationRunner: one attempt on one station's RunEngine -> documents -> outcomes
    policy.py     AttemptPolicy (retries; sample faults never retried), FailureBudget, FailureMemory (abandoning)
    control.py    CampaignControl (pause, resume, stop), StopOnSignals (SIGINT/SIGTERM)
    routing.py    Routing: fidelity -> stations, and the cost of an experiment
    proposer.py   Proposer: the planner asked, guarded (fallbacks, abandoned points)
    resume.py     restore: a campaign picked up from its ledger
    recorder.py   Recorder (the protocol the store's journal implements) and the /experiments row
    result.py     ExperimentResult (frozen) and its statuses
    state.py      CampaignState: the counters listeners read
    executor.py   Executor: the protocol every executor implements (labflow.executors)

Reliability (``docs/reliability.md``): with a journal every decision is ledgered, fsynced,
before it is acted on, and a campaign resumes from its ledger (in-flight experiments repeated
once, proposed-but-unstarted ones run, nothing finished run again). Sample faults are results,
not malfunctions: never retried, told to the planner (``Observation.sample_fault``), and not
counted against the failure budget. A candidate that failed twice for the same reason is
abandoned. Suspenders (e.g. a glovebox oxygen interlock) are installed on every station's
RunEngine. The planner cannot wedge the loop: a planner that raises, or proposes a point outside
the space, is replaced by seeded random candidates tagged ``generator="fallback"``.

Every name that ``labflow.campaign`` exported before it became a package is still importable
from here.
"""

from __future__ import annotations

from typing import Any

from labflow.campaign.control import CampaignControl, StopOnSignals
from labflow.campaign.executor import Executor
from labflow.campaign.loop import Campaign
from labflow.campaign.policy import (
    AttemptPolicy,
    FailureBudget,
    FailureMemory,
    is_sample_fault,
    point_key,
    reason_key,
    run_with_retries,
)
from labflow.campaign.proposer import Proposer
from labflow.campaign.recorder import Recorder, WriterRecorder, experiment_row
from labflow.campaign.result import ExperimentInterrupted, ExperimentResult, ExperimentStatus
from labflow.campaign.routing import Routing
from labflow.campaign.state import CampaignState, Listener
from labflow.campaign.station import StationRunner

__all__ = [
    "AttemptPolicy",
    "Campaign",
    "CampaignControl",
    "CampaignState",
    "Executor",
    "ExperimentInterrupted",
    "ExperimentResult",
    "ExperimentStatus",
    "FailureBudget",
    "FailureMemory",
    "Listener",
    "LocalExecutor",
    "Proposer",
    "Recorder",
    "Routing",
    "StationRunner",
    "StopOnSignals",
    "WriterRecorder",
    "experiment_row",
    "is_sample_fault",
    "point_key",
    "reason_key",
    "run_with_retries",
]


def __getattr__(name: str) -> Any:
    # LocalExecutor moved up a layer, to labflow.executors.local; this old path stays, resolved
    # on first use so that importing the loop does not import the executors.
    if name == "LocalExecutor":
        from labflow.executors.local import LocalExecutor

        return LocalExecutor
    raise AttributeError(f"module 'labflow.campaign' has no attribute {name!r}")
