"""The NeXus view of a campaign file: what h5web, silx and NeXus readers plot on open.

The root (``NXroot``) says ``default="entry"``; ``/entry`` is an ``NXentry`` whose ``default``
names an ``NXdata`` group, and every ``NXdata`` names its ``signal`` and ``axes``, so a viewer
that follows NeXus defaults draws the campaign's progress at once::

    /entry                      NXentry: title (campaign name), start_time, default
      best_<objective>/         NXdata, one per objective: signal best_<objective> (the best
                                completed value so far, direction-aware, at the target fidelity)
                                against axes experiment_number; auxiliary_signals <objective>
                                (each experiment's measured value, NaN when it did not complete)
      hypervolume/              NXdata (several objectives only): the hypervolume of the completed
                                experiments so far against experiment_number
      experiments -> /experiments   hard links to the campaign's tables (NXcollection)
      suggestions -> /suggestions

``default`` is ``best_<first objective>`` for one objective and ``hypervolume`` for several.
Every field carries ``units`` (``"1"`` for a count or a dimensionless value, as UDUNITS writes it).
The view is appended to with the experiments table (the same batches), so it is as current as
``/experiments``; nothing else in the file moves, so the readers of ``/experiments``, ``/runs``
and ``/documents`` are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from labflow.objectives import Objective

__all__ = ["NexusView", "nexus_unit"]

STR = h5py.string_dtype()


def nexus_unit(unit: str | None) -> str:
    """The ``units`` attribute of a NeXus field: the unit, or ``"1"`` when dimensionless."""
    return unit if unit and unit != "dimensionless" else "1"


def _growable(group: h5py.Group, name: str, dtype: Any, units: str, **attrs: Any) -> h5py.Dataset:
    ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
    ds.attrs["units"] = units
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _append(ds: h5py.Dataset, values: Sequence[Any]) -> None:
    n = ds.shape[0]
    ds.resize((n + len(values),))
    ds[n:] = np.asarray(values, dtype=ds.dtype)


class NexusView:
    """Creates ``/entry`` in ``f`` and keeps its NXdata groups in step with ``/experiments``.

    ``fidelity``: ``(parameter, target)`` of a multi-fidelity campaign, so that only experiments
    at the target fidelity count towards the best so far (None otherwise).
    """

    def __init__(self, f: h5py.File, *, campaign: str, created: str, objectives: Sequence[Objective],
                 fidelity: tuple[str, str] | None = None) -> None:
        self.objectives = list(objectives)
        self.fidelity = fidelity
        self._best: dict[str, float] = {o.name: math.nan for o in self.objectives}
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("title", data=f"labflow campaign {campaign}", dtype=STR)
        entry.create_dataset("start_time", data=created, dtype=STR)
        for table in ("experiments", "suggestions"):
            if table in f:
                entry[table] = f[table]  # a hard link: the same datasets, also under the entry
        self._data: dict[str, tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]] = {}
        for o in self.objectives:
            g = entry.create_group(f"best_{o.name}")
            g.attrs.update({"NX_class": "NXdata", "signal": f"best_{o.name}", "axes": ["experiment_number"],
                            "experiment_number_indices": [0], "auxiliary_signals": [o.name],
                            "title": f"{o.name}: best so far ({o.direction}) and each experiment's value"})
            unit = nexus_unit(o.unit)
            self._data[o.name] = (
                _growable(g, "experiment_number", np.int64, "1", long_name="experiment number (in completion order)"),
                _growable(g, f"best_{o.name}", np.float64, unit, long_name=f"best {o.name} so far ({o.direction})"),
                _growable(g, o.name, np.float64, unit, long_name=f"{o.name} of each experiment (NaN: did not complete)"),
            )
        self._hypervolume: tuple[h5py.Dataset, h5py.Dataset] | None = None
        if len(self.objectives) > 1:
            g = entry.create_group("hypervolume")
            g.attrs.update({"NX_class": "NXdata", "signal": "hypervolume", "axes": ["experiment_number"],
                            "experiment_number_indices": [0], "title": "hypervolume of the completed experiments so far"})
            self._hypervolume = (
                _growable(g, "experiment_number", np.int64, "1", long_name="experiment number (in completion order)"),
                _growable(g, "hypervolume", np.float64, "1", long_name="hypervolume (in the objectives' units multiplied)"),
            )
            entry.attrs["default"] = "hypervolume"
        else:
            entry.attrs["default"] = f"best_{self.objectives[0].name}"
        self._n = 0

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add the experiments ``rows`` (as written to ``/experiments``, in completion order)."""
        if not rows:
            return
        numbers = list(range(self._n + 1, self._n + len(rows) + 1))
        self._n += len(rows)
        for o in self.objectives:
            best_col, values = [], []
            for row in rows:
                value = _number(row.get(o.name)) if row.get("status") == "completed" else math.nan
                values.append(value)
                if math.isfinite(value) and self._counts(row):
                    b = self._best[o.name]
                    if math.isnan(b) or (value > b if o.direction == "maximize" else value < b):
                        self._best[o.name] = value
                best_col.append(self._best[o.name])
            axis, best, measured = self._data[o.name]
            _append(axis, numbers)
            _append(best, best_col)
            _append(measured, values)
        if self._hypervolume is not None:
            axis, hv = self._hypervolume
            _append(axis, numbers)
            _append(hv, [_number(row.get("hypervolume")) for row in rows])

    def _counts(self, row: Mapping[str, Any]) -> bool:
        if self.fidelity is None:
            return True
        parameter, target = self.fidelity
        return str(row.get(parameter)) == str(target)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
