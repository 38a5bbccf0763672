"""Real experimental data as a lab: dataset descriptions and the loader.

A *dataset description* is a small YAML file that says how to read a CSV of experiments:
which columns are inputs (and the labflow parameter name, unit and bounds to give them),
which column is the objective (name, unit, direction), how to merge replicates, and
optional constraints the inputs obey (compositions that sum to a total). Five descriptions
ship with labflow (``labflow/sim/datasets/*.yaml``) for the pools of Liang et al. (2021);
a lab benchmarks on its own data by writing one more::

    name: my_films
    file: films.csv               # found next to this YAML, in data_dir, or in $LABFLOW_DATA
    inputs:
      - {column: "Anneal T (C)", name: anneal_temperature, unit: degC}
      - {column: "Spin speed", name: spin_speed, unit: rpm, type: integer}
    objective: {column: "PCE (%)", name: pce, unit: percent, direction: maximize}

Theory of operation
-------------------
1. The CSV is read with the description's ``encoding`` (``utf-8-sig`` by default, which
   strips a byte-order mark when there is one); CRLF line endings are handled by the parser.
2. Every input and the objective column must be present; the error names the file, the
   column and the columns that were found.
3. **Replicates** are merged by grouping rows on the *exact* input vector (as parsed) and
   taking, by default, the mean of the *distinct* objective values in each group
   (``replicates: mean_distinct``, what Liang et al. do: ``groupby(features).agg(lambda x:
   x.unique().mean())``). ``mean`` averages every row; ``error`` refuses duplicates. Groups
   come out sorted by input vector (pandas' ``groupby`` default, as in Liang's code), and the
   pool index is the row number of the aggregated frame, ``0 .. N-1``.
4. Bounds default to the data's minimum and maximum; declared bounds must contain the data.
   ``levels`` declares a grid (every value must be one of them).
5. Constraints (``type: sum``) are checked on every row of the aggregated pool.

The pool is then ``Dataset.frame``: one column per parameter (labflow names, declared units)
and one for the objective, indexed ``0 .. N-1``.
"""

from __future__ import annotations

import keyword
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labflow.errors import LabflowError, Problem, RecipeError
from labflow.objectives import Objective
from labflow.space import Categorical, Integer, Parameter, Real, Space

__all__ = [
    "BUILTIN_DATASETS",
    "ColumnInput",
    "Constraint",
    "Dataset",
    "DatasetDescription",
    "ObjectiveColumn",
    "builtin_description_path",
    "dataset_available",
    "default_data_dir",
    "shipped_data_dir",
    "describe_csv",
    "load_dataset",
    "load_description",
    "n_good",
]

DESCRIPTIONS_DIR = Path(__file__).with_name("datasets")
#: The five pools of Liang et al. (2021), in the order of the paper.
BUILTIN_DATASETS = ("p3ht", "agnp", "perovskite", "crossed_barrel", "autoam")
DATA_ENV = "LABFLOW_DATA"


# -- the description schema ---------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise ValueError(
            f"{value!r} is not usable as a labflow name: use a Python identifier that is not a keyword "
            "(letters, digits, underscores; e.g. 'anneal_temperature')"
        )
    return value


class ColumnInput(_Model):
    """One input column of the CSV and the labflow parameter it becomes."""

    column: str = Field(description="column header in the CSV, exactly as written (after BOM removal)")
    name: str = Field(description="labflow parameter name: a Python identifier that is not a keyword")
    unit: str = Field("", description="pint unit of the values in the CSV ('' for dimensionless)")
    type: Literal["real", "integer", "categorical"] = "real"
    low: float | None = Field(None, description="lower bound; default: the data's minimum")
    high: float | None = Field(None, description="upper bound; default: the data's maximum")
    levels: list[float] | None = Field(None, description="the grid the data lie on, when discrete")
    choices: list[str] | None = Field(None, description="categorical labels; default: those in the data, sorted")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        return _check_identifier(v)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnInput:
        if self.type == "categorical" and (self.low is not None or self.high is not None or self.levels):
            raise ValueError(f"{self.name}: a categorical input takes 'choices', not low/high/levels")
        if self.type != "categorical" and self.choices is not None:
            raise ValueError(f"{self.name}: 'choices' is only for type: categorical")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"{self.name}: low ({self.low}) must be below high ({self.high})")
        if self.levels is not None and len(self.levels) < 2:
            raise ValueError(f"{self.name}: 'levels' needs at least two values")
        return self


class ObjectiveColumn(_Model):
    """The objective column of the CSV and the labflow objective it becomes."""

    column: str
    name: str
    unit: str = ""
    direction: Literal["maximize", "minimize"]
    description: str = ""

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        return _check_identifier(v)


class Constraint(_Model):
    """A relation the inputs obey. ``type: sum``: the listed inputs add up to ``total`` (+- ``tolerance``)."""

    type: Literal["sum"] = "sum"
    inputs: list[str] = Field(min_length=2, description="labflow parameter names")
    total: float
    tolerance: float = Field(0.0, ge=0.0)


class DatasetDescription(_Model):
    """How to read one CSV of experiments as a pool (see the module docstring)."""

    name: str
    file: str = Field(description="CSV file name, resolved against the data directory (or an absolute path)")
    title: str = ""
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    inputs: list[ColumnInput] = Field(min_length=1)
    objective: ObjectiveColumn
    replicates: Literal["mean_distinct", "mean", "error"] = "mean_distinct"
    constraints: list[Constraint] = Field(default_factory=list)
    source: str = ""
    citation: str = ""
    license: str = ""
    notes: str = ""

    @model_validator(mode="after")
    def _names(self) -> DatasetDescription:
        names = [i.name for i in self.inputs] + [self.objective.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names used more than once (inputs and objective must differ): {dupes}")
        columns = [i.column for i in self.inputs] + [self.objective.column]
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(f"CSV columns used more than once: {dupes}")
        for j, c in enumerate(self.constraints):
            unknown = [n for n in c.inputs if n not in names[:-1]]
            if unknown:
                raise ValueError(f"constraints[{j}] names unknown inputs {unknown}; inputs are {names[:-1]}")
        return self


def _problems_from(exc: ValidationError) -> list[Problem]:
    return [Problem(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]


# -- locating files -----------------------------------------------------------------
def shipped_data_dir() -> Path:
    """The folder of the datasets shipped inside the package (``labflow/datasets/liang2021``)."""
    from labflow.datasets import LIANG2021_DIR

    return LIANG2021_DIR


def default_data_dir() -> Path:
    """Where dataset CSVs are looked for first: ``$LABFLOW_DATA`` when set, else the shipped copies."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return shipped_data_dir()


def builtin_description_path(name: str) -> Path:
    """The shipped YAML for a built-in dataset name ("p3ht", "crossed_barrel", ...)."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    path = DESCRIPTIONS_DIR / f"{key}.yaml"
    if not path.is_file():
        raise RecipeError(
            f"unknown dataset {name!r}",
            hint=f"use one of {list(BUILTIN_DATASETS)} or the path of a dataset description (.yaml)",
            problems=[Problem("dataset", f"no built-in description {path.name} in {DESCRIPTIONS_DIR}")],
        )
    return path


def load_description(name_or_path: str | os.PathLike[str]) -> tuple[DatasetDescription, Path]:
    """Read and validate a description; returns it with the YAML's path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        path = builtin_description_path(text)
    if not path.is_file():
        raise RecipeError(f"dataset description {path} does not exist", source=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML", problems=[Problem("<root>", str(exc))], source=str(path)) from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}", source=str(path))
    try:
        return DatasetDescription.model_validate(raw), path
    except ValidationError as exc:
        raise RecipeError(f"{path}: invalid dataset description", problems=_problems_from(exc), source=str(path)) from exc


def _resolve_csv(desc: DatasetDescription, yaml_path: Path | None, data_dir: str | os.PathLike[str] | None) -> Path:
    file = Path(desc.file).expanduser()
    if file.is_absolute():
        candidates = [file]
    elif data_dir is not None:
        candidates = [Path(data_dir) / file]
    else:
        candidates = []
        if yaml_path is not None and yaml_path.parent != DESCRIPTIONS_DIR:
            candidates.append(yaml_path.parent / file)
        candidates.append(default_data_dir() / file)
        if yaml_path is not None and yaml_path.parent == DESCRIPTIONS_DIR and shipped_data_dir() != default_data_dir():
            candidates.append(shipped_data_dir() / file)  # a built-in pool missing from $LABFLOW_DATA: the shipped copy
    for c in candidates:
        if c.is_file():
            return c
    raise RecipeError(
        f"dataset {desc.name!r}: data file {desc.file!r} not found",
        hint=f"pass data_dir=..., or set ${DATA_ENV} to the folder holding {desc.file}",
        problems=[Problem("file", f"no file at {c}") for c in candidates],
        source=str(yaml_path) if yaml_path else None,
    )


def dataset_available(name_or_path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when the description and its CSV can both be found (for skipping tests and benchmarks)."""
    try:
        desc, path = load_description(name_or_path)
        _resolve_csv(desc, path, data_dir)
    except (RecipeError, OSError):
        return False
    return True


# -- the dataset --------------------------------------------------------------------
def n_good(n: int, q: float) -> int:
    """Size of the good set, ``M = ceil(q * N)`` (guarded against float round-off: 0.05 * 100 is 5)."""
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    return max(1, math.ceil(q * n - 1e-9))


@dataclass
class Dataset:
    """A pool of measured points, ready to serve as a simulated lab.

    Attributes
    ----------
    frame:
        The aggregated pool: one column per parameter (labflow names, declared units) and one
        for the objective; index ``0 .. N-1`` (the *pool index* used in traces).
    space, objective:
        The labflow :class:`~labflow.space.Space` and :class:`~labflow.objectives.Objective`.
    replicates:
        Number of CSV rows merged into each pool point (aligned with ``frame``).
    raw:
        The CSV rows actually used, renamed to labflow names (before aggregation).
    """

    description: DatasetDescription
    frame: pd.DataFrame
    space: Space
    objective: Objective
    replicates: np.ndarray
    raw: pd.DataFrame
    path: Path | None = None
    levels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def n(self) -> int:
        """Pool size N (unique input vectors after merging replicates)."""
        return len(self.frame)

    @property
    def dim(self) -> int:
        """Number of parameters d (used for EF at 10*d and 20*d)."""
        return len(self.space)

    @property
    def X(self) -> pd.DataFrame:
        """The pool's inputs (parameter columns only)."""
        return self.frame[self.space.names]

    @property
    def y(self) -> np.ndarray:
        """The pool's objective values, in the objective's unit (float array of length N)."""
        return self.frame[self.objective.name].to_numpy(dtype=float)

    @property
    def constraints(self) -> list[Constraint]:
        return list(self.description.constraints)

    def scores(self) -> np.ndarray:
        """Objective values oriented so that larger is better (``sign * y``)."""
        return self.objective.sign * self.y

    def ranking(self) -> np.ndarray:
        """Pool indices from best to worst; ties keep pool order (a stable sort)."""
        return np.argsort(-self.scores(), kind="stable")

    def good_set(self, q: float = 0.05) -> np.ndarray:
        """The top ``M = ceil(q*N)`` pool indices by the objective's direction, best first."""
        return self.ranking()[: n_good(self.n, q)]

    def best_index(self) -> int:
        return int(self.ranking()[0])

    def best_value(self) -> float:
        return float(self.y[self.best_index()])

    def replicate_noise(self) -> float | None:
        """Pooled within-replicate standard deviation of the objective (None without replicates).

        ``sqrt(sum_g sum_i (y_gi - mean_g)^2 / sum_g (n_g - 1))`` over groups with ``n_g >= 2``.
        """
        names = self.space.names
        g = self.raw.groupby(names, sort=False, dropna=False)[self.objective.name]
        dof = float((g.count() - 1).clip(lower=0).sum())
        if dof <= 0:
            return None
        ss = float(g.apply(lambda s: ((s - s.mean()) ** 2).sum()).sum())
        return math.sqrt(ss / dof)

    def constraint_residuals(self) -> dict[int, np.ndarray]:
        """For each constraint (by position): ``sum(inputs) - total`` on every pool point."""
        return {j: self.frame[c.inputs].sum(axis=1).to_numpy(float) - c.total for j, c in enumerate(self.constraints)}

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, N={self.n}, d={self.dim}, objective={self.objective.name} "
            f"({self.objective.direction}), rows={len(self.raw)})"
        )


def load_dataset(
    name_or_description_path: str | os.PathLike[str] | DatasetDescription,
    data_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a pool: a built-in name (``"p3ht"``, ``"agnp"``, ``"perovskite"``, ``"crossed_barrel"``,
    ``"autoam"``), the path of a description YAML, or a :class:`DatasetDescription`.

    The CSV is looked for in ``data_dir`` when given; otherwise next to a user's YAML, then in
    ``$LABFLOW_DATA`` when set, then (for the built-in pools) in the copies shipped in
    :mod:`labflow.datasets`.
    Raises :class:`~labflow.errors.RecipeError` naming the file and column when something is off.
    """
    if isinstance(name_or_description_path, DatasetDescription):
        desc, ypath = name_or_description_path, None
    else:
        desc, ypath = load_description(name_or_description_path)
    csv = _resolve_csv(desc, ypath, data_dir)
    where = str(csv)
    try:
        df = pd.read_csv(csv, encoding=desc.encoding, sep=desc.delimiter, skipinitialspace=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, LookupError) as exc:
        raise RecipeError(f"{where}: cannot read the CSV ({exc})", hint=f"check 'encoding' ({desc.encoding}) and 'delimiter'") from exc
    df.columns = [str(c).strip() for c in df.columns]

    problems: list[Problem] = []
    found = list(df.columns)
    for j, inp in enumerate(desc.inputs):
        if inp.column not in found:
            problems.append(Problem(f"inputs[{j}].column", f"column {inp.column!r} (input {inp.name}) not in {where}; found {found}"))
    if desc.objective.column not in found:
        problems.append(Problem("objective.column", f"column {desc.objective.column!r} (objective) not in {where}; found {found}"))
    if problems:
        raise RecipeError(f"dataset {desc.name!r}: {where} lacks columns the description expects", problems=problems, source=where)

    rename = {i.column: i.name for i in desc.inputs} | {desc.objective.column: desc.objective.name}
    data = df[list(rename)].rename(columns=rename)
    names = [i.name for i in desc.inputs]
    obj = desc.objective.name

    # types and missing values
    for j, inp in enumerate(desc.inputs):
        col = data[inp.name]
        if inp.type == "categorical":
            bad = col.isna()
            data[inp.name] = col.astype(object).map(lambda v: v if pd.isna(v) else str(v).strip())
        else:
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna()
            data[inp.name] = num.astype(float)
        if bad.any():
            rows = (np.flatnonzero(bad.to_numpy()) + 2)[:5].tolist()  # +2: header line and 1-based
            problems.append(Problem(f"inputs[{j}]", f"column {inp.column!r}: missing or non-numeric values on lines {rows} of {where}"))
    num = pd.to_numeric(data[obj], errors="coerce")
    if num.isna().any() or not np.isfinite(num.to_numpy(dtype=float)).all():
        rows = (np.flatnonzero(~np.isfinite(num.to_numpy(dtype=float))) + 2)[:5].tolist()
        problems.append(Problem("objective", f"column {desc.objective.column!r}: missing or non-numeric values on lines {rows} of {where}"))
    data[obj] = num.astype(float)
    if problems:
        raise RecipeError(f"dataset {desc.name!r}: bad values in {where}", problems=problems, source=where)

    # replicates
    groups = data.groupby(names, sort=True)[obj]
    counts = groups.size()
    if desc.replicates == "error" and (counts > 1).any():
        raise RecipeError(
            f"dataset {desc.name!r}: {int((counts > 1).sum())} input vectors appear more than once in {where}",
            hint="set replicates: mean_distinct (Liang) or mean",
        )
    agg = groups.agg(lambda s: float(np.mean(s.unique()))) if desc.replicates == "mean_distinct" else groups.mean()
    frame = agg.reset_index()
    frame[obj] = frame[obj].astype(float)
    replicates = counts.reindex(agg.index).to_numpy()

    # the space: bounds from the data unless declared; levels checked
    params: list[Parameter] = []
    levels: dict[str, np.ndarray] = {}
    for j, inp in enumerate(desc.inputs):
        col = frame[inp.name]
        try:
            if inp.type == "categorical":
                seen = sorted(col.unique().tolist())
                choices = list(inp.choices) if inp.choices is not None else seen
                unknown = [c for c in seen if c not in choices]
                if unknown:
                    problems.append(Problem(f"inputs[{j}].choices", f"{inp.column!r} has values {unknown} not in choices {choices}"))
                    continue
                params.append(Categorical(inp.name, tuple(choices)))
                continue
            lo_d, hi_d = float(col.min()), float(col.max())
            low = lo_d if inp.low is None else inp.low
            high = hi_d if inp.high is None else inp.high
            if lo_d < low or hi_d > high:
                problems.append(Problem(f"inputs[{j}]", f"{inp.column!r}: data span [{lo_d:g}, {hi_d:g}] lies outside the declared bounds [{low:g}, {high:g}]"))
                continue
            if not low < high:
                problems.append(Problem(f"inputs[{j}]", f"{inp.column!r}: every value is {lo_d:g}; a constant column cannot be an input", ))
                continue
            if inp.levels is not None:
                lv = np.array(sorted(inp.levels), dtype=float)
                off = [v for v in np.unique(col.to_numpy(float)) if not np.isclose(lv, v, rtol=0, atol=1e-9 * max(1.0, abs(v))).any()]
                if off:
                    problems.append(Problem(f"inputs[{j}].levels", f"{inp.column!r}: values {off[:5]} are not among the levels {lv.tolist()}"))
                    continue
                levels[inp.name] = lv
            if inp.type == "integer":
                if not np.all(col.to_numpy(float) == np.round(col.to_numpy(float))):
                    problems.append(Problem(f"inputs[{j}].type", f"{inp.column!r}: type integer, but the data hold fractions"))
                    continue
                frame[inp.name] = col.astype(int)
                params.append(Integer(inp.name, int(math.floor(low)), int(math.ceil(high)), inp.unit))
            else:
                params.append(Real(inp.name, low, high, inp.unit))
        except LabflowError as exc:
            problems.append(Problem(f"inputs[{j}]", exc.message))
    try:
        objective = Objective(obj, desc.objective.direction, desc.objective.unit)
    except LabflowError as exc:
        problems.append(Problem("objective", exc.message))
    if problems:
        raise RecipeError(f"dataset {desc.name!r}: the description does not fit {where}", problems=problems, source=where)
    space = Space(params)

    # constraints, checked on the pool
    for j, c in enumerate(desc.constraints):
        resid = frame[c.inputs].sum(axis=1).to_numpy(float) - c.total
        worst = int(np.argmax(np.abs(resid)))
        if abs(resid[worst]) > c.tolerance + 1e-12:
            problems.append(Problem(f"constraints[{j}]", f"sum of {c.inputs} is {c.total + resid[worst]:g} at pool point {worst}; expected {c.total:g} +- {c.tolerance:g}"))
    if problems:
        raise RecipeError(f"dataset {desc.name!r}: constraints violated in {where}", problems=problems, source=where)

    frame = frame[names + [obj]]
    frame.index = pd.RangeIndex(len(frame), name="pool_index")
    raw = data[names + [obj]].reset_index(drop=True)
    return Dataset(desc, frame, space, objective, replicates, raw, csv, levels)


# -- helpers for a lab's own CSV ----------------------------------------------------
def _identifier(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in text).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    if not out or out[0].isdigit() or keyword.iskeyword(out):
        out = f"x_{out}"
    return out


def describe_csv(
    path: str | os.PathLike[str],
    objective: str | None = None,
    direction: Literal["maximize", "minimize"] = "maximize",
    name: str | None = None,
    encoding: str = "utf-8-sig",
) -> DatasetDescription:
    """A starting description for a CSV: every column but the objective (default: the last) is a real input.

    Names are derived from the headers (``"Print Speed"`` -> ``print_speed``); units are left
    empty. Review it, add units, and save it with ``yaml.safe_dump(desc.model_dump())``.
    """
    path = Path(path)
    header = list(pd.read_csv(path, encoding=encoding, nrows=0).columns)
    header = [str(c).strip() for c in header]
    objective = objective or header[-1]
    if objective not in header:
        raise RecipeError(f"{path}: no column {objective!r}", problems=[Problem("objective", f"found {header}")])
    used: set[str] = set()
    inputs = []
    for col in header:
        if col == objective:
            continue
        ident = _identifier(col)
        while ident in used:
            ident += "_"
        used.add(ident)
        inputs.append(ColumnInput(column=col, name=ident))
    obj_name = _identifier(objective)
    while obj_name in used:
        obj_name += "_"
    return DatasetDescription(
        name=name or _identifier(path.stem),
        file=path.name,
        encoding=encoding,
        inputs=inputs,
        objective=ObjectiveColumn(column=objective, name=obj_name, direction=direction),
    )
