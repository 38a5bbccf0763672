"""A campaign's directory: its ledger, its lock, its snapshots, its quarantine.

Layout, beside the provenance file ``<out>/<name>-<stamp>.h5``::

    <out>/<name>-<stamp>.labflow/
        ledger.lfl          the append-only journal (labflow.store.ledger): the source of truth
        lock                the lock file (filelock: flock on POSIX, msvcrt on Windows)
        lock.holder.json    who holds it: {"pid", "host", "started"}; removed on release
        snapshot.json       the planner's state and counters, replaced atomically (temp -> fsync -> rename)
        quarantine/         files a crash left behind: never deleted, only moved here

One writer per campaign: :class:`CampaignLock` takes an exclusive lock on ``lock`` with the
``filelock`` package (so ``labflow.store`` imports on Windows, where many instrument PCs run)
and writes the holder's pid, host and start time into ``lock.holder.json``. A second process
fails at once with :class:`~labflow.errors.CampaignLocked` naming the holder ("held by process
1234 on host X since ..."). The operating system drops the lock when its process dies (even by
SIGKILL), so a lock left by a crash is free: it is taken over after checking that the recorded
holder is not alive on this host. A lock recorded by another host is not broken unless
``break_lock=True`` (its lock may not be visible over a network filesystem).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from labflow.errors import CampaignLocked, ProvenanceError
from labflow.store.ledger import atomic_write, fsync_dir, read_records

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
    except OSError:  # Windows: os.kill(pid, 0) on a pid that does not exist raises OSError (WinError 87)
        return False
    return True


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class CampaignLock:
    """An exclusive, advisory lock on a campaign directory (see the module docstring).

    The lock itself is a :class:`filelock.FileLock` on ``lock`` (``flock`` on POSIX, ``msvcrt``
    byte-range locking on Windows); who holds it is written to the companion file
    ``lock.holder.json``, because a locked file cannot be read by other processes on Windows.
    """

    def __init__(self, path: str | Path, *, break_lock: bool = False) -> None:
        self.path = Path(path)
        self.holder_path = holder_path(self.path)
        self.recovered_from: dict[str, Any] | None = None
        self._lock = FileLock(self.path, blocking=False, thread_local=False)
        try:
            self._lock.acquire()
        except Timeout:
            holder = self.holder()
            raise CampaignLocked(
                f"campaign {self.path.parent} is in use: held by process {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} since {holder.get('started', '?')}",
                hint="wait for it to finish, or stop it (SIGTERM pauses it cleanly) before resuming",
                holder=holder,
            ) from None
        try:
            self._check_previous_holder(break_lock)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
            _write_durably(self.holder_path, json.dumps(info).encode())
        except BaseException:
            self._lock.release()
            raise
        self.info = info

    def _check_previous_holder(self, break_lock: bool) -> None:
        """The lock is ours; refuse it anyway when the recorded holder may still be running."""
        previous = self.holder()
        if not previous or previous.get("pid") in (None, os.getpid()):
            return
        host = socket.gethostname()
        same_host = previous.get("host") == host
        if same_host and _pid_alive(int(previous["pid"])) and not break_lock:
            # the lock is free but the pid lives: a reused pid, or a holder that lost its lock. Be safe.
            raise CampaignLocked(
                f"campaign {self.path.parent}: the lock names process {previous['pid']} on this host, which is alive "
                f"(held since {previous.get('started', '?')})",
                hint=f"if that process is not labflow, remove {self.holder_path} or pass --break-lock",
                holder=previous,
            )
        if not same_host and not break_lock:
            raise CampaignLocked(
                f"campaign {self.path.parent} was last held by process {previous.get('pid')} on another host "
                f"{previous.get('host')!r} (since {previous.get('started')}); its liveness cannot be checked from here",
                hint="make sure that host no longer runs it, then pass --break-lock",
                holder=previous,
            )
        self.recovered_from = previous

    def holder(self) -> dict[str, Any]:
        """Who holds (or last held) the lock: ``{"pid", "host", "started"}``, or ``{}``."""
        return _holder(self.path)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        """Clear the holder record, then let the lock go (idempotent)."""
        if self._lock.is_locked:
            try:
                self.holder_path.unlink(missing_ok=True)
            finally:
                self._lock.release()

    def __enter__(self) -> CampaignLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def holder_path(lock_path: Path) -> Path:
    """The companion file that records who holds ``lock_path``."""
    return lock_path.with_name(lock_path.name + ".holder.json")


def _write_durably(path: Path, data: bytes) -> None:
    """temp -> fsync -> replace -> fsync dir (no crash point: the holder record is not campaign state)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


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
    work_orders: list[dict] = field(default_factory=list)  # work orders of manual stations ('work_order' records), in issue order
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
            elif k == "work_order":
                h.work_orders.append(r)
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


def _holder(lock_path: Path) -> dict[str, Any]:
    """The holder record beside ``lock_path`` (``{}`` when nobody holds it or it is unreadable)."""
    try:
        found = json.loads(holder_path(lock_path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _is_locked(lock_path: Path) -> bool:
    """Whether a live process (this one included) holds the lock, without waiting for it."""
    if not lock_path.exists():
        return False
    probe = FileLock(lock_path, blocking=False, thread_local=False)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


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
