"""Crash points for tests, and the checks that a campaign survived them.

The crash points themselves live in the core (:mod:`labflow.faults`, standard library only),
because the ledger, the provenance writer and the loop call them; this module re-exports them
for tests and adds :func:`finished_uids` and :func:`verify_campaign`, which read a campaign back.
Runtime code never imports this module (an import-linter contract in ``pyproject.toml``)::

    env = {**os.environ, "LABFLOW_CRASHPOINT": "ledger.after_fsync:3"}
    subprocess.run([sys.executable, "-m", "labflow.cli", "run", ...], env=env)  # dies with -9
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from labflow.faults import CRASH_POINTS, ENV_VAR, crash_env, crashpoint

__all__ = ["CRASH_POINTS", "ENV_VAR", "crashpoint", "crash_env", "finished_uids", "verify_campaign"]


# -- checking a campaign after crashes (the store is imported inside these functions, so that importing
#    this module loads only labflow.faults, which uses the standard library alone) ------
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
