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
    /runs/<run uid>/        per bluesky run (NXcollection): attrs start, stop (JSON); one NXdata group per
                            stream (attr descriptor; one dataset per data key, ``time``; signal/axes set),
                            events and unpacked event pages alike; ``resources``, ``datums``,
                            ``stream_resources``, ``stream_datums``: those documents as JSON, one per row
    /human_acts/            (people in the loop) one row per person's act, in ledger order: id, act
                            (approve, reject, edit, add, annotate, expire), target uid, who, when,
                            before, after (JSON), comment, via (cli, dashboard, prefect), outcome
                            (applied or refused) and refusal (why); a manual station's result is a ``report``
                            act on its work order
    /work_orders/           (manual stations) one row per work order issued, in issue order: id (WO-0001),
                            uid of the experiment, attempt, station, params and units (JSON), outputs
                            expected (JSON), issued and deadline (epoch s), timeout_s
    /entry                  NXentry (the root's ``default``): best so far against experiment number, one
                            NXdata per objective, plotted on open by h5web and silx (labflow.store.nexus)

Documents reach ``/runs`` through an :class:`event_model.DocumentRouter` (:class:`RunCollector`):
event pages are unpacked into events, datum pages into datums, and resource, datum,
stream_resource and stream_datum documents are kept with their run.

Writes are serialized by a lock (several stations' RunEngines emit documents at once). By
default each call is written through and flushed; a campaign's writer is buffered instead
(``flush_interval``): rows reach the file in batches, one resize and write per column, at most
that many seconds after they arrived and at every sync and at the end. The ledger, fsynced first,
is what makes them durable.

Crash safety. A campaign run by :func:`labflow.launch.run_recipe` keeps its source of truth in an
append-only, checksummed ledger (:mod:`labflow.store.ledger`); this file is *derived* from it. It
is created under a temporary name and renamed into place once its header is complete
(``create_at``/:meth:`ProvenanceWriter.publish`), and on resume the file a crash left behind is
moved to the campaign's ``quarantine/`` (never deleted) and rebuilt from the ledger. Raw readings
are kept verbatim (``raw``, strict JSON), so NaN, infinities and non-numeric values are never lost.
Extra columns: ``raw``, ``repeated`` (1 when a crash or stop interrupted an earlier attempt),
``abandoned`` (1 when the candidate failed twice for the same reason); ``/interrupted`` lists
attempts cut short by a crash or a stop.

Materials campaigns (``docs/decisions/0004-recipes-for-real-campaigns.md``), all additive:

* ``/experiments`` also has ``sample_fault`` (1 when the sample failed, not the instrument),
  ``cost`` (the experiment's fidelity cost; attr ``units``; NaN without fidelities),
  ``hypervolume`` (several objectives: of the campaign's completed experiments so far, against
  the thresholds or else the planner's reference point at the time), and, with several
  fidelities, the fidelity column (``fidelity`` by default) among the parameters;
* ``/suggestions`` also has ``fallback`` (1 when any candidate came from a space-filling
  fallback) and ``decision`` (the planner's ``last_decision`` as JSON: generator, reason,
  acquisition values, model summary, fit time);
* ``/prior`` (when the recipe has ``prior_data``): the observations the planner started from,
  one row each (``uid``, ``status``, ``reason``, ``sample_fault``, parameters, objectives,
  ``source``), attr ``sources`` (path, sha256, rows of each file). They are not experiments
  of this campaign and are in no other table;
* ``/pareto`` (written with the summary): ``front`` (the non-dominated completed experiments'
  uids), ``hypervolume_trace`` (after each experiment, against the final reference point),
  attrs ``hypervolume``, ``reference_point`` (JSON) and ``reference`` ("thresholds" or
  "inferred").
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

import event_model
import h5py
import numpy as np
import pandas as pd

from labflow.errors import DiskFullError, ProvenanceError
from labflow.store.columns import experiment_columns
from labflow.store.ledger import fsync_dir
from labflow.store.nexus import NexusView
from labflow.faults import crashpoint
from labflow.objectives import Objective
from labflow.space import Categorical, Integer, Space

STR = h5py.string_dtype()
HUMAN_COLUMNS = ("id", "act", "target", "who", "when", "before", "after", "comment", "via", "outcome", "refusal")
"""The columns of ``/human_acts`` (all text; ``before``/``after`` hold JSON objects of values)."""
WORK_ORDER_COLUMNS = {"id": (STR, None), "uid": (STR, None), "attempt": (np.int64, None), "station": (STR, None),
                      "params": (STR, None), "units": (STR, None), "outputs": (STR, None), "issued": (np.float64, "s"),
                      "timeout_s": (np.float64, "s"), "deadline": (np.float64, "s")}
"""The columns of ``/work_orders`` (``params``, ``units``, ``outputs`` hold JSON; times in epoch seconds)."""
FORMAT_VERSION = "1"
# No newer than HDF5 1.8 formats: the superblock then has no "open for write" flags, so a file a
# SIGKILL left behind still opens in any HDF5 tool (with libver="latest" it needs h5clear first).
LIBVER = ("earliest", "v108")
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
    """A group of equal-length, resizable 1-D datasets appended to in batches of rows."""

    def __init__(self, group: h5py.Group, columns: Mapping[str, tuple[Any, str | None]]) -> None:
        self.group = group
        for name, (dtype, units) in columns.items():
            if name not in group:
                ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
                if units is not None:
                    ds.attrs["units"] = units
        self.columns = list(columns)
        # The datasets and their kinds, looked up once: h5py's name lookup and dtype property cost
        # more than a small write (loop-overhead profile).
        self._datasets = [group[name] for name in self.columns]
        self._kinds = [ds.dtype.kind for ds in self._datasets]
        self._dtypes = [ds.dtype for ds in self._datasets]
        self._n = self._datasets[0].shape[0] if self._datasets else 0

    def __len__(self) -> int:
        return self._n

    def append(self, row: Mapping[str, Any]) -> None:
        self.extend([row])

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows``: one resize and one write per column, however many rows."""
        if not rows:
            return
        n, m = self._n, len(rows)
        half = len(self.columns) // 2
        for i, (name, ds, kind, dtype) in enumerate(zip(self.columns, self._datasets, self._kinds, self._dtypes)):
            if i == half:
                for _ in rows:  # one hit per row, as when rows were written one by one
                    crashpoint("hdf5.mid_append")
            values = np.asarray([_cell(kind, row.get(name)) for row in rows], dtype=dtype if kind in "fiu" else object)
            ds.resize((n + m,))
            ds[n : n + m] = values
        self._n = n + m


def _cell(kind: str, value: Any) -> Any:
    """A value for a column of dtype ``kind``; what does not fit (a string in a number column)
    becomes NaN / -1 here and is kept verbatim in the ``raw`` column."""
    if kind == "f":
        try:
            return np.nan if value is None else float(value)
        except (TypeError, ValueError):
            return np.nan
    if kind in "iu":
        try:
            return -1 if value is None else int(value)
        except (TypeError, ValueError, OverflowError):
            return -1
    return "" if value is None else str(value)


def _guard_disk(fn):
    """Turn an HDF5 write that failed for lack of space into DiskFullError."""

    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except OSError as exc:
            if isinstance(exc, ProvenanceError):
                raise
            text = str(exc)
            if getattr(exc, "errno", None) == 28 or "No space left" in text or "errno = 28" in text:
                raise DiskFullError(
                    f"disk full while writing {self.path}: the campaign is paused",
                    hint="free some space, then run labflow resume (the file is rebuilt from the ledger)",
                ) from exc
            raise

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class RunCollector(event_model.DocumentRouter):
    """Gathers each bluesky run's documents until its stop document (then it is ``finished``).

    A :class:`event_model.DocumentRouter`: event pages arrive as events and datum pages as
    datums (the router unpacks them); resources, datums, stream resources and stream datums are
    kept with the run they belong to. Not thread-safe: the writer calls it under its lock.
    """

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, dict[str, Any]] = {}
        self._run_of: dict[str, str] = {}  # descriptor / resource / stream-resource uid -> run uid
        self.finished: list[tuple[dict[str, Any], Mapping[str, Any]]] = []

    def take_finished(self) -> list[tuple[dict[str, Any], Mapping[str, Any]]]:
        out, self.finished = self.finished, []
        return out

    def _run(self, key: str | None) -> dict[str, Any] | None:
        return self._runs.get(self._run_of.get(key or "", key or ""))

    def start(self, doc):
        self._runs[doc["uid"]] = {"start": doc, "descriptors": {}, "events": {}, "resources": [], "datums": [],
                                  "stream_resources": [], "stream_datums": []}

    def descriptor(self, doc):
        if doc["run_start"] in self._runs:
            self._runs[doc["run_start"]]["descriptors"][doc["uid"]] = doc
            self._run_of[doc["uid"]] = doc["run_start"]

    def event(self, doc):
        run = self._run(doc["descriptor"])
        if run is not None:
            run["events"].setdefault(doc["descriptor"], []).append(doc)

    def resource(self, doc):
        run = self._run(doc.get("run_start"))
        if run is not None:
            run["resources"].append(doc)
            self._run_of[doc["uid"]] = run["start"]["uid"]

    def datum(self, doc):
        run = self._run(doc["resource"])
        if run is not None:
            run["datums"].append(doc)

    def stream_resource(self, doc):
        run = self._run(doc.get("run_start"))
        if run is not None:
            run["stream_resources"].append(doc)
            self._run_of[doc["uid"]] = run["start"]["uid"]

    def stream_datum(self, doc):
        run = self._run(doc["stream_resource"]) or self._run(doc.get("descriptor"))
        if run is not None:
            run["stream_datums"].append(doc)

    def stop(self, doc):
        run = self._runs.pop(doc["run_start"], None)
        if run is None:
            return
        for uid in [k for k, v in self._run_of.items() if v == doc["run_start"]]:
            del self._run_of[uid]
        self.finished.append((run, doc))


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
        create_at: str | Path | None = None,
        created: str | None = None,
        flush_interval: float = 0.0,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise ProvenanceError(f"provenance file {self.path} already exists", hint="choose another --out directory or campaign name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # With ``create_at`` the file is built under that temporary name and renamed to ``path`` by
        # publish(): nobody ever sees a half-made header under the final name.
        self._write_path = Path(create_at) if create_at is not None else self.path
        self.space = space
        self.objectives = list(objectives)
        self.campaign_id = campaign_id or str(uuid.uuid4())
        self._lock = threading.RLock()
        # Buffered writing (``flush_interval`` > 0): rows wait here and reach the file in batches,
        # at the latest ``flush_interval`` seconds after they arrived (a background timer), and at
        # every sync, summary and close. 0 writes each call through at once.
        self.flush_interval = float(flush_interval)
        self._pending: dict[str, list[Any]] = {"suggestions": [], "experiments": [], "interrupted": [], "documents": [], "runs": []}
        self._n_suggestions = 0
        self._timer: threading.Timer | None = None
        # Producers (the RunEngines' threads, the loop) only take this short lock to file a row;
        # the HDF5 work happens under ``_lock``, so no RunEngine ever waits for the disk.
        self._qlock = threading.Lock()
        self._flush_error: BaseException | None = None
        self._human: _Table | None = None
        self._work_orders: _Table | None = None
        try:
            # HDF5's own file lock is off so that `labflow inspect` and live monitors can read the file
            # while it is written; a campaign has one writer by construction (one writer object per file).
            self._f = h5py.File(self._write_path, "w" if create_at is not None else "w-", libver=LIBVER, locking=False)
        except OSError as exc:
            raise ProvenanceError(f"cannot create provenance file {self._write_path}: {exc}") from exc
        crashpoint("hdf5.after_create")
        f = self._f
        f.attrs.update(
            {
                "NX_class": "NXroot",
                "format": "labflow-provenance",
                "format_version": FORMAT_VERSION,
                "campaign": campaign,
                "campaign_id": self.campaign_id,
                "created": created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
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
        columns = experiment_columns(
            [(p.name, "str" if isinstance(p, Categorical) else "int64" if isinstance(p, Integer) else "float64",
              "" if isinstance(p, Categorical) else p.unit) for p in space.parameters],
            [(o.name, o.unit) for o in self.objectives],
            cost_unit=_cost_unit(recipe or {}),
        )
        self._experiments = _Table(exp, columns)
        self._value_columns = {k: columns[k] for k in [*space.names, *(o.name for o in self.objectives)]}

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
                "fallback": (np.int32, None),
                "decision": (STR, None),
            },
        )
        intr = f.create_group("interrupted")
        intr.attrs["NX_class"] = "NXcollection"
        self._interrupted = _Table(
            intr,
            {"uid": (STR, None), "station": (STR, None), "attempt": (np.int32, None), "reason": (STR, None),
             "t": (np.float64, "s"), "run_uids": (STR, None)},
        )
        docs = f.create_group("documents")
        docs.attrs["NX_class"] = "NXcollection"
        self._documents = _Table(docs, {"name": (STR, None), "doc": (STR, None)})
        runs = f.create_group("runs")
        runs.attrs["NX_class"] = "NXcollection"
        fp, target = _fidelity_parameter(recipe or {}), _target_fidelity(recipe or {})
        self._nexus = NexusView(f, campaign=campaign, created=str(f.attrs["created"]), objectives=self.objectives,
                                fidelity=(fp, target) if fp and target else None)
        self._collector = RunCollector()
        self._n_suggestions = len(self._suggestions)
        f.flush()

    # -- writing ------------------------------------------------------------------------
    @property
    def n_suggestions(self) -> int:
        """Planner decisions recorded so far (written or waiting in the buffer)."""
        return self._n_suggestions

    def _write_pending(self) -> None:
        """Write every buffered row and run to the file, table by table (caller holds ``_lock``)."""
        if self._flush_error is not None:  # the background flush failed: say so on the caller's thread
            exc, self._flush_error = self._flush_error, None
            raise exc
        with self._qlock:
            pending = self._pending
            if not any(pending.values()):
                return
            self._pending = {k: [] for k in pending}
        self._suggestions.extend(pending["suggestions"])
        self._experiments.extend(pending["experiments"])
        self._nexus.extend(pending["experiments"])
        self._interrupted.extend(pending["interrupted"])
        self._documents.extend([{"name": name, "doc": _json(doc)} for name, doc in pending["documents"]])
        for run, stop in pending["runs"]:
            self._write_run(run, stop)
        self._f.flush()

    def _enqueue(self, kind: str, item: Any) -> None:
        """File ``item`` for the table ``kind``; write it now (unbuffered) or make sure the timer will."""
        with self._qlock:
            self._pending[kind].append(item)
            self._arm_timer()
        self._written()

    def _arm_timer(self) -> None:
        """Start the flush timer if rows wait and none runs (caller holds ``_qlock``)."""
        if self.flush_interval > 0 and self._timer is None:
            self._timer = threading.Timer(self.flush_interval, self._timed_flush)
            self._timer.daemon = True
            self._timer.start()

    def _written(self) -> None:
        if self.flush_interval <= 0:
            with self._lock:
                self._write_pending()

    def _timed_flush(self) -> None:
        with self._lock:
            with self._qlock:
                self._timer = None
            if not self._f.id.valid:
                return
            try:
                self._write_pending()
            except Exception as exc:  # noqa: BLE001 - re-raised on the writer's next call, on its caller's thread
                self._flush_error = exc

    @_guard_disk
    def flush(self) -> None:
        """Write what is buffered to the file (HDF5's buffers flushed, not fsynced)."""
        with self._lock:
            if self._f.id.valid:
                self._write_pending()

    @_guard_disk
    def sync(self) -> None:
        """Write what is buffered, flush HDF5's buffers and fsync the file: what was recorded is on disk."""
        with self._lock:
            if self._f.id.valid:
                self._write_pending()
                self._f.flush()
                try:
                    os.fsync(self._f.id.get_vfd_handle())
                except (OSError, ValueError, TypeError):  # a driver without a file descriptor
                    pass

    def publish(self) -> None:
        """Sync, then rename the file from its temporary name (``create_at``) to ``path``."""
        self.sync()
        with self._lock:
            if self._write_path != self.path:
                crashpoint("hdf5.before_rename")
                os.replace(self._write_path, self.path)
                fsync_dir(self.path.parent)
                self._write_path = self.path

    @_guard_disk
    def record_interrupted(self, row: Mapping[str, Any]) -> None:
        """Note an attempt a crash or a stop cut short (it is repeated, at most once, on resume)."""
        self._enqueue("interrupted", dict(row))

    @_guard_disk
    def record_human(self, act: Mapping[str, Any]) -> None:
        """Append a person's act (approve, reject, edit, add, annotate, expire) to ``/human_acts``:
        who, when, what, on which experiment, the values before and after, the comment, and
        whether it was applied or refused (and why). The group is made with the first act."""
        with self._lock:
            if self._human is None:
                group = self._f.require_group("human_acts")
                group.attrs["NX_class"] = "NXcollection"
                group.attrs["description"] = "people's acts on the campaign, in the order the campaign ledgered them"
                self._human = _Table(group, {name: (STR, None) for name in HUMAN_COLUMNS})
            self._human.append(_human_row(act))
            self._f.flush()

    @_guard_disk
    def record_work_order(self, order: Mapping[str, Any]) -> None:
        """Append a manual station's work order to ``/work_orders`` (the group is made with the first one)."""
        with self._lock:
            if self._work_orders is None:
                group = self._f.require_group("work_orders")
                group.attrs["NX_class"] = "NXcollection"
                group.attrs["description"] = "work orders issued to people by manual stations, in issue order; their results are report acts in /human_acts"
                self._work_orders = _Table(group, WORK_ORDER_COLUMNS)
            self._work_orders.append({k: (_json(order.get(k)) if k in ("params", "units", "outputs") else order.get(k)) for k in WORK_ORDER_COLUMNS})
            self._f.flush()

    @_guard_disk
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
        row = {
            "t": t,
            "planner": planner,
            "generator": generator,
            "candidates": _json(list(candidates)),
            "n_observations": n_observations,
            "state_hash": state_hash,
            "state": _json(state),
            "latency": latency,
            "fallback": int(generator == "fallback" or (state or {}).get("last_decision", {}).get("generator") == "fallback"),
            "decision": _json((state or {}).get("last_decision", {})),
        }
        with self._qlock:
            index = self._n_suggestions
            self._n_suggestions += 1
            self._pending["suggestions"].append(row)
            self._arm_timer()
        self._written()
        return index

    @_guard_disk
    def record_experiment(self, row: Mapping[str, Any]) -> None:
        """Append one finished experiment (parameters, outcomes, status, timing)."""
        self._enqueue("experiments", dict(row))

    @_guard_disk
    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        """A bluesky document callback: subscribe it to each RunEngine (``RE.subscribe(writer)``).

        Documents are kept as they come (bluesky never changes a document once emitted) and
        encoded when written, so the RunEngine's thread only files them."""
        with self._qlock:
            self._pending["documents"].append((name, doc))
            self._arm_timer()
            self._collector(name, doc)
            if name == "stop":
                self._pending["runs"].extend(self._collector.take_finished())
        if name == "stop":
            self._written()

    def _write_run(self, run: dict[str, Any], stop: Mapping[str, Any]) -> None:
        start = run["start"]
        g = self._f["runs"].create_group(start["uid"])
        g.attrs["NX_class"] = "NXcollection"  # NeXus: an NXentry belongs at the root (/entry), not in a collection
        g.attrs["start"] = _json(start)
        g.attrs["stop"] = _json(stop)
        g.attrs["exit_status"] = stop.get("exit_status", "")
        g.attrs["experiment_uid"] = start.get("experiment_uid", "")
        for desc_uid, desc in run["descriptors"].items():
            sg = g.require_group(desc.get("name", "primary"))
            sg.attrs["NX_class"] = "NXdata"
            sg.attrs["descriptor"] = _json(desc)
            events = run["events"].get(desc_uid, [])
            numeric_keys = []
            for key, info in desc["data_keys"].items():
                values = [ev["data"].get(key) for ev in events]
                numeric = None
                if info.get("dtype") in ("number", "integer") and not info.get("external"):
                    try:
                        numeric = np.array([np.nan if v is None else v for v in values], dtype=float)
                    except (TypeError, ValueError):  # a device sent text where it promised a number: keep it verbatim
                        numeric = None
                if numeric is not None:
                    ds = sg.create_dataset(key, data=numeric)
                    if numeric.ndim == 1:
                        numeric_keys.append(key)
                else:  # text, or a reference to external data (a datum id): kept verbatim
                    ds = sg.create_dataset(key, data=[_json(v) if not isinstance(v, str) else v for v in values], dtype=STR)
                units = info.get("units")
                if units:
                    ds.attrs["units"] = units  # the source of each key is in the stream's ``descriptor``
                if info.get("external"):
                    ds.attrs["external"] = info["external"]
            sg.create_dataset("time", data=np.array([ev["time"] for ev in events], dtype=float)).attrs["units"] = "s"
            hinted = [k for fields in (desc.get("hints") or {}).values() for k in fields.get("fields", [])]
            signal = next((k for k in [*hinted, *numeric_keys] if k in numeric_keys), None)
            if signal is not None:  # what a NeXus viewer plots for this stream: a reading against time
                sg.attrs["signal"] = signal
                sg.attrs["axes"] = ["time"]
        for kind in ("resources", "datums", "stream_resources", "stream_datums"):
            docs = run[kind]
            if docs:
                g.create_dataset(kind, data=[_json(d) for d in docs], dtype=STR)

    @_guard_disk
    def record_prior(self, frame: pd.DataFrame, sources: Sequence[Mapping[str, Any]]) -> None:
        """Store the observations the planner was given before the first suggestion (``/prior``).

        ``frame``: one row per observation (parameter and objective columns in declared units,
        optional ``uid``, ``status``, ``reason``, ``sample_fault``, ``source``); ``sources``:
        where they came from (e.g. ``{"path", "sha256", "rows"}``). Written once.
        """
        with self._lock:
            self._write_pending()
            if "prior" in self._f:
                del self._f["prior"]
            g = self._f.create_group("prior")
            g.attrs["NX_class"] = "NXcollection"
            g.attrs["sources"] = _json(list(sources))
            columns: dict[str, tuple[Any, str | None]] = {
                "uid": (STR, None), "status": (STR, None), "reason": (STR, None), "sample_fault": (np.int32, None), "source": (STR, None),
            }
            columns.update(self._value_columns)
            table = _Table(g, columns)
            for row in frame.to_dict("records"):
                row = dict(row)
                row.setdefault("status", "completed")
                sf = row.get("sample_fault", 0)
                row["sample_fault"] = int(bool(sf)) if not (isinstance(sf, float) and math.isnan(sf)) else 0
                table.append(row)
            self._f.flush()

    @_guard_disk
    def record_run(self, *, executor: str, overrides: Mapping[str, Any]) -> None:
        """How the campaign was run: the executor, and each setting given on the command line (or
        to :func:`labflow.launch.run_recipe`) that changed the recipe's, ``{name: {"recipe", "run"}}``."""
        with self._lock:
            self._f.attrs["executor"] = executor
            self._f.attrs["overrides"] = _json(dict(overrides))
            self._f.flush()

    @_guard_disk
    def set_summary(self, summary: Mapping[str, Any], *, finished: str | None = None) -> None:
        """Store the campaign's end state (counts, best point, stop reason) as root attributes,
        and the Pareto front and hypervolume of its experiments (``/pareto``). ``finished``: when
        it ended (default: now; a rebuild passes the time the ledger recorded)."""
        with self._lock:
            self._write_pending()
            self._f.attrs["summary"] = _json(summary)
            self._f.attrs["finished"] = finished or time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self._write_pareto()
            self._f.flush()

    def _write_pareto(self) -> None:
        exp = {name: ds[()] for name, ds in self._f["experiments"].items()}
        frame = pd.DataFrame(_equal_length({k: ([x.decode() if isinstance(x, bytes) else x for x in v] if v.dtype.kind in "OS" else v)
                                            for k, v in exp.items()}))
        recipe = json.loads(_plain(self._f["recipe"].attrs["resolved"]))
        front = pareto_summary(frame, self.space, self.objectives, recipe)
        if "pareto" in self._f:
            del self._f["pareto"]
        g = self._f.create_group("pareto")
        g.attrs["NX_class"] = "NXcollection"
        g.create_dataset("front", data=[r["uid"] for r in front["front"]], dtype=STR)
        g.create_dataset("hypervolume_trace", data=np.asarray(front["trace"], dtype=float))
        g.attrs["hypervolume"] = np.nan if front["hypervolume"] is None else float(front["hypervolume"])
        g.attrs["reference_point"] = _json(front["reference_point"])
        g.attrs["reference"] = front["reference"]

    def close(self) -> None:
        """Write what is buffered and close the file."""
        with self._lock:
            with self._qlock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if self._f.id.valid:
                try:
                    self._write_pending()
                    self._f.flush()
                finally:
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
    interrupted: pd.DataFrame = field(default_factory=pd.DataFrame)
    prior: pd.DataFrame = field(default_factory=pd.DataFrame)
    human: pd.DataFrame = field(default_factory=pd.DataFrame)  # /human_acts: people's acts (labflow.store.inbox)
    work_orders: pd.DataFrame = field(default_factory=pd.DataFrame)  # /work_orders: manual stations' orders

    @property
    def completed(self) -> pd.DataFrame:
        return self.experiments[self.experiments["status"] == "completed"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.experiments[self.experiments["status"].isin(["failed", "invalid"])]

    @property
    def fidelity_parameter(self) -> str | None:
        """The fidelity column of a multi-fidelity campaign (None otherwise)."""
        return _fidelity_parameter(self.recipe)

    @property
    def end_summary(self) -> dict[str, Any]:
        """The end state written when the campaign ended or stopped (empty while it runs or after a crash)."""
        return _json_attr(self.attrs.get("summary"), {})

    @property
    def executor(self) -> str:
        """The executor the campaign ran on (as run, not as the recipe says)."""
        return str(self.attrs.get("executor") or self.end_summary.get("executor") or self.recipe.get("execution", {}).get("executor", ""))

    @property
    def overrides(self) -> dict[str, dict[str, Any]]:
        """Settings that changed the recipe's for this run: ``{name: {"recipe": as written, "run": as run}}``."""
        return _json_attr(self.attrs.get("overrides"), {})

    @property
    def state(self) -> str:
        """``finished``, ``stopped early: <why>`` or ``interrupted`` (no end recorded: running, or killed)."""
        end = self.end_summary
        if not end:
            return "interrupted (no end recorded: still running, or killed; `labflow resume` continues it)"
        if end.get("stop_reason"):
            return f"stopped early: {end['stop_reason']}"
        return "finished"

    @property
    def target_fidelity(self) -> str | None:
        return _target_fidelity(self.recipe)

    def pareto(self) -> dict[str, Any]:
        """The Pareto front of the completed experiments (at the target fidelity), its hypervolume,
        the reference point and the hypervolume after each experiment; see :func:`pareto_summary`."""
        return pareto_summary(self.experiments, self.space, self.objectives, self.recipe)

    def cost(self) -> dict[str, float] | None:
        """Total cost per fidelity (and ``total``), in the recipe's cost unit; None without costs."""
        if "cost" not in self.experiments or not np.isfinite(self.experiments["cost"].to_numpy(dtype=float)).any():
            return None
        exp = self.experiments
        fp = self.fidelity_parameter
        if fp is not None and fp in exp:
            keys = exp[fp].astype(str)
        else:
            names = [f.get("name") for f in self.recipe.get("fidelities", [])]
            keys = pd.Series([names[0] if len(names) == 1 else "all"] * len(exp), index=exp.index)
        costs = exp["cost"].astype(float)
        out = {str(k): float(v) for k, v in costs.groupby(keys).sum().items()}
        out["total"] = float(np.nansum(costs))
        return out

    def best(self) -> dict[str, Any] | None:
        """The best completed experiment by the first objective (at the target fidelity), as {name: {"value", "unit"}}."""
        done = self.completed
        fp, target = self.fidelity_parameter, self.target_fidelity
        if fp is not None and fp in done and target is not None:
            done = done[done[fp].astype(str) == target]
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
            "executor": self.executor,
            "overrides": self.overrides,
            "state": self.state,
            "interrupted": int(len(self.interrupted)),
            "repeated": int(self.experiments["repeated"].astype(int).clip(lower=0).sum()) if "repeated" in self.experiments else 0,
            "best": self.best(),
            "recipe": self.recipe,
            "versions": self.versions,
            "human_acts": self.human.to_dict("records"),
            "work_orders": self.work_orders.to_dict("records"),
            **self._materials_summary(),
        }

    def _materials_summary(self) -> dict[str, Any]:
        """Pareto front, hypervolume, faults, fallbacks, cost per fidelity, prior observations."""
        par = self.pareto()
        exp, sug = self.experiments, self.suggestions
        return {
            "pareto_front": par["front"],
            "hypervolume": par["hypervolume"],
            "reference_point": par["reference_point"],
            "sample_faults": int(exp["sample_fault"].astype(int).clip(lower=0).sum()) if "sample_fault" in exp else 0,
            "fallbacks": int(sug["fallback"].astype(int).clip(lower=0).sum()) if "fallback" in sug else
            int((sug["generator"] == "fallback").sum()) if "generator" in sug else 0,
            "cost": self.cost(),
            "prior_observations": int(len(self.prior)),
        }


def _json_attr(v: Any, default: Any) -> Any:
    return default if v is None or v == "" else json.loads(v)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _equal_length(columns: dict[str, Any]) -> dict[str, Any]:
    """A crash half-way through a row leaves some columns one longer: keep the complete rows."""
    if not columns:
        return columns
    n = min(len(v) for v in columns.values())
    return {k: v[:n] for k, v in columns.items()}


def read_campaign(path: str | Path) -> CampaignRecord:
    """Read a provenance file (also one still being written, or left by a crash).

    Raises :class:`~labflow.errors.ProvenanceError` for a file that is missing, not HDF5, not
    labflow's, or damaged (flipped bits, a group deleted): the message names the file and what
    could not be read, the hint how to rebuild it from the campaign's ledger where there is one.
    """
    p = Path(path)
    try:
        return _read_campaign_file(p)
    except ProvenanceError:
        raise
    except (KeyError, OSError, ValueError, TypeError, RuntimeError) as exc:  # h5py's errors for a damaged file
        raise ProvenanceError(f"{p} is damaged: {type(exc).__name__}: {exc}", hint=_rebuild_hint(p)) from exc


def _rebuild_hint(p: Path) -> str:
    if p.with_suffix(".labflow").is_dir():
        return f"its campaign ledger is intact beside it: `labflow rebuild {p.with_suffix('.labflow')}` rewrites the file from it"
    return "restore the file from a copy (no campaign ledger .labflow is beside it to rebuild it from)"


def _read_campaign_file(p: Path) -> CampaignRecord:
    if not p.is_file():
        raise ProvenanceError(f"no provenance file at {p}")
    try:
        f = h5py.File(p, "r", locking=False)
    except OSError as exc:
        raise ProvenanceError(f"{p} is not a readable HDF5 file: {exc}", hint=_rebuild_hint(p)) from exc
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
        experiments = pd.DataFrame(_equal_length(exp))
        sug = {}
        for name, ds in f["suggestions"].items():
            data = ds[()]
            if h5py.check_string_dtype(ds.dtype):
                data = [x.decode() if isinstance(x, bytes) else x for x in data]
            sug[name] = data
        prior = {}
        if "prior" in f:
            for name, ds in f["prior"].items():
                data = ds[()]
                if h5py.check_string_dtype(ds.dtype):
                    data = [x.decode() if isinstance(x, bytes) else x for x in data]
                prior[name] = data
        intr = {}
        if "interrupted" in f:
            for name, ds in f["interrupted"].items():
                data = ds[()]
                if h5py.check_string_dtype(ds.dtype):
                    data = [x.decode() if isinstance(x, bytes) else x for x in data]
                intr[name] = data
        human = {}
        if "human_acts" in f:
            for name, ds in f["human_acts"].items():
                human[name] = [x.decode() if isinstance(x, bytes) else x for x in ds[()]]
        orders = {}
        if "work_orders" in f:
            for name, ds in f["work_orders"].items():
                data = ds[()]
                orders[name] = [x.decode() if isinstance(x, bytes) else x for x in data] if h5py.check_string_dtype(ds.dtype) else data
        return CampaignRecord(
            path=p,
            work_orders=pd.DataFrame(_equal_length(orders), columns=list(WORK_ORDER_COLUMNS)),
            human=pd.DataFrame(_equal_length(human), columns=list(HUMAN_COLUMNS)) if human else pd.DataFrame(columns=list(HUMAN_COLUMNS)),
            interrupted=pd.DataFrame(_equal_length(intr)),
            prior=pd.DataFrame(_equal_length(prior)),
            attrs=attrs,
            recipe_text=_plain(f["recipe"][()]),
            recipe=json.loads(_plain(f["recipe"].attrs["resolved"])),
            lab=json.loads(_plain(f["lab"][()])),
            versions={k: _plain(v) for k, v in f["versions"].attrs.items() if k != "NX_class"},
            space=space,
            objectives=objectives,
            experiments=experiments,
            suggestions=pd.DataFrame(_equal_length(sug)),
            units=units,
        )


def append_human_acts(path: str | Path, acts: Sequence[Mapping[str, Any]]) -> None:
    """Append people's acts to ``/human_acts`` of a closed provenance file (an ended campaign's)."""
    with h5py.File(path, "r+", locking=False) as f:
        group = f.require_group("human_acts")
        group.attrs["NX_class"] = "NXcollection"
        table = _Table(group, {name: (STR, None) for name in HUMAN_COLUMNS})
        for act in acts:
            table.append(_human_row(act))


def _human_row(act: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_json(act.get(k, {})) if k in ("before", "after") else act.get(k, "")) for k in HUMAN_COLUMNS}


# -- several objectives, fidelities ----------------------------------------------------------
def _cost_unit(recipe: Mapping[str, Any]) -> str:
    """The unit of the recipe's fidelity costs ("" for plain numbers)."""
    import re

    for f in recipe.get("fidelities", []) or []:
        cost = f.get("cost")
        if isinstance(cost, str):
            m = re.match(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*(.*)$", cost)
            if m and m.group(1).strip():
                return m.group(1).strip()
    return ""


def _fidelity_parameter(recipe: Mapping[str, Any]) -> str | None:
    fids = recipe.get("fidelities", []) or []
    if len(fids) < 2:
        return None
    return str((recipe.get("planner", {}).get("options") or {}).get("fidelity_parameter", "fidelity"))


def _target_fidelity(recipe: Mapping[str, Any]) -> str | None:
    if _fidelity_parameter(recipe) is None:
        return None
    target = (recipe.get("planner", {}).get("options") or {}).get("target")
    if target:
        return str(target)
    from labflow.units import convert

    fids = recipe["fidelities"]
    unit = _cost_unit(recipe)

    def cost(f: Mapping[str, Any]) -> float:
        c = f.get("cost")
        return convert(c, unit) if isinstance(c, str) and unit else float(convert(c, ""))

    return str(max(fids, key=cost)["name"])


def pareto_summary(experiments: pd.DataFrame, space: Space, objectives: Sequence[Objective], recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The Pareto front of a campaign's completed experiments and its hypervolume.

    Only experiments at the target fidelity count in a multi-fidelity campaign. Returns
    ``front`` (rows: ``uid``, parameters and objectives in declared units; the best row(s) for
    one objective), ``hypervolume`` (None for one objective), ``reference_point`` (objective ->
    value; the thresholds when every objective has one, else inferred from the front: 10 % of
    its range beyond its worst values), ``reference`` ("thresholds" / "inferred" / "") and
    ``trace`` (the hypervolume after each experiment in table order, against that reference
    point; empty for one objective).
    """
    from labflow.pareto import hypervolume, hypervolume_trace, pareto_mask, reference_point

    out: dict[str, Any] = {"front": [], "hypervolume": None, "reference_point": None, "reference": "", "trace": []}
    if experiments.empty or "status" not in experiments:
        return out
    names = [o.name for o in objectives]
    exp = experiments
    ok = np.array(exp["status"] == "completed", dtype=bool)
    for n in names:
        ok &= np.isfinite(exp[n].to_numpy(dtype=float)) if n in exp else False
    fp, target = _fidelity_parameter(recipe), _target_fidelity(recipe)
    if fp is not None and fp in exp and target is not None:
        ok &= (exp[fp].astype(str) == target).to_numpy()
    done = exp[ok]
    signs = np.array([o.sign for o in objectives])
    cols = [c for c in ["uid", *space.names, *names] if c in exp]
    if done.empty:
        return out
    Y = done[names].to_numpy(dtype=float) * signs
    if len(objectives) == 1:
        best = Y[:, 0].max()
        rows = done[Y[:, 0] == best]
    else:
        rows = done[pareto_mask(Y)]
    front = rows[cols].sort_values(names[0], ascending=objectives[0].direction == "minimize", kind="stable")
    out["front"] = [{k: _plain(v) for k, v in r.items()} for r in front.to_dict("records")]
    if len(objectives) < 2:
        return out
    ref = reference_point(objectives, Y)
    out["reference"] = "thresholds" if all(o.threshold is not None for o in objectives) else "inferred"
    out["reference_point"] = {o.name: float(o.sign * r) for o, r in zip(objectives, ref)}
    out["hypervolume"] = hypervolume(Y, ref)
    Y_all = np.column_stack([exp[n].to_numpy(dtype=float) * o.sign for n, o in zip(names, objectives)])
    out["trace"] = [float(v) for v in hypervolume_trace(Y_all, ok, ref)]
    return out
