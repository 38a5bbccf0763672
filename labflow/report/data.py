"""What the report shows, computed from a campaign record: series, counts and facts, no drawing.

Everything here reads a :class:`~labflow.store.provenance.CampaignRecord` (and, for the
instruments, the file's ``/runs``) and copes with files that lack optional parts: a file
still being written (no summary), a crashed campaign, a file without run groups.

Conventions
-----------
* **Experiment number** ``n`` is the 1-based row of ``/experiments``: the order in which
  experiments *finished* (what the planner had learned from when it asked next).
* **Best so far** after ``n`` experiments is the best completed value among the first ``n``
  rows, in the objective's unit; NaN until the first completed one.
* **Initial design**: for model-based planners (``bayesian``, ``multifidelity``), the rows
  whose generator is a space-filling one (``sobol``, ``lhs``, ``random``, ``rank``, ``kcenter``, ``initial``).
  For baseline planners every row is "initial" and nothing is marked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from labflow.objectives import Objective
from labflow.pareto import hypervolume_trace, reference_point
from labflow.space import Categorical
from labflow.store.provenance import CampaignRecord, read_campaign

__all__ = ["CampaignView", "INITIAL_GENERATORS", "MODEL_PLANNERS", "time_scale"]

MODEL_PLANNERS = ("bayesian", "multifidelity")
INITIAL_GENERATORS = ("sobol", "lhs", "random", "rank", "kcenter", "initial")


def time_scale(seconds: float) -> tuple[float, str]:
    """A divisor and unit label that keep ``seconds`` readable: (3600, "h"), (60, "min") or (1, "s")."""
    if not math.isfinite(seconds):
        return 1.0, "s"
    if seconds >= 3 * 3600:
        return 3600.0, "h"
    if seconds >= 3 * 60:
        return 60.0, "min"
    return 1.0, "s"


@dataclass
class CampaignView:
    """A campaign record with the derived series the figures and the HTML need."""

    record: CampaignRecord
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    """Device name -> {reading key: units}, from the recorded runs' descriptors."""

    @classmethod
    def open(cls, path: str | Path) -> CampaignView:
        rec = read_campaign(path)
        return cls(rec, devices=_devices(Path(path)))

    # -- basic facts ----------------------------------------------------------------
    @property
    def experiments(self) -> pd.DataFrame:
        return self.record.experiments

    @property
    def n(self) -> int:
        return int(len(self.record.experiments))

    @property
    def objectives(self) -> list[Objective]:
        return list(self.record.objectives)

    @property
    def planner(self) -> str:
        return str(self.record.attrs.get("planner") or self.record.recipe.get("planner", {}).get("kind", ""))

    @property
    def summary_attrs(self) -> dict[str, Any]:
        raw = self.record.attrs.get("summary")
        try:
            return json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            return {}

    def unit(self, name: str) -> str:
        return str(self.record.units.get(name, "") or "")

    def label(self, name: str) -> str:
        u = self.unit(name)
        return f"{name} [{u}]" if u else name

    def status(self) -> np.ndarray:
        return self.experiments["status"].to_numpy(dtype=str) if self.n else np.array([], dtype=str)

    def completed_mask(self) -> np.ndarray:
        return self.status() == "completed"

    def failed_mask(self) -> np.ndarray:
        return ~self.completed_mask()

    def numbers(self) -> np.ndarray:
        """Experiment numbers 1..n (completion order)."""
        return np.arange(1, self.n + 1)

    def values(self, objective: str) -> np.ndarray:
        """Measured values in the objective's unit; NaN where the experiment did not complete."""
        v = pd.to_numeric(self.experiments[objective], errors="coerce").to_numpy(dtype=float)
        return np.where(self.completed_mask(), v, np.nan)

    def best_so_far(self, objective: Objective) -> np.ndarray:
        """Best completed value among the first n experiments, for n = 1..N (NaN before the first)."""
        return best_so_far(self.values(objective.name), objective.sign)

    def initial_mask(self) -> np.ndarray:
        """True for rows of the initial design (model-based planners only; see the module docstring)."""
        if self.planner not in MODEL_PLANNERS or "generator" not in self.experiments:
            return np.zeros(self.n, dtype=bool)
        gen = self.experiments["generator"].astype(str).str.lower().to_numpy()
        return np.isin(gen, INITIAL_GENERATORS)

    def n_initial(self) -> int:
        """Experiments of the initial design that came first (the shaded span in the figures)."""
        mask = self.initial_mask()
        if not mask.any():
            return 0
        first_model = np.flatnonzero(~mask)
        return int(first_model[0]) if len(first_model) else int(mask.sum())

    # -- time -------------------------------------------------------------------------
    def t_finished(self) -> np.ndarray:
        """Seconds from the campaign's start (simulated time under the virtual executor)."""
        if "t_finished" not in self.experiments:
            return np.full(self.n, np.nan)
        return self.experiments["t_finished"].to_numpy(dtype=float)

    def durations(self) -> np.ndarray:
        if "t_started" not in self.experiments:
            return np.full(self.n, np.nan)
        return self.t_finished() - self.experiments["t_started"].to_numpy(dtype=float)

    def makespan(self) -> float:
        s = self.summary_attrs.get("makespan_s")
        if isinstance(s, (int, float)) and math.isfinite(s):
            return float(s)
        t = self.t_finished()
        return float(np.nanmax(t)) if np.isfinite(t).any() else math.nan

    def executor(self) -> str:
        return self.record.executor

    # -- parameters -------------------------------------------------------------------
    def parameter_values(self, name: str) -> np.ndarray:
        """Numbers to plot for a parameter: its values, or a categorical's choice index."""
        p = self.record.space[name]
        col = self.experiments[name]
        if isinstance(p, Categorical):
            index = {c: i for i, c in enumerate(p.choices)}
            return np.array([index.get(str(v), np.nan) for v in col], dtype=float)
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)

    def is_log(self, name: str) -> bool:
        return bool(getattr(self.record.space[name], "log", False))

    # -- several objectives ----------------------------------------------------------
    def oriented(self) -> np.ndarray:
        """Completed outcomes as an ``n_completed x m`` array, larger is better."""
        Y = np.column_stack([o.sign * self.values(o.name) for o in self.objectives])
        return Y[self.completed_mask()]

    def reference_point(self) -> np.ndarray | None:
        """The hypervolume reference point (oriented): each objective's threshold, else inferred
        once from all completed outcomes (so the curve over time is comparable with itself)."""
        Y = self.oriented()
        if not len(Y):
            return None
        return reference_point(self.objectives, Y)

    def hypervolume_trace(self) -> np.ndarray:
        """Hypervolume of the completed outcomes among the first n experiments, n = 1..N."""
        ref = self.reference_point()
        if ref is None:
            return np.zeros(self.n)
        Y_all = np.column_stack([o.sign * self.values(o.name) for o in self.objectives])
        return hypervolume_trace(Y_all, self.completed_mask(), ref)

    # -- failures ---------------------------------------------------------------------
    def failures(self) -> pd.DataFrame:
        """Failed or invalid experiments: number, uid, station, status, attempts, reason."""
        df = self.experiments.assign(n=self.numbers())
        cols = [c for c in ("n", "uid", "station", "status", "attempts", "reason") if c in df]
        return df.loc[self.failed_mask(), cols].reset_index(drop=True)

    def failure_reasons(self) -> pd.Series:
        """Count of failures by reason (the reason's first line, station prefix removed)."""
        f = self.failures()
        if f.empty:
            return pd.Series(dtype=int)
        return f["reason"].map(short_reason).value_counts()

    def stations(self) -> list[str]:
        if "station" not in self.experiments:
            return []
        return sorted({str(s) for s in self.experiments["station"] if str(s)})


def best_so_far(values: np.ndarray, sign: float) -> np.ndarray:
    """Running best of ``values`` (NaN = no result) where ``sign`` = +1 maximizes, -1 minimizes."""
    v = np.where(np.isfinite(values), sign * np.asarray(values, dtype=float), -np.inf)
    run = np.maximum.accumulate(v) if len(v) else v
    return np.where(np.isfinite(run), sign * run, np.nan)


def short_reason(reason: Any) -> str:
    """'station2: DeviceError: simulated instrument fault (p=0.1)' -> 'DeviceError: simulated instrument fault (p=0.1)'."""
    text = str(reason or "unknown").strip().splitlines()[0] if str(reason or "").strip() else "unknown"
    head, sep, rest = text.partition(": ")
    if sep and head.replace("_", "").replace("-", "").isalnum() and " " not in head and rest:
        text = rest
    return text if len(text) <= 90 else text[:87] + "..."


def _devices(path: Path) -> dict[str, dict[str, str]]:
    """Device name -> {reading key: units}, read from the runs' descriptors (empty if there are none)."""
    out: dict[str, dict[str, str]] = {}
    try:
        with h5py.File(path, "r", locking=False) as f:
            runs = f.get("runs")
            if runs is None:
                return out
            for k, run_uid in enumerate(runs):
                if k >= 500:  # every station has shown up long before this
                    break
                g = runs[run_uid]
                for stream in g.values():
                    if not isinstance(stream, h5py.Group) or "descriptor" not in stream.attrs:
                        continue
                    desc = json.loads(stream.attrs["descriptor"])
                    keys = desc.get("data_keys", {})
                    for device, names in desc.get("object_keys", {}).items():
                        out.setdefault(device, {}).update({k: str(keys.get(k, {}).get("units", "") or "") for k in names})
    except (OSError, ValueError, KeyError):
        return {}
    return out
