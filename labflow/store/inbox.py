"""A campaign's inbox: where people's acts wait until the campaign ledgers them.

The ledger has one writer, the process that holds the campaign (:class:`~labflow.store.campaign_dir.CampaignLock`).
A person acts from another process -- ``labflow approve``, the dashboard, a Prefect form -- so
the act is first appended to ``inbox.lfl`` in the campaign directory, in the ledger's own format
(length-prefixed, CRC-checked, fsynced records; :mod:`labflow.store.ledger`). Any number of
processes may post: each takes an exclusive lock on ``inbox.lock`` (``filelock``: ``flock`` on
POSIX, ``msvcrt`` on Windows) for its append, and readers take it too, so nobody reads half a record.

The campaign polls its inbox, checks each act (is the experiment still waiting? are the values
inside the bounds and the device limits?) and appends it to its ledger as a ``human`` record,
applied or refused with the reason: the ledger stays the one source of truth. An act that the
inbox holds but the ledger does not is applied on the next poll, also after a crash and
``labflow resume``; an act whose ``id`` the ledger already holds is never applied twice.

Every act carries ``id`` (a uuid), ``act`` (what), ``who``, ``when`` (ISO 8601, UTC), ``target``
(an experiment uid, or '' for a new one), ``before``/``after`` (values) and ``comment``.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from labflow.store.ledger import Ledger, TornTailWarning, read_records

__all__ = ["ACTS", "INBOX", "new_act", "post_act", "read_inbox", "work_orders_view"]

INBOX = "inbox.lfl"
INBOX_LOCK = "inbox.lock"

ACTS = ("approve", "reject", "edit", "add", "annotate", "expire", "report")
"""What a person can do: approve a suggestion, reject it, edit and approve it, add an experiment,
annotate a finished one, report the result of a manual station's work order (``target`` is the
order's id); ``expire`` is the gate's own act when an approval timed out."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_user() -> str:
    """The login name of whoever runs this process (``LABFLOW_USER`` overrides it)."""
    name = os.environ.get("LABFLOW_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def new_act(act: str, *, target: str = "", who: str | None = None, before: Mapping[str, Any] | None = None,
            after: Mapping[str, Any] | None = None, comment: str = "", via: str = "cli", **extra: Any) -> dict[str, Any]:
    """A human act, ready to post: a fresh ``id``, ``when`` now, ``who`` the login user unless given."""
    if act not in ACTS:
        raise ValueError(f"unknown act {act!r}; expected one of {ACTS}")
    return {"k": "human", "id": str(uuid.uuid4()), "act": act, "target": target, "who": who or default_user(), "when": _now(),
            "before": dict(before or {}), "after": dict(after or {}), "comment": comment, "via": via, **extra}


@contextmanager
def _inbox_lock(cdir_path: Path) -> Iterator[None]:
    """Hold the inbox's lock (exclusive; an append or a read takes milliseconds)."""
    with FileLock(cdir_path / INBOX_LOCK, thread_local=False):
        yield


def post_act(cdir_path: str | Path, act: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``act`` to the campaign's inbox (fsynced before this returns); any process may call it."""
    d = Path(cdir_path)
    if not (d / "ledger.lfl").is_file():
        raise FileNotFoundError(f"{d} is not a campaign directory (no ledger.lfl)")
    record = dict(act)
    with _inbox_lock(d):
        inbox = Ledger(d / INBOX, quarantine=d / "quarantine")
        try:
            inbox.append(record)
        finally:
            inbox.close()
    return record


def read_inbox(cdir_path: str | Path) -> list[dict[str, Any]]:
    """Every act posted to the campaign's inbox, in order (none when there is no inbox yet)."""
    d = Path(cdir_path)
    p = d / INBOX
    if not p.is_file():
        return []
    with _inbox_lock(d), warnings.catch_warnings():
        # A post killed mid-append leaves a torn tail; the next post cuts it off (it was never
        # acknowledged to anyone), so a reader skips it quietly.
        warnings.simplefilter("ignore", TornTailWarning)
        return [r for r in read_records(p) if r.get("k") == "human"]


def people_view(cdir_path: str | Path) -> dict[str, Any]:
    """What people see of a campaign, read from its ledger and inbox without taking its lock:
    ``waiting`` (suggestions held for approval, oldest first: uid, params, why, requested,
    deadline), ``acts`` (the ledgered acts, applied or refused) and ``posted`` (acts in the inbox
    the campaign has not ledgered yet: it is not running, or has not polled since)."""
    from labflow.store.campaign_dir import CampaignDir

    cdir = CampaignDir(cdir_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)  # the campaign may be appending right now
        history = cdir.history()
    decided = {a["target"] for a in history.human if a.get("outcome") == "applied"
               and (a["act"] in ("approve", "reject", "edit") or (a["act"] == "expire" and (a.get("after") or {}).get("on_timeout") == "skip"))}
    ended = history.end is not None and history.end.get("complete", False)
    waiting = [] if ended else [w for w in history.waiting if w["uid"] not in decided and w["uid"] not in history.started]
    ledgered = {a["id"] for a in history.human}
    posted = [a for a in read_inbox(cdir.path) if a["id"] not in ledgered]
    return {"waiting": waiting, "acts": list(history.human), "posted": posted, "history": history, "ended": ended}


def annotate_finished(cdir_path: str | Path, act: Mapping[str, Any]) -> dict[str, Any]:
    """Record an annotation on a campaign that has ended (no process will read its inbox again):
    under the campaign's lock, the act is ledgered and appended to the HDF5 file's ``/human_acts``.
    The experiment must have finished; nothing else changes (the planner is gone; a report and an
    export show the annotation). Returns the record as ledgered."""
    from labflow.errors import LabflowError
    from labflow.store.campaign_dir import CampaignDir
    from labflow.store.provenance import append_human_acts

    cdir = CampaignDir(cdir_path)
    with cdir.lock():
        history = cdir.history(repair=True)
        if history.end is None or not history.end.get("complete", False):
            raise LabflowError(f"campaign {cdir.path} has not ended", hint="post the act to its inbox; the campaign applies it")
        record = {k: v for k, v in act.items() if k != "k"}
        if act.get("act") != "annotate" or act.get("target") not in history.finished_uids:
            raise LabflowError(f"{act.get('act')} {act.get('target')}: only a finished experiment of an ended campaign can be annotated")
        row = next(r for r in history.finished if r["uid"] == act["target"])
        record.update(before={"status": row["obs"]["status"], "outcomes": row["obs"].get("outcomes", {})}, outcome="applied", refusal="",
                      requested=dict(act.get("after") or {}))
        ledger = Ledger(cdir.ledger_path, quarantine=cdir.quarantine)
        try:
            ledger.append({**record, "k": "human"})
        finally:
            ledger.close()
        append_human_acts(cdir.provenance_path, [record])
    return record


def _epoch(when: Any) -> float:
    """An act's ``when`` (ISO 8601) as epoch seconds; +inf when it cannot be read (never early)."""
    try:
        return _dt.datetime.fromisoformat(str(when)).timestamp()
    except ValueError:
        return float("inf")


def work_orders_view(cdir_path: str | Path, *, now: float | None = None) -> list[dict[str, Any]]:
    """The work orders of a campaign's manual stations, read from its ledger and inbox without taking
    its lock, in issue order. Each is its ``work_order`` record (``id``, ``uid`` of the experiment,
    ``station``, ``params`` with ``units``, the ``outputs`` expected, ``issued``, ``deadline``,
    ``timeout_s``) plus ``state``: ``open`` (waiting for a result), ``posted`` (a report waits in the
    inbox for the campaign to record it), ``reported`` (recorded), ``timed out`` (no report before the
    deadline) or ``closed`` (the experiment's result is recorded, or the campaign ended); and
    ``report``: the ledgered or posted report act, if any."""
    import time

    from labflow.store.campaign_dir import CampaignDir

    cdir = CampaignDir(cdir_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)  # the campaign may be appending right now
        history = cdir.history()
    now = time.time() if now is None else float(now)
    ended = history.end is not None and history.end.get("complete", False)
    finished = set(history.finished_uids)
    reports = {a["target"]: a for a in history.human if a.get("act") == "report" and a.get("outcome") == "applied"}
    ledgered = {a["id"] for a in history.human}
    posted = {a["target"]: a for a in read_inbox(cdir.path) if a.get("act") == "report" and a["id"] not in ledgered}
    out = []
    for order in history.work_orders:
        o = {k: v for k, v in order.items() if k != "k"}
        oid = o["id"]
        if oid in reports:
            o["state"], o["report"] = "reported", reports[oid]
        elif oid in posted and _epoch(posted[oid].get("when")) <= float(o["deadline"]):
            o["state"], o["report"] = "posted", posted[oid]
        elif o["uid"] in finished or ended:
            o["state"], o["report"] = ("timed out" if now >= float(o["deadline"]) else "closed"), None
        elif now >= float(o["deadline"]):
            o["state"], o["report"] = "timed out", None
        else:
            o["state"], o["report"] = "open", None
        out.append(o)
    return out
