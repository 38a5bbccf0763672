"""The HDF5 provenance file: one per campaign, written as data arrives.

Layout (every group carries an ``NX_class`` attribute so NeXus-aware viewers show it sensibly)::

    /                       attrs: campaign, campaign_id, created, recipe_hash, seed, planner, labflow_version
    /recipe                 the recipe YAML as written (attr ``resolved``: the validated recipe as JSON)
    /lab                    the lab config as JSON
    /versions               attrs: package versions
    /experiments/           one row per experiment, appended when it finishes
        uid, station, status, reason, attempts, run_uids, suggestion, t_suggested, t_started, t_finished
        <parameter>         values in the recipe's units (attr ``units``); categoricals as strings
        <objective>         measured values in the objective's units (attr ``units``); NaN when failed
    /suggestions/           one row per planner decision: id, t, planner, generator, candidate uids,
                            n_observations (the history it saw: the first n rows of /experiments in
                            completion order), state_hash, state (planner settings, seed, counters as JSON)
    /documents              every bluesky document as (name, JSON) in arrival order: the full record
    /runs/<run uid>/        per bluesky run: attrs start, stop (JSON); descriptors; events/<stream>/<key>

Writes are serialized by a lock (several stations' RunEngines emit documents at once) and
flushed after each experiment, so a crash loses at most the experiments in flight.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from labflow.errors import ProvenanceError
from labflow.objectives import Objective
from labflow.space import Categorical, Integer, Space

STR = h5py.string_dtype()
FORMAT_VERSION = "1"
PACKAGES = ("labflow", "bluesky", "ophyd", "event-model", "botorch", "gpytorch", "torch", "prefect", "h5py", "pint", "pyzmq", "numpy", "pandas")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_default, allow_nan=True)


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


class _Table:
    """A group of equal-length, resizable 1-D datasets appended row by row."""

    def __init__(self, group: h5py.Group, columns: Mapping[str, tuple[Any, str | None]]) -> None:
        self.group = group
        for name, (dtype, units) in columns.items():
            if name not in group:
                ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
                if units is not None:
                    ds.attrs["units"] = units
        self.columns = list(columns)

    def __len__(self) -> int:
        return self.group[self.columns[0]].shape[0] if self.columns else 0

    def append(self, row: Mapping[str, Any]) -> None:
        n = len(self)
        for name in self.columns:
            ds = self.group[name]
            ds.resize((n + 1,))
            value = row.get(name)
            if ds.dtype.kind == "f":
                value = np.nan if value is None else float(value)
            elif ds.dtype.kind in "iu":
                value = -1 if value is None else int(value)
            else:
                value = "" if value is None else str(value)
            ds[n] = value


class ProvenanceWriter:
    """Writes one campaign's HDF5 provenance file. Thread-safe; use as a context manager."""

    def __init__(
        self,
        path: str | Path,
        *,
        campaign: str,
        space: Space,
        objectives: Sequence[Objective],
        recipe_text: str = "",
        recipe: Mapping[str, Any] | None = None,
        recipe_hash: str = "",
        lab: Mapping[str, Any] | None = None,
        seed: int = 0,
        planner: str = "",
        campaign_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise ProvenanceError(f"provenance file {self.path} already exists", hint="choose another --out directory or campaign name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.space = space
        self.objectives = list(objectives)
        self.campaign_id = campaign_id or str(uuid.uuid4())
        self._lock = threading.RLock()
        self._runs: dict[str, dict[str, Any]] = {}
        try:
            # HDF5's own file lock is off so that `labflow inspect` and live monitors can read the file
            # while it is written; a campaign has one writer by construction (one writer object per file).
            self._f = h5py.File(self.path, "w-", libver="latest", locking=False)
        except OSError as exc:
            raise ProvenanceError(f"cannot create provenance file {self.path}: {exc}") from exc
        f = self._f
        f.attrs.update(
            {
                "NX_class": "NXroot",
                "format": "labflow-provenance",
                "format_version": FORMAT_VERSION,
                "campaign": campaign,
                "campaign_id": self.campaign_id,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "recipe_hash": recipe_hash,
                "seed": int(seed),
                "planner": planner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "labflow_version": package_versions().get("labflow", ""),
            }
        )
        rec = f.create_dataset("recipe", data=recipe_text, dtype=STR)
        rec.attrs["resolved"] = _json(recipe or {})
        f.create_dataset("lab", data=_json(lab or {}), dtype=STR)
        versions = f.create_group("versions")
        versions.attrs["NX_class"] = "NXcollection"
        versions.attrs.update(package_versions())
        f.attrs["space"] = _json(space.to_dict())
        f.attrs["objectives"] = _json([o.to_dict() for o in self.objectives])

        exp = f.create_group("experiments")
        exp.attrs["NX_class"] = "NXcollection"
        columns: dict[str, tuple[Any, str | None]] = {
            "uid": (STR, None),
            "station": (STR, None),
            "status": (STR, None),
            "reason": (STR, None),
            "attempts": (np.int32, None),
            "run_uids": (STR, None),
            "suggestion": (np.int64, None),
            "generator": (STR, None),
            "t_suggested": (np.float64, "s"),
            "t_started": (np.float64, "s"),
            "t_finished": (np.float64, "s"),
        }
        for p in space.parameters:
            if isinstance(p, Categorical):
                columns[p.name] = (STR, "")
            elif isinstance(p, Integer):
                columns[p.name] = (np.int64, p.unit)
            else:
                columns[p.name] = (np.float64, p.unit)
        for o in self.objectives:
            columns[o.name] = (np.float64, o.unit)
        self._experiments = _Table(exp, columns)

        sug = f.create_group("suggestions")
        sug.attrs["NX_class"] = "NXcollection"
        self._suggestions = _Table(
            sug,
            {
                "t": (np.float64, "s"),
                "planner": (STR, None),
                "generator": (STR, None),
                "candidates": (STR, None),
                "n_observations": (np.int64, None),
                "state_hash": (STR, None),
                "state": (STR, None),
                "latency": (np.float64, "s"),
            },
        )
        docs = f.create_group("documents")
        docs.attrs["NX_class"] = "NXcollection"
        self._documents = _Table(docs, {"name": (STR, None), "doc": (STR, None)})
        runs = f.create_group("runs")
        runs.attrs["NX_class"] = "NXcollection"
        f.flush()

    # -- writing ------------------------------------------------------------------------
    def record_suggestion(
        self,
        *,
        t: float,
        planner: str,
        generator: str,
        candidates: Sequence[str],
        n_observations: int,
        state_hash: str,
        state: Mapping[str, Any],
        latency: float,
    ) -> int:
        """Record one planner decision; returns its index (referenced by the experiments it proposed)."""
        with self._lock:
            index = len(self._suggestions)
            self._suggestions.append(
                {
                    "t": t,
                    "planner": planner,
                    "generator": generator,
                    "candidates": _json(list(candidates)),
                    "n_observations": n_observations,
                    "state_hash": state_hash,
                    "state": _json(state),
                    "latency": latency,
                }
            )
            self._f.flush()
            return index

    def record_experiment(self, row: Mapping[str, Any]) -> None:
        """Append one finished experiment (parameters, outcomes, status, timing) and flush."""
        with self._lock:
            self._experiments.append(row)
            self._f.flush()

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        """A bluesky document callback: subscribe it to each RunEngine (``RE.subscribe(writer)``)."""
        with self._lock:
            self._documents.append({"name": name, "doc": _json(doc)})
            if name == "start":
                self._runs[doc["uid"]] = {"start": doc, "descriptors": {}, "events": {}}
            elif name == "descriptor":
                run = self._runs.get(doc["run_start"])
                if run is not None:
                    run["descriptors"][doc["uid"]] = doc
            elif name == "event":
                for run in self._runs.values():
                    if doc["descriptor"] in run["descriptors"]:
                        run["events"].setdefault(doc["descriptor"], []).append(doc)
                        break
            elif name == "stop":
                run = self._runs.pop(doc["run_start"], None)
                if run is not None:
                    self._write_run(run, doc)
                self._f.flush()

    def _write_run(self, run: dict[str, Any], stop: Mapping[str, Any]) -> None:
        start = run["start"]
        g = self._f["runs"].create_group(start["uid"])
        g.attrs["NX_class"] = "NXentry"
        g.attrs["start"] = _json(start)
        g.attrs["stop"] = _json(stop)
        g.attrs["exit_status"] = stop.get("exit_status", "")
        g.attrs["experiment_uid"] = start.get("experiment_uid", "")
        for desc_uid, desc in run["descriptors"].items():
            sg = g.require_group(desc.get("name", "primary"))
            sg.attrs["NX_class"] = "NXdata"
            sg.attrs["descriptor"] = _json(desc)
            events = run["events"].get(desc_uid, [])
            for key, info in desc["data_keys"].items():
                values = [ev["data"].get(key) for ev in events]
                if info.get("dtype") in ("number", "integer"):
                    ds = sg.create_dataset(key, data=np.array([np.nan if v is None else v for v in values], dtype=float))
                else:
                    ds = sg.create_dataset(key, data=[_json(v) if not isinstance(v, str) else v for v in values], dtype=STR)
                units = info.get("units")
                if units:
                    ds.attrs["units"] = units
                ds.attrs["source"] = info.get("source", "")
            sg.create_dataset("time", data=np.array([ev["time"] for ev in events], dtype=float)).attrs["units"] = "s"

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        """Store the campaign's end state (counts, best point, stop reason) as root attributes."""
        with self._lock:
            self._f.attrs["summary"] = _json(summary)
            self._f.attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            if self._f.id.valid:
                self._f.flush()
                self._f.close()

    def __enter__(self) -> ProvenanceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- reading ------------------------------------------------------------------------------
@dataclass
class CampaignRecord:
    """A campaign read back from its provenance file."""

    path: Path
    attrs: dict[str, Any]
    recipe_text: str
    recipe: dict[str, Any]
    lab: dict[str, Any]
    versions: dict[str, str]
    space: Space
    objectives: list[Objective]
    experiments: pd.DataFrame
    suggestions: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)

    @property
    def completed(self) -> pd.DataFrame:
        return self.experiments[self.experiments["status"] == "completed"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.experiments[self.experiments["status"].isin(["failed", "invalid"])]

    def best(self) -> dict[str, Any] | None:
        """The best completed experiment by the first objective, as {name: {"value", "unit"}}."""
        done = self.completed
        if done.empty:
            return None
        obj = self.objectives[0]
        row = done.loc[(done[obj.name] * obj.sign).idxmax()]
        names = self.space.names + [o.name for o in self.objectives]
        return {n: {"value": _plain(row[n]), "unit": self.units.get(n, "")} for n in names} | {"uid": row["uid"]}

    def summary(self) -> dict[str, Any]:
        return {
            "campaign": self.attrs.get("campaign", ""),
            "campaign_id": self.attrs.get("campaign_id", ""),
            "file": str(self.path),
            "recipe_hash": self.attrs.get("recipe_hash", ""),
            "planner": self.attrs.get("planner", ""),
            "seed": int(self.attrs.get("seed", 0)),
            "created": self.attrs.get("created", ""),
            "finished": self.attrs.get("finished", ""),
            "experiments": int(len(self.experiments)),
            "completed": int(len(self.completed)),
            "failed": int(len(self.failed)),
            "best": self.best(),
            "recipe": self.recipe,
            "versions": self.versions,
        }


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_campaign(path: str | Path) -> CampaignRecord:
    """Read a provenance file (also one still being written, or left by a crash)."""
    p = Path(path)
    if not p.is_file():
        raise ProvenanceError(f"no provenance file at {p}")
    try:
        f = h5py.File(p, "r", locking=False)
    except OSError as exc:
        raise ProvenanceError(f"{p} is not a readable HDF5 file: {exc}") from exc
    with f:
        if f.attrs.get("format") != "labflow-provenance":
            raise ProvenanceError(f"{p} is an HDF5 file but not a labflow provenance file (no 'format' attribute)")
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        space = Space.from_dict(json.loads(attrs["space"]))
        objectives = [Objective(**o) for o in json.loads(attrs["objectives"])]
        units: dict[str, str] = {}
        exp = {}
        for name, ds in f["experiments"].items():
            data = ds[()]
            if ds.dtype.kind == "O" or h5py.check_string_dtype(ds.dtype):
                data = [x.decode() if isinstance(x, bytes) else x for x in data]
            exp[name] = data
            if "units" in ds.attrs:
                units[name] = _plain(ds.attrs["units"])
        experiments = pd.DataFrame(exp)
        sug = {}
        for name, ds in f["suggestions"].items():
            data = ds[()]
            if h5py.check_string_dtype(ds.dtype):
                data = [x.decode() if isinstance(x, bytes) else x for x in data]
            sug[name] = data
        return CampaignRecord(
            path=p,
            attrs=attrs,
            recipe_text=_plain(f["recipe"][()]),
            recipe=json.loads(_plain(f["recipe"].attrs["resolved"])),
            lab=json.loads(_plain(f["lab"][()])),
            versions={k: _plain(v) for k, v in f["versions"].attrs.items() if k != "NX_class"},
            space=space,
            objectives=objectives,
            experiments=experiments,
            suggestions=pd.DataFrame(sug),
            units=units,
        )
