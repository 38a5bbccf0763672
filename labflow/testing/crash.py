"""Named crash points: kill the process at a chosen place, to prove that nothing is lost.

labflow calls :func:`crashpoint` at the places where a crash is most likely to hurt
(between a ledger write and its fsync, half-way through an HDF5 row, before a rename...).
It costs one dictionary lookup and does nothing unless the environment variable
``LABFLOW_CRASHPOINT`` is set to ``name:n``; then the *n*-th time ``name`` is reached
the process sends itself ``SIGKILL`` -- no ``finally`` block, no ``atexit``, no flush,
exactly like a power cut of the process. Tests start a campaign in a subprocess with the
variable set, let it die, resume it, and check the record (``tests/reliability``)::

    env = {**os.environ, "LABFLOW_CRASHPOINT": "ledger.after_fsync:3"}
    subprocess.run([sys.executable, "-m", "labflow.cli", "run", ...], env=env)  # dies with -9

Users test their own labs the same way; :data:`CRASH_POINTS` lists every named point.
This module imports nothing from labflow, so the core can call it at no cost.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterable
from typing import Any

__all__ = ["CRASH_POINTS", "ENV_VAR", "crashpoint", "crash_env", "finished_uids", "verify_campaign"]

ENV_VAR = "LABFLOW_CRASHPOINT"

CRASH_POINTS: dict[str, str] = {
    "ledger.before_fsync": "a ledger record is written but not yet fsynced",
    "ledger.after_fsync": "a ledger record is durable, nothing after it has happened",
    "hdf5.after_create": "the provenance HDF5 file has just been created (header only)",
    "hdf5.mid_append": "half of an HDF5 table row is written",
    "hdf5.before_rename": "a complete provenance file waits to be renamed into place",
    "planner.after_ask": "the planner has proposed candidates that are not yet recorded",
    "snapshot.before_replace": "a state snapshot is written to its temporary file, not yet renamed",
    "run.after_start_doc": "a bluesky run has started (its start document is recorded)",
    "run.before_stop_doc": "a bluesky run is about to record its stop document",
}

_hits: dict[str, int] = {}
_target: tuple[str, int] | None = None
_parsed_from: str | None = None


def _parse() -> tuple[str, int] | None:
    global _target, _parsed_from
    raw = os.environ.get(ENV_VAR, "")
    if raw != _parsed_from:
        _parsed_from = raw
        _target = None
        if raw:
            name, _, n = raw.partition(":")
            if name not in CRASH_POINTS:
                raise ValueError(f"{ENV_VAR}={raw!r}: unknown crash point {name!r}; known: {sorted(CRASH_POINTS)}")
            _target = (name, int(n or 1))
    return _target


def crashpoint(name: str) -> None:
    """Die here with SIGKILL if ``LABFLOW_CRASHPOINT`` names this point and this is its n-th hit."""
    target = _target if os.environ.get(ENV_VAR, "") == _parsed_from else _parse()
    if target is None or target[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def crash_env(name: str, n: int = 1, env: dict | None = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) that makes a child process die at ``name``'s n-th hit."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {sorted(CRASH_POINTS)}")
    out = dict(os.environ if env is None else env)
    out[ENV_VAR] = f"{name}:{int(n)}"
    return out


# -- checking a campaign after crashes (imports are local: this module stays import-free) ------
def finished_uids(campaign: Any) -> list[str]:
    """The uids the ledger of ``campaign`` (directory, .h5 file or output directory) holds as finished."""
    import warnings

    from labflow.store.campaign_dir import find_campaign_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn tail is expected right after a kill
        return find_campaign_dir(campaign).history().finished_uids


def verify_campaign(campaign: Any, *, before: Iterable[str] = (), stations: int | None = None) -> dict[str, Any]:
    """Check P1-P4 on a campaign's record; returns the figures (and ``ok``).

    ``before``: uids ledgered as finished before a crash (:func:`finished_uids`), all of which
    must still be there exactly once. Figures: ``finished``, ``lost``, ``duplicated``,
    ``repeated`` (experiments run again because a crash or stop cut them), ``hdf5_valid``
    (the file opens with h5py, its /experiments rows are the ledger's, in order, and every
    successful run has as many rows as its stop document's ``num_events``), ``replay_hash``
    (the planner state hash from replaying the ledger twice: must be equal).
    """
    import warnings

    import h5py

    from labflow.launch import recipe_from_header, restore_planner
    from labflow.planners import make_planner
    from labflow.store.campaign_dir import find_campaign_dir

    cdir = find_campaign_dir(campaign)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = cdir.history()
    uids = h.finished_uids
    out: dict[str, Any] = {
        "finished": len(uids),
        "budget": h.header.get("budget"),
        "complete": bool(h.end and h.end.get("complete")),
        "duplicated": len(uids) - len(set(uids)),
        "lost": len(set(before) - set(uids)),
        "repeated": sum(1 for r in h.finished if r["row"].get("repeated")),
        "interrupted": len(h.interrupted),
        "problems": [],
    }
    if stations is not None and out["repeated"] > stations * max(1, out["interrupted"]):
        out["problems"].append("more repeats than busy stations")
    valid = True
    try:
        with h5py.File(cdir.provenance_path, "r") as f:
            rows = [x.decode() if isinstance(x, bytes) else x for x in f["experiments/uid"][()]]
            if rows != uids:
                valid = False
                out["problems"].append(f"/experiments has {len(rows)} rows, the ledger {len(uids)} finished")
            for r in h.finished:
                if r["row"]["status"] != "completed":
                    continue
                run_uid = r["row"]["run_uids"].split(",")[-1]
                g = f.get(f"runs/{run_uid}")
                if g is None:
                    valid = False
                    out["problems"].append(f"run {run_uid} of {r['uid']} missing from /runs")
                    continue
                stop = json.loads(g.attrs["stop"])
                for stream, n in stop.get("num_events", {}).items():
                    if stream in g and g[stream]["time"].shape[0] != n:
                        valid = False
                        out["problems"].append(f"run {run_uid} stream {stream}: rows != num_events {n}")
    except Exception as exc:  # noqa: BLE001 - unreadable is the finding
        valid = False
        out["problems"].append(f"provenance file unreadable: {exc}")
    out["hdf5_valid"] = valid
    recipe = recipe_from_header(h.header)
    hashes = []
    for _ in range(2):
        p = make_planner(recipe.spec.planner.kind, recipe.space, recipe.objectives, seed=recipe.seed, **recipe.spec.planner.options)
        restore_planner(p, h)
        hashes.append(p.state_hash())
    out["replay_hash"] = hashes[0]
    out["replay_deterministic"] = hashes[0] == hashes[1]
    out["ok"] = out["duplicated"] == 0 and out["lost"] == 0 and valid and out["replay_deterministic"] and not out["problems"]
    return out
