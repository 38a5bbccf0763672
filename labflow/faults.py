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
This module is part of the core: it uses the standard library only and imports nothing from
labflow, so the ledger, the provenance writer and the loop call it at no cost.
:mod:`labflow.testing.crash` re-exports it beside the helpers that check a campaign after a crash.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "ENV_VAR", "crash_env", "crashpoint"]

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
