"""The campaign journal: one sink that ledgers every step, then writes it to the HDF5 file.

:class:`CampaignJournal` is what :class:`labflow.campaign.Campaign` records into when it runs
crash-safe: each call appends a record to the ledger (fsynced for decisions and outcomes;
bluesky documents ride along and become durable with the next synced record), and only then
writes the same thing into the provenance file. It is also the bluesky document callback
subscribed to every station's RunEngine.

:func:`rebuild_provenance` replays a ledger into a fresh provenance file (built under a
temporary name, renamed into place): the file a crash left behind is moved to quarantine,
never deleted.

Ledger record kinds (``"k"``): ``campaign`` (header), ``suggestion``, ``started``, ``doc``,
``finished``, ``interrupted``, ``resumed``, ``end``; with people in the loop also ``waiting`` (a
suggestion held for approval) and ``human`` (a person's act, :mod:`labflow.store.inbox`); with manual
stations ``work_order`` (a work order issued to a person, :mod:`labflow.campaign.work_orders`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import h5py

from labflow.records import Candidate, Observation
from labflow.store.campaign_dir import CampaignDir, CampaignHistory
from labflow.store.ledger import Ledger
from labflow.store.provenance import ProvenanceWriter
from labflow.faults import crashpoint

__all__ = ["FLUSH_INTERVAL", "CampaignJournal", "header_record", "rebuild_provenance"]

# How stale a running campaign's HDF5 file may be, in seconds. The ledger is fsynced before each
# step is acted on; the HDF5 file is derived from it, so it is written in batches (a live reader
# sees rows at most this late) instead of one resize and flush per cell and document.
FLUSH_INTERVAL = 1.0


def header_record(*, campaign: str, campaign_id: str, recipe_text: str, recipe: Mapping[str, Any], recipe_hash: str,
                  lab: Mapping[str, Any], seed: int, planner: str, space: Any, objectives: Sequence[Mapping[str, Any]],
                  budget: int, provenance: str, created: str, executor: str) -> dict[str, Any]:
    return {
        "k": "campaign", "format": "labflow-ledger", "version": 1, "campaign": campaign, "campaign_id": campaign_id,
        "recipe_text": recipe_text, "recipe": dict(recipe), "recipe_hash": recipe_hash, "lab": dict(lab), "seed": int(seed),
        "planner": planner, "space": space, "objectives": list(objectives), "budget": int(budget),
        "provenance": provenance, "created": created, "executor": executor, "host": socket.gethostname(), "pid": os.getpid(),
    }


class CampaignJournal:
    """Ledger first, then HDF5. Thread-safe (the ledger and the writer each hold a lock)."""

    def __init__(self, cdir: CampaignDir, ledger: Ledger, writer: ProvenanceWriter) -> None:
        self.cdir = cdir
        self.ledger = ledger
        self.writer = writer
        self.suggestions = writer.n_suggestions  # continue numbering after a rebuild

    @property
    def campaign_id(self) -> str:
        return self.writer.campaign_id

    @property
    def path(self):
        return self.writer.path

    # -- the Campaign's sink interface ------------------------------------------------------
    def suggestion(self, *, t: float, planner: str, generator: str, candidates: Sequence[Candidate], n_observations: int,
                   state_hash: str, state: Mapping[str, Any], latency: float) -> int:
        """Ledger a planner decision. Not fsynced on its own: nothing acts on it before the
        ``started`` record of its first candidate, whose fsync makes it durable too (a crash
        before that loses only a proposal nobody ran, and the planner proposes again)."""
        index = self.suggestions
        self.ledger.append({
            "k": "suggestion", "index": index, "t": t, "planner": planner, "generator": generator,
            "candidates": [{"uid": c.uid, "params": dict(c.params), "planner": c.planner, "generator": c.generator} for c in candidates],
            "n_observations": n_observations, "state_hash": state_hash, "state": dict(state), "latency": latency,
        }, sync=False)
        self.suggestions += 1
        got = self.writer.record_suggestion(t=t, planner=planner, generator=generator, candidates=[c.uid for c in candidates],
                                            n_observations=n_observations, state_hash=state_hash, state=state, latency=latency)
        assert got == index, (got, index)
        return index

    def started(self, *, candidate: Candidate, station: str, attempt: int, repeated: bool, t: float, suggestion: int = -1) -> None:
        self.ledger.append({
            "k": "started", "uid": candidate.uid, "params": dict(candidate.params), "planner": candidate.planner,
            "generator": candidate.generator, "station": station, "attempt": attempt, "repeated": bool(repeated), "t": t,
            "suggestion": suggestion,
        })

    def finished(self, row: Mapping[str, Any], obs: Observation, *, reasons: Sequence[str] = (), retryable: bool = False) -> None:
        self.ledger.append({
            "k": "finished", "uid": obs.uid, "row": dict(row), "reasons": list(reasons), "retryable": bool(retryable),
            "obs": {"uid": obs.uid, "params": dict(obs.params), "outcomes": dict(obs.outcomes), "status": obs.status.value,
                    "reason": obs.reason, "sample_fault": obs.sample_fault},
        })
        self.writer.record_experiment(row)

    def interrupted(self, row: Mapping[str, Any]) -> None:
        self.ledger.append({"k": "interrupted", **dict(row)})
        self.writer.record_interrupted(row)

    def waiting(self, record: Mapping[str, Any]) -> None:
        """A suggestion is held for approval (ledgered once: a resume does not ask again)."""
        self.ledger.append({**dict(record), "k": "waiting"})

    def human(self, act: Mapping[str, Any]) -> None:
        """A person's act, applied or refused: ledgered, then written to ``/human_acts``."""
        self.ledger.append({**dict(act), "k": "human"})
        self.writer.record_human(act)

    def work_order(self, record: Mapping[str, Any]) -> None:
        """A manual station issued a work order (ledgered and fsynced before anyone is asked: a resume
        finds it and issues no second one for the same experiment)."""
        self.ledger.append({**dict(record), "k": "work_order"})
        self.writer.record_work_order(record)

    def snapshot(self, state: Mapping[str, Any]) -> None:
        self.cdir.write_snapshot({**dict(state), "ledger_records": self.ledger.records_written})

    # -- bluesky document callback -----------------------------------------------------------
    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        if name == "stop":
            crashpoint("run.before_stop_doc")
        self.ledger.append({"k": "doc", "name": name, "doc": dict(doc)}, sync=False)
        if name == "start":
            crashpoint("run.after_start_doc")
        self.writer(name, doc)

    # -- end -------------------------------------------------------------------------------------
    def end(self, summary: Mapping[str, Any], *, complete: bool, reason: str = "") -> None:
        self.writer.set_summary(summary)
        self.writer.sync()
        self.ledger.append({"k": "end", "complete": bool(complete), "reason": reason, "summary": dict(summary),
                            "t": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.ledger.close()


def _file_readable(p) -> bool:
    try:
        with h5py.File(p, "r", locking=False) as f:
            return f.attrs.get("format") == "labflow-provenance" and "experiments" in f
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return False


def rebuild_provenance(cdir: CampaignDir, history: CampaignHistory, *, space: Any, objectives: Sequence[Any],
                       why: str = "left by an interrupted campaign; rebuilt from the ledger on resume") -> tuple[ProvenanceWriter, dict]:
    """Build the provenance file again from the ledger; the old one (and any partial one) goes to
    quarantine. Returns the open writer (ready to append) and a report of what was moved."""
    h = history.header
    final = cdir.provenance_path
    report: dict[str, Any] = {"quarantined": [], "old_file_readable": None}
    if final.exists():
        report["old_file_readable"] = _file_readable(final)
        reason = why + ("" if report["old_file_readable"] else " (it did not open as HDF5)")
        report["quarantined"].append(str(cdir.quarantine_file(final, reason)))
    if cdir.partial_path.exists():
        report["quarantined"].append(str(cdir.quarantine_file(cdir.partial_path, "a provenance file a crash left half-built")))
    writer = ProvenanceWriter(
        final, campaign=h["campaign"], space=space, objectives=objectives, recipe_text=h["recipe_text"], recipe=h["recipe"],
        recipe_hash=h["recipe_hash"], lab=h["lab"], seed=h["seed"], planner=h["planner"], campaign_id=h["campaign_id"],
        create_at=cdir.partial_path, created=h.get("created"), flush_interval=FLUSH_INTERVAL,
    )
    writer.record_run(executor=h.get("executor", ""), overrides=h.get("overrides") or {})
    for s in history.suggestions:
        writer.record_suggestion(t=s["t"], planner=s["planner"], generator=s["generator"], candidates=[c["uid"] for c in s["candidates"]],
                                 n_observations=s["n_observations"], state_hash=s["state_hash"], state=s["state"], latency=s["latency"])
    for d in history.documents:
        writer(d["name"], d["doc"])
    for r in history.finished:
        writer.record_experiment(r["row"])
    for r in history.interrupted:
        writer.record_interrupted({k: v for k, v in r.items() if k != "k"})
    for r in history.human:
        writer.record_human(r)
    for r in history.work_orders:
        writer.record_work_order(r)
    writer.publish()
    return writer, report
