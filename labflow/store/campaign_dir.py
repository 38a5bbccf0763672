"""A campaign's directory: its ledger, its lock, its snapshots, its quarantine.

Layout, beside the provenance file ``<out>/<name>-<stamp>.h5``::

    <out>/<name>-<stamp>.labflow/
        ledger.lfl          the append-only journal (labflow.store.ledger): the source of truth
        lock                who holds the campaign: {"pid", "host", "started"} (flock'd while held)
        snapshot.json       the planner's state and counters, replaced atomically (temp -> fsync -> rename)
        quarantine/         files a crash left behind: never deleted, only moved here

One writer per campaign: :class:`CampaignLock` takes an exclusive ``flock`` on ``lock`` and
writes the holder's pid, host and start time into it. A second process fails at once with
:class:`~labflow.errors.CampaignLocked` naming the holder. The kernel drops a ``flock`` when
its process dies (even by SIGKILL), so a lock left by a crash is free: it is taken over after
checking that the recorded holder is not alive on this host. A lock recorded by another host
is not broken unless ``break_lock=True`` (its flock may not be visible over a network filesystem).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labflow.errors import CampaignLocked, ProvenanceError
from labflow.store.ledger import atomic_write, read_records

__all__ = ["CampaignDir", "CampaignHistory", "CampaignLock", "find_campaign_dir", "unfinished_campaigns"]

SUFFIX = ".labflow"
LEDGER = "ledger.lfl"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CampaignLock:
    """An exclusive, advisory lock on a campaign directory (see the module docstring)."""

    def __init__(self, path: str | Path, *, break_lock: bool = False) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.recovered_from: dict[str, Any] | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            os.close(fd)
            raise CampaignLocked(
                f"campaign {self.path.parent} is in use by process {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} (since {holder.get('started', '?')})",
                hint="wait for it to finish, or stop it (SIGTERM pauses it cleanly) before resuming",
                holder=holder,
            ) from None
        previous = self.holder()
        host = socket.gethostname()
        if previous and previous.get("pid") not in (None, os.getpid()):
            same_host = previous.get("host") == host
            if same_host and _pid_alive(int(previous["pid"])) and not break_lock:
                # flock is free but the pid lives: a reused pid, or a holder that lost its fd. Be safe.
                os.close(fd)
                raise CampaignLocked(
                    f"campaign {self.path.parent}: the lock names process {previous['pid']} on this host, which is alive",
                    hint="if that process is not labflow, remove the lock file or pass --break-lock",
                    holder=previous,
                )
            if not same_host and not break_lock:
                os.close(fd)
                raise CampaignLocked(
                    f"campaign {self.path.parent} was last held by process {previous.get('pid')} on another host "
                    f"{previous.get('host')!r} (since {previous.get('started')}); its liveness cannot be checked from here",
                    hint="make sure that host no longer runs it, then pass --break-lock",
                    holder=previous,
                )
            self.recovered_from = previous
        info = {"pid": os.getpid(), "host": host, "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self.info = info

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> CampaignLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass
class CampaignHistory:
    """What a ledger says happened, replayed in order (see :meth:`CampaignDir.history`)."""

    header: dict[str, Any]
    suggestions: list[dict] = field(default_factory=list)
    started: dict[str, dict] = field(default_factory=dict)  # uid -> last 'started' record
    finished: list[dict] = field(default_factory=list)  # in completion order
    interrupted: list[dict] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    human: list[dict] = field(default_factory=list)  # people's acts, applied or refused (labflow.store.inbox)
    waiting: list[dict] = field(default_factory=list)  # suggestions held for approval ('waiting' records)
    end: dict | None = None
    records: int = 0

    @property
    def finished_uids(self) -> list[str]:
        return [r["uid"] for r in self.finished]

    @property
    def asked(self) -> int:
        return sum(len(s["candidates"]) for s in self.suggestions)

    def in_flight(self) -> list[dict]:
        """'started' records with no 'finished' one: experiments a crash or a stop cut short."""
        done = set(self.finished_uids)
        return [r for uid, r in self.started.items() if uid not in done]

    def interruptions(self, uid: str) -> int:
        return sum(1 for r in self.interrupted if r["uid"] == uid)

    def not_started(self) -> list[dict]:
        """Candidates the planner proposed that never started (batch asks), in proposal order."""
        out = []
        for s in self.suggestions:
            for c in s["candidates"]:
                if c["uid"] not in self.started:
                    out.append({**c, "suggestion": s["index"], "t": s["t"]})
        return out


class CampaignDir:
    """Paths and helpers of one campaign directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ledger_path = self.path / LEDGER
        self.lock_path = self.path / "lock"
        self.snapshot_path = self.path / "snapshot.json"
        self.quarantine = self.path / "quarantine"

    @property
    def provenance_path(self) -> Path:
        """``<out>/<name>-<stamp>.h5`` beside the directory ``<out>/<name>-<stamp>.labflow``."""
        return self.path.with_suffix(".h5")

    @property
    def partial_path(self) -> Path:
        return self.path / "provenance.partial.h5"

    def exists(self) -> bool:
        return self.ledger_path.is_file()

    def is_held(self) -> bool:
        """True while a process holds the campaign (it is running), without reading the ledger."""
        return _is_locked(self.lock_path)

    def lock(self, *, break_lock: bool = False) -> CampaignLock:
        return CampaignLock(self.lock_path, break_lock=break_lock)

    def clean_temporaries(self) -> list[Path]:
        """Remove temp files left by an interrupted atomic write (the real file is intact)."""
        gone = []
        for p in self.path.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            gone.append(p)
        return gone

    def quarantine_file(self, p: Path, why: str) -> Path | None:
        """Move ``p`` into ``quarantine/`` (never delete it); returns the new path."""
        if not p.exists():
            return None
        self.quarantine.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        k = 0
        while True:
            dest = self.quarantine / f"{p.stem}.{stamp}{'-' + str(k) if k else ''}{p.suffix}"
            if not dest.exists():
                break
            k += 1
        os.replace(p, dest)
        with open(self.quarantine / "README.txt", "a") as f:
            f.write(f"{dest.name}: {why}\n")
        return dest

    def write_snapshot(self, state: dict[str, Any]) -> None:
        atomic_write(self.snapshot_path, json.dumps(state, sort_keys=True, default=str).encode())

    def read_snapshot(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.snapshot_path.read_text())
        except FileNotFoundError:
            return None

    def history(self, *, repair: bool = False) -> CampaignHistory:
        """Replay the ledger into a :class:`CampaignHistory` (deterministic: same ledger, same history)."""
        if not self.exists():
            raise ProvenanceError(f"{self.path} has no campaign ledger ({LEDGER})")
        records = read_records(self.ledger_path, repair=repair, quarantine=self.quarantine)
        if not records or records[0].get("k") != "campaign":
            raise ProvenanceError(f"{self.ledger_path}: the ledger has no campaign header (the crash came before it)")
        h = CampaignHistory(header=records[0], records=len(records))
        for r in records[1:]:
            k = r.get("k")
            if k == "suggestion":
                h.suggestions.append(r)
            elif k == "started":
                h.started[r["uid"]] = r
            elif k == "finished":
                h.finished.append(r)
            elif k == "interrupted":
                h.interrupted.append(r)
            elif k == "doc":
                h.documents.append(r)
            elif k == "human":
                h.human.append(r)
            elif k == "waiting":
                h.waiting.append(r)
            elif k == "end":
                h.end = r
            elif k == "resumed":
                h.end = None
        return h

    def status(self) -> dict[str, Any]:
        """A short summary without repairing anything: name, budget, finished, in flight, ended."""
        h = self.history()
        return {
            "dir": str(self.path),
            "campaign": h.header.get("campaign"),
            "budget": h.header.get("budget"),
            "finished": len(h.finished),
            "in_flight": len(h.in_flight()),
            "ended": h.end is not None and h.end.get("complete", False),
            "holder": _holder(self.lock_path) if _is_locked(self.lock_path) else {},
        }


def _holder(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _is_locked(p: Path) -> bool:
    try:
        fd = os.open(p, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def unfinished_campaigns(out_dir: str | Path, name: str | None = None) -> list[CampaignDir]:
    """Campaign directories in ``out_dir`` (of campaign ``name``) that did not finish and that no
    live process holds: candidates for ``labflow resume``."""
    out = []
    for d in sorted(Path(out_dir).glob(f"{name + '-' if name else ''}*{SUFFIX}")):
        cd = CampaignDir(d)
        if not cd.exists() or _is_locked(cd.lock_path):
            continue
        try:
            h = cd.history()
        except Exception:  # noqa: BLE001 - a damaged one is still worth resuming (resume reports why)
            out.append(cd)
            continue
        if name is not None and h.header.get("campaign") != name:
            continue
        if h.end is None or not h.end.get("complete", False):
            out.append(cd)
    return out


def find_campaign_dir(target: str | Path) -> CampaignDir:
    """The campaign directory meant by ``target``: the directory itself, its provenance ``.h5``
    file, its ledger, or an output directory holding exactly one unfinished campaign."""
    p = Path(target)
    if p.is_dir() and (p / LEDGER).is_file():
        return CampaignDir(p)
    if p.suffix == ".h5" and p.with_suffix(SUFFIX).is_dir():
        return CampaignDir(p.with_suffix(SUFFIX))
    if p.name == LEDGER and p.is_file():
        return CampaignDir(p.parent)
    if p.is_dir():
        found = unfinished_campaigns(p)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(c.path) for c in found)
            raise ProvenanceError(f"{p} holds {len(found)} unfinished campaigns: {names}", hint="name one of them")
        every = [CampaignDir(d) for d in sorted(p.glob(f"*{SUFFIX}")) if (d / LEDGER).is_file()]
        if len(every) == 1:
            return every[0]
        raise ProvenanceError(f"{p} holds no unfinished campaign to resume")
    raise ProvenanceError(f"no campaign at {p}", hint="give the campaign's .h5 file, its .labflow directory, or the output directory")
