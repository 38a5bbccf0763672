"""The ``/experiments`` table, declared once: each column's name, dtype, unit and meaning.

Every place that writes or reads a row uses this module: the campaign loop builds rows with
:func:`experiment_row_values` (checked against the declaration), the journal ledgers them, the
HDF5 writer makes its datasets from :func:`experiment_columns`, and ``inspect``, ``export`` and
the report order and read their columns from :data:`EXPERIMENT_COLUMNS`. Besides these fixed
columns a row has one column per parameter (the recipe's unit) and one per objective (the
objective's unit), between the identity and the bookkeeping columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

__all__ = [
    "BOOKKEEPING",
    "Column",
    "EXPERIMENT_COLUMNS",
    "IDENTITY",
    "TEXT_COLUMNS",
    "column",
    "experiment_columns",
    "experiment_row_values",
]

STR = h5py.string_dtype("utf-8")
_DTYPES: dict[str, Any] = {"str": STR, "int32": np.int32, "int64": np.int64, "float64": np.float64}


@dataclass(frozen=True)
class Column:
    """One fixed column of ``/experiments``. ``unit``: None for none; ``"cost"`` is filled in from
    the recipe (the fidelities' cost unit)."""

    name: str
    dtype: str  # "str", "int32", "int64" or "float64"
    unit: str | None
    description: str

    @property
    def h5_dtype(self) -> Any:
        return _DTYPES[self.dtype]


EXPERIMENT_COLUMNS: tuple[Column, ...] = (
    Column("uid", "str", None, "the candidate's uid (the bluesky runs' experiment_uid)"),
    Column("station", "str", None, "the station that ran it"),
    Column("status", "str", None, "completed, failed or invalid (abandoned experiments failed)"),
    Column("reason", "str", None, "why it did not complete (the last attempt's reason)"),
    Column("attempts", "int32", None, "attempts made (counting those before a resume)"),
    Column("run_uids", "str", None, "the bluesky run of each attempt, comma-separated"),
    Column("suggestion", "int64", None, "row of /suggestions that proposed it (-1: none recorded)"),
    Column("generator", "str", None, "what produced the candidate (qLogNEI, sobol, fallback...)"),
    Column("t_suggested", "float64", "s", "when it was proposed, on the executor's clock"),
    Column("t_started", "float64", "s", "when its first attempt started"),
    Column("t_finished", "float64", "s", "when its last attempt finished"),
    Column("repeated", "int32", None, "1 when it repeats an experiment a crash or a stop interrupted"),
    Column("abandoned", "int32", None, "1 when the candidate failed twice for the same reason: never proposed again"),
    Column("raw", "str", None, "the readings as the instrument gave them (strict JSON)"),
    Column("sample_fault", "int32", None, "1 when the sample failed, not the instrument"),
    Column("cost", "float64", "cost", "the experiment's fidelity cost (NaN without fidelities)"),
    Column("hypervolume", "float64", None, "several objectives: of the completed experiments so far"),
)

_BY_NAME = {c.name: c for c in EXPERIMENT_COLUMNS}
IDENTITY: tuple[str, ...] = ("uid", "station", "status", "reason", "attempts")
"""Columns shown before the parameters and objectives (export, report, inspect)."""
BOOKKEEPING: tuple[str, ...] = ("generator", "suggestion", "run_uids", "t_suggested", "t_started", "t_finished")
"""Columns shown after them."""
TEXT_COLUMNS: tuple[str, ...] = tuple(c.name for c in EXPERIMENT_COLUMNS if c.dtype == "str" and c.name != "raw")
"""Text columns a reader keeps as strings (an empty reason is "", not NaN)."""
_FILLED_BY_LOOP = {"cost", "hypervolume"}  # the loop's accounting adds them after the row is built


def column(name: str) -> Column:
    """The declaration of fixed column ``name`` (:class:`KeyError` when it is not one)."""
    return _BY_NAME[name]


def experiment_columns(parameters: Iterable[tuple[str, str, str | None]], objectives: Iterable[tuple[str, str | None]],
                       cost_unit: str = "") -> dict[str, tuple[Any, str | None]]:
    """Every column of a campaign's ``/experiments`` as ``name -> (HDF5 dtype, unit)``, in table order.

    ``parameters``: (name, dtype, unit) per parameter (dtype "str" for a categorical, unit "");
    ``objectives``: (name, unit) per objective.
    """
    out: dict[str, tuple[Any, str | None]] = {}
    for c in EXPERIMENT_COLUMNS:
        out[c.name] = (c.h5_dtype, cost_unit if c.unit == "cost" else c.unit)
    for name, dtype, unit in parameters:
        out[name] = (_DTYPES[dtype], unit)
    for name, unit in objectives:
        out[name] = (np.float64, unit)
    return out


def experiment_row_values(values: Mapping[str, Any], params: Mapping[str, Any], outcomes: Mapping[str, Any],
                          objectives: Sequence[str]) -> dict[str, Any]:
    """A row of ``/experiments``: the fixed columns from ``values`` (every declared one but ``cost``
    and ``hypervolume``, and nothing else), then the parameters, then the objectives.

    Raises :class:`ValueError` naming what is missing or undeclared: a new column is declared in
    :data:`EXPERIMENT_COLUMNS` first.
    """
    missing = [c.name for c in EXPERIMENT_COLUMNS if c.name not in values and c.name not in _FILLED_BY_LOOP]
    extra = sorted(set(values) - set(_BY_NAME))
    if missing or extra:
        raise ValueError(f"an /experiments row must give the declared columns: missing {missing}, undeclared {extra}")
    row = {c.name: values[c.name] for c in EXPERIMENT_COLUMNS if c.name in values}
    row.update(params)
    row.update({name: outcomes.get(name) for name in objectives})
    return row
