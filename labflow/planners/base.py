"""The planner interface: ask/tell on records, suggest/observe on DataFrames.

A planner owns the campaign's history of observations and nothing else: it never
touches devices. Two spellings of the same verbs:

* ``ask(n, pending) -> [Candidate]`` and ``tell([Observation])`` -- what the campaign loop uses;
* ``suggest(n, pending=df) -> DataFrame`` and ``observe(df)`` -- what a notebook uses.
  Objective columns carry the objective's name; an optional ``status`` column marks rows
  that failed (``"failed"``) so that they are remembered without being modelled.

Subclasses implement the public hook ``propose(n, X_pending) -> unit-cube array`` (and, for
pool labs, may override ``propose_from``). ``_propose``/``_propose_from`` are the older names,
still honoured (deprecated aliases).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import warnings
from abc import ABC
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from labflow.errors import ObservationError, PlannerError, SpaceError
from labflow.objectives import Objective
from labflow.records import Candidate, Observation, Status, new_uid
from labflow.space import Space

STATUS_COLUMN = "status"
UID_COLUMN = "uid"
SAMPLE_FAULT_COLUMN = "sample_fault"


class Planner(ABC):
    """Base class of every labflow planner.

    Parameters
    ----------
    space:
        The parameters to vary.
    objectives:
        What to optimize (at least one).
    seed:
        Seeds every random draw, so the same history gives the same suggestions.
    """

    name: ClassVar[str] = "planner"

    def __init__(self, space: Space, objectives: Sequence[Objective] | Objective, seed: int = 0) -> None:
        if isinstance(objectives, Objective):
            objectives = [objectives]
        self.space = space
        self.objectives = list(objectives)
        if not self.objectives:
            raise SpaceError("a planner needs at least one objective")
        clash = set(space.names) & {o.name for o in self.objectives}
        if clash:
            raise SpaceError(f"names used both as parameter and objective: {sorted(clash)}")
        self.seed = int(seed)
        self._observations: list[Observation] = []
        self._asked = 0  # number of candidates proposed so far (part of the RNG stream)
        self.last_generator = ""

    # -- records API --------------------------------------------------------------
    def ask(
        self, n: int = 1, pending: Sequence[Candidate] = (), choices: pd.DataFrame | None = None
    ) -> list[Candidate]:
        """Propose ``n`` new candidates, avoiding those still ``pending`` on instruments.

        With ``choices`` (a DataFrame of allowed points, e.g. an unmeasured pool), every
        candidate is one of its rows, and no row is proposed twice in one call; rows already
        measured, pending, or breaking the space's constraints are never proposed. Without
        ``choices``, a proposal that breaks a constraint is moved to the nearest feasible point.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        X_pending = self.space.encode([c.params for c in pending]) if pending else np.empty((0, self.space.dim))
        if choices is not None:
            X_choices = self.space.encode(choices)
            X = X_choices[self._pick_rows(n, X_pending, X_choices, len(choices))]
        else:
            X = np.asarray(self.propose(n, X_pending), dtype=float)
            if self.space.constraints or self.space.nonlinear:  # every suggestion satisfies the constraints: repair the others
                X = self.space.repair(self.space.snap(X))
        if X.shape != (n, self.space.dim):
            raise RuntimeError(f"{type(self).__name__}.propose returned shape {X.shape}, expected {(n, self.space.dim)}")
        self._asked += n
        return [
            Candidate(uid=new_uid(), params=row, planner=self.name, generator=self.last_generator or self.name)
            for row in self.space.decode_records(X)
        ]

    def _pick_rows(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray, n_rows: int) -> np.ndarray:
        """Positions of the ``n`` rows of ``X_choices`` (unit cube) the planner picks; never a row that is
        measured, pending or infeasible, never one row twice."""
        if n_rows < n:
            raise ValueError(f"asked for {n} candidates from only {n_rows} choices")
        taken = np.vstack([self._X_observed(), X_pending])
        free = np.ones(len(X_choices), dtype=bool)
        for start in range(0, len(taken), 256):
            block = taken[start : start + 256]
            free &= np.abs(X_choices[:, None, :] - block[None, :, :]).max(axis=2).min(axis=1) > 1e-9
        if self.space.constraints or getattr(self.space, "nonlinear", ()):
            free &= self.space.feasible_unit(X_choices)
        positions = np.flatnonzero(free)
        if len(positions) < n:
            raise ValueError(
                f"asked for {n} candidates but only {len(positions)} of {n_rows} choices are "
                "feasible and neither measured nor pending"
            )
        X = np.asarray(self.propose_from(n, X_pending, X_choices[positions]), dtype=float)
        if X.shape != (n, self.space.dim):
            raise RuntimeError(f"{type(self).__name__}.propose_from returned shape {X.shape}, expected {(n, self.space.dim)}")
        # each pick is a copy of a free row: find it (the first unused one, should rows repeat)
        unused = np.ones(len(positions), dtype=bool)
        picks = []
        for x in X:
            same = np.flatnonzero(unused & (np.abs(X_choices[positions] - x).max(axis=1) <= 1e-12))
            if not len(same):
                raise RuntimeError(f"{type(self).__name__}.propose_from returned a point that is not one of the free choices")
            unused[same[0]] = False
            picks.append(int(positions[same[0]]))
        return np.array(picks, dtype=int)

    def tell(self, observations: Sequence[Observation] | Observation) -> None:
        """Record what came of candidates. Completed observations need every objective, finite."""
        if isinstance(observations, Observation):
            observations = [observations]
        checked = [self._check_observation(o, i) for i, o in enumerate(observations)]
        self._observations.extend(checked)
        self._on_new_observations()

    # -- DataFrame API ------------------------------------------------------------
    def suggest(self, n: int = 1, pending: pd.DataFrame | None = None, candidates: pd.DataFrame | None = None) -> pd.DataFrame:
        """Propose ``n`` experiments as a DataFrame, values in declared units.

        Without ``candidates``: one column per parameter. With ``candidates`` (a library of
        possible experiments: a DataFrame with a column per parameter and any other columns,
        such as a sample ID or a supplier), the ``n`` chosen rows of it, with their index and
        every column kept, plus the planner's columns (overwritten if the frame has them already):

        * ``generator``: what chose the row (``sobol`` in the initial design, the acquisition after);
        * ``acquisition_value``: the acquisition's value for the row, in pick order (NaN in the initial design);
        * ``<objective>_mean``, ``<objective>_sd``: the model's prediction in the objective's unit
          (NaN for a planner without a model, or before it has two results).

        Rows already observed or ``pending`` (still running), and rows that break a constraint,
        are never returned. A parameter column missing from ``candidates``, or a value outside
        the space, is refused with an error that names the column (and row).
        """
        pend: list[Candidate] = []
        if pending is not None and len(pending):
            missing = [c for c in self.space.names if c not in pending.columns]
            if missing:
                raise SpaceError(f"pending experiments lack parameter columns {missing}", hint=f"expected columns {self.space.names}")
            pend = [Candidate(uid=f"pending-{i}", params=row) for i, row in enumerate(pending[self.space.names].to_dict("records"))]
        if candidates is None:
            return pd.DataFrame([c.params for c in self.ask(n, pend)], columns=self.space.names)
        return self._suggest_from(n, pend, candidates)

    def _candidate_rows(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """The rows a candidate library offers (the multi-fidelity planner offers each at every fidelity)."""
        return candidates

    def _suggest_from(self, n: int, pending: Sequence[Candidate], candidates: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(candidates, pd.DataFrame):
            raise SpaceError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        frame = self._candidate_rows(candidates)
        X_choices = self._encode_named(frame, "candidates")
        X_pending = self.space.encode([c.params for c in pending]) if pending else np.empty((0, self.space.dim))
        picks = self._pick_rows(n, X_pending, X_choices, len(frame))
        self._asked += n
        out = frame.iloc[picks].copy()
        out["generator"] = self.last_generator or self.name
        values = list(getattr(self, "last_decision", {}).get("acquisition_values") or [])
        out["acquisition_value"] = values if len(values) == n and out["generator"].iloc[0] != "fallback" else np.nan
        predicted = self._predict_or_none(X_choices[picks])
        for j, o in enumerate(self.objectives):
            out[f"{o.name}_mean"] = predicted[0][:, j] if predicted is not None else np.nan
            out[f"{o.name}_sd"] = predicted[1][:, j] if predicted is not None else np.nan
        return out

    def _encode_named(self, frame: pd.DataFrame, what: str) -> np.ndarray:
        """Encode a DataFrame of points, refusing it with the missing column's name (and a close match) or the bad row."""
        import difflib

        missing = [c for c in self.space.names if c not in frame.columns]
        if missing:
            near = {m: difflib.get_close_matches(m, [str(c) for c in frame.columns], n=1, cutoff=0.4) for m in missing}
            hint = "; ".join(f"did you mean {near[m][0]!r} for {m!r}?" for m in missing if near[m]) or f"the space's parameters are {self.space.names}"
            raise SpaceError(f"{what} lack the parameter column(s) {missing}; they have {[str(c) for c in frame.columns]}", hint=hint)
        X = self.space._encode_frame(frame)  # noqa: SLF001 - the fast path of encode(); None means a value needs a look
        if X is not None:
            return X
        for label, row in zip(frame.index, frame[self.space.names].to_dict("records")):
            where = f"{what} row {label!r}"
            try:
                self.space.coerce(row, where=where)
            except SpaceError as exc:
                if exc.message.startswith(where):
                    raise
                raise SpaceError(f"{where}: {exc.message}", hint=exc.hint) from None
        return self.space.encode(frame[self.space.names])

    # -- what the model believes ----------------------------------------------------
    def predict(self, points: pd.DataFrame) -> pd.DataFrame:
        """The model's mean and standard deviation of each objective at ``points`` (in the objective's unit).

        Columns ``<objective>_mean`` and ``<objective>_sd``, with the index of ``points``.
        Planners without a model (the baselines) raise :class:`~labflow.errors.PlannerError`.
        """
        raise PlannerError(f"{type(self).__name__} has no model to predict with", hint="use BayesianPlanner")

    def relevance(self) -> pd.DataFrame:
        """Which parameters matter to the model (model-based planners only; see BayesianPlanner.relevance)."""
        raise PlannerError(f"{type(self).__name__} has no model to explain", hint="use BayesianPlanner")

    def _predict_or_none(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Predictions at unit-cube rows (objectives' units), or None when the planner has no model yet."""
        return None

    def observe(self, data: pd.DataFrame) -> None:
        """Learn from a DataFrame with parameter columns and objective columns.

        Values may be plain numbers in declared units or pint Quantities. A ``status`` column
        ("completed"/"failed") marks failed rows, whose objective cells may be empty; a
        ``sample_fault`` column (true/false) says whether a failure was the sample's fault.

        Observing is idempotent by ``uid``: a row whose ``uid`` the planner already holds (or
        that repeats a uid earlier in ``data``) is ignored with a
        :class:`RepeatedObservationWarning`, so a notebook cell run twice does not count its
        results twice. Rows without a uid (no ``uid`` column, or an empty cell) each get a new one:
        replicates of the same experiment count as replicates.
        """
        if not isinstance(data, pd.DataFrame):
            raise ObservationError(f"observe() takes a pandas DataFrame, got {type(data).__name__}")
        missing = [c for c in self.space.names if c not in data.columns]
        if missing:
            raise ObservationError(f"observations lack parameter columns {missing}", hint=f"expected {self.space.names}")
        known = {o.uid for o in self._observations}
        obs, repeated = [], []
        for i, row in enumerate(data.to_dict("records")):
            uid = row.get(UID_COLUMN)
            if not _is_missing(uid) and str(uid) in known:
                repeated.append(str(uid))
                continue
            status = Status(str(row.get(STATUS_COLUMN, Status.COMPLETED)))
            outcomes = {}
            for o in [*self.objectives, *self._outcome_constraints()]:
                if o.name in row and not _is_missing(row[o.name]):
                    outcomes[o.name] = _to_float(row[o.name], o, f"row {i}")
                elif status is Status.COMPLETED:
                    raise ObservationError(
                        f"row {i}: objective column {o.name!r} is missing or empty",
                        hint=f"add a column {o.name!r} with the measured values, or mark the row status='failed'",
                    )
            uid = new_uid() if _is_missing(uid) else str(uid)
            known.add(uid)
            obs.append(
                Observation(
                    uid=uid,
                    params={k: row[k] for k in self.space.names},
                    outcomes=outcomes,
                    status=status,
                    reason=str(row.get("reason", "") or ""),
                    sample_fault=_truthy(row.get(SAMPLE_FAULT_COLUMN, False)),
                )
            )
        if repeated:
            shown = ", ".join(repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
            warnings.warn(
                f"observe(): {len(repeated)} row(s) carry a uid the planner already holds ({shown}); they were ignored "
                "(a re-run cell observes the same rows twice). Give replicates their own uid, or none.",
                RepeatedObservationWarning,
                stacklevel=2,
            )
        self.tell(obs)

    def observe_prior(self, data: pd.DataFrame | str | os.PathLike, *, outside: str = "error") -> int:
        """Warm-start from past measurements: a DataFrame, or the path of a CSV file, read like :meth:`observe`.

        Columns as for ``observe`` (parameters and objectives in declared units, or text such as
        ``"150 degC"``; optional ``status``, ``reason``, ``sample_fault``, ``uid``). Rows without a
        uid get ``prior-<digest>``, a digest of the row's content and of how many identical rows
        came before it: reading the same file twice adds nothing the second time, while identical
        rows of one file (replicates) all count. ``outside="skip"`` drops rows that lie outside the space (an
        earlier campaign may have searched a wider one) instead of raising. Returns the number
        of observations added; they count towards a planner's initial design.
        """
        if outside not in ("error", "skip"):
            raise ValueError(f"outside must be 'error' or 'skip', got {outside!r}")
        frame = data if isinstance(data, pd.DataFrame) else pd.read_csv(data)
        frame = frame.copy()
        if UID_COLUMN not in frame.columns:
            frame[UID_COLUMN] = _content_uids(frame, "prior")
        if outside == "skip":
            keep = []
            for row in frame.to_dict("records"):
                try:
                    self.space.coerce(row)
                    keep.append(True)
                except (SpaceError, KeyError):
                    keep.append(False)
            frame = frame[np.array(keep, dtype=bool)] if len(frame) else frame
        before = self.n_observations
        self.observe(frame)
        return self.n_observations - before

    # -- history ------------------------------------------------------------------
    @property
    def observations(self) -> list[Observation]:
        return list(self._observations)

    @property
    def n_observations(self) -> int:
        return len(self._observations)

    def data(self) -> pd.DataFrame:
        """The history as a DataFrame: parameters, objectives, status."""
        rows = [{**o.params, **o.outcomes, STATUS_COLUMN: o.status.value, UID_COLUMN: o.uid} for o in self._observations]
        cols = self.space.names + [o.name for o in [*self.objectives, *self._outcome_constraints()]] + [STATUS_COLUMN, UID_COLUMN]
        return pd.DataFrame(rows, columns=cols)

    def completed(self) -> list[Observation]:
        return [o for o in self._observations if o.status is Status.COMPLETED]

    def _outcome_constraints(self) -> list[Any]:
        """Measured quantities that must stay within bounds (:class:`~labflow.objectives.OutcomeConstraint`)."""
        return list(getattr(self, "outcome_constraints", ()) or ())

    def best(self) -> Observation | None:
        """The best completed observation of the first objective that satisfies the outcome constraints (None before any)."""
        # Folded in incrementally (the loop asks after every experiment): only the observations
        # added since the last call are looked at, unless the history was replaced.
        obs = self._observations
        constraints = self._outcome_constraints()
        cached = getattr(self, "_best_cache", None)
        best, start = (None, 0) if cached is None or cached[2] is not obs or cached[1] > len(obs) else cached[:2]
        obj = self.objectives[0]
        for o in obs[start:]:
            if o.status is not Status.COMPLETED or not all(c.satisfied(o.outcomes[c.name]) for c in constraints):
                continue
            if best is None or obj.sign * o.outcomes[obj.name] > obj.sign * best.outcomes[obj.name]:
                best = o
        self._best_cache = (best, len(obs), obs)
        return best

    def pareto_front(self) -> pd.DataFrame:
        """The completed observations no other completed one beats in every objective.

        Parameters and objectives in declared units, plus ``uid``; sorted by the first objective
        (best first). With one objective, the best observation(s).
        """
        from labflow.planners.pareto import pareto_mask

        done = self.completed()
        cols = self.space.names + [o.name for o in self.objectives] + [UID_COLUMN]
        if not done:
            return pd.DataFrame(columns=cols)
        _, Y = self.train_data()
        rows = [{**o.params, **o.outcomes, UID_COLUMN: o.uid} for o, keep in zip(done, pareto_mask(Y)) if keep]
        front = pd.DataFrame(rows, columns=cols)
        first = self.objectives[0]
        return front.sort_values(first.name, ascending=first.direction == "minimize", kind="stable").reset_index(drop=True)

    def reference_point(self) -> dict[str, float] | None:
        """The hypervolume's reference point in each objective's unit: its ``threshold``, else inferred from the data.

        Inferred values lie just beyond the worst Pareto-optimal value (10 % of the front's
        range); they move as data arrive, so give thresholds for a hypervolume comparable across campaigns.
        None before any completed observation.
        """
        from labflow.planners.pareto import infer_reference_point

        _, Y = self.train_data()
        given = getattr(self, "ref_point", None) or {}
        if not len(Y) and not all(o.name in given or o.threshold is not None for o in self.objectives):
            return None
        inferred = infer_reference_point(Y) if len(Y) else np.zeros(len(self.objectives))
        out = {}
        for j, o in enumerate(self.objectives):
            if o.name in given:
                out[o.name] = float(given[o.name])
            elif o.threshold is not None:
                out[o.name] = float(o.threshold)
            else:
                out[o.name] = float(o.sign * inferred[j])
        return out

    def hypervolume(self, ref_point: Mapping[str, float] | None = None) -> float:
        """The hypervolume of the completed observations against ``ref_point`` (default :meth:`reference_point`).

        In the product of the objectives' units; 0.0 before any point beats the reference.
        """
        from labflow.planners.pareto import hypervolume

        _, Y = self.train_data()
        ref = dict(ref_point) if ref_point is not None else self.reference_point()
        if ref is None or not len(Y):
            return 0.0
        r = np.array([o.sign * float(ref[o.name]) for o in self.objectives])
        return hypervolume(Y, r)

    def train_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Completed observations as (X in the unit cube, Y oriented so larger is better)."""
        done = self.completed()
        if not done:
            return np.empty((0, self.space.dim)), np.empty((0, len(self.objectives)))
        X = self.space.encode([o.params for o in done])
        Y = np.array([[obj.sign * o.outcomes[obj.name] for obj in self.objectives] for o in done], dtype=float)
        return X, Y

    # -- notebooks ----------------------------------------------------------------
    def _repr_html_(self) -> str:
        """A planner in a notebook: its space, objectives, data count and best result so far."""
        from html import escape

        done = self.completed()
        failed = self.n_observations - len(done)
        rows = "".join(f"<tr><td>{escape(p.describe())}</td></tr>" for p in self.space.parameters)
        cons = "".join(f"<tr><td>constraint: {escape(c)}</td></tr>" for c in self._constraint_descriptions())
        objs = ", ".join(
            escape(f"{o.direction} {o.name}" + (f" [{o.unit}]" if o.unit else "") + (f" (threshold {o.threshold:g})" if o.threshold is not None else ""))
            for o in self.objectives
        )
        best = self.best()
        if best is None:
            best_html = "none yet"
        else:
            vals = ", ".join(escape(f"{o.name} = {best.outcomes[o.name]:.4g} {o.unit}".rstrip()) for o in self.objectives)
            at = ", ".join(escape(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}") for k, v in best.params.items())
            best_html = f"{vals}<br><small>at {at} (uid {escape(best.uid)})</small>"
        settings = self.settings()
        method = escape(str(settings.get("acquisition") or self.name))
        return (
            f"<div class='labflow-planner'><b>{escape(type(self).__name__)}</b> "
            f"(seed {self.seed}, {method})<br>"
            f"<b>{self.n_observations}</b> observations: {len(done)} completed, {failed} failed or invalid<br>"
            f"objectives: {objs}<br>best so far: {best_html}"
            f"<table><tr><th style='text-align:left'>space ({len(self.space)} parameters)</th></tr>{rows}{cons}</table></div>"
        )

    def plot(self, kind: str = "slices") -> Any:
        """A matplotlib Figure of the planner's data and model, drawn by the report's own figure functions.

        ``kind``: ``"slices"`` (the model along each parameter through the best point, mean +-2 sd,
        with the measured points), ``"predicted"`` (cross-validated prediction against measurement),
        ``"progress"`` (best so far; every planner) or ``"map"`` (mean and sd over the two most
        relevant continuous parameters). See :mod:`labflow.report.notebook`.
        """
        from labflow.report.notebook import planner_figure

        return planner_figure(self, kind)

    def _constraint_descriptions(self) -> list[str]:
        return [c.describe() for c in self.space.constraints] + [c.describe() for c in getattr(self.space, "nonlinear", ())]

    # -- files --------------------------------------------------------------------
    def init_options(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this planner (``type(self)(space, objectives, seed, **options)``).

        Read from the constructor signatures along the class hierarchy: each keyword argument the
        planner keeps as an attribute of the same name. Subclasses with other needs override it.
        """
        import inspect

        out: dict[str, Any] = {}
        for klass in type(self).__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or not issubclass(klass, Planner):
                continue
            for name, param in inspect.signature(init).parameters.items():
                if name in ("self", "space", "objectives", "seed") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                if name not in out and name in self.__dict__:
                    out[name] = _jsonable(self.__dict__[name])
        return out

    def _build_space(self) -> Space:
        """The space the constructor takes (the multi-fidelity planner adds its fidelity column itself)."""
        return self.space

    def to_document(self) -> dict[str, Any]:
        """The planner as one JSON document (kind, space, objectives, seed, options, state): what
        :meth:`save` writes and what planning on another machine ships (:meth:`from_document`
        rebuilds it exactly: the same next suggestion). Plain JSON types only."""
        from labflow.space import space_to_dict

        doc = {
            "format": "labflow-planner",
            "format_version": 1,
            "kind": self.name,
            "space": space_to_dict(self._build_space()),
            "objectives": [o.to_dict() for o in self.objectives],
            "seed": self.seed,
            "options": self.init_options(),
            "state": self.state_dict(),
        }
        return json.loads(json.dumps(doc, default=_json_default))

    @classmethod
    def from_document(cls, doc: Any, *, source: str = "planner document") -> Planner:
        """A planner from a document :meth:`to_document` made (any kind: ``Planner.from_document`` works for all)."""
        from labflow.objectives import Objective
        from labflow.planners.registry import make_planner
        from labflow.space import space_from_dict

        if not isinstance(doc, dict) or doc.get("format") != "labflow-planner":
            raise PlannerError(f"{source} is not a planner document (no 'format: labflow-planner')", hint="make one with planner.save(path)")
        space = space_from_dict(doc["space"])
        objectives = [Objective(**o) for o in doc["objectives"]]
        planner = make_planner(doc["kind"], space, objectives, seed=int(doc["seed"]), **doc.get("options", {}))
        if not isinstance(planner, cls):
            raise PlannerError(f"{source} holds a {type(planner).__name__}, not a {cls.__name__}", hint="use Planner.load(path)")
        planner.load_state_dict(doc["state"])
        return planner

    def save(self, path: str | os.PathLike) -> Path:
        """Write the planner (kind, space, objectives, options, every observation, model state) to a JSON file.

        :meth:`load` rebuilds it exactly: the same next suggestion. The file is written beside
        its final name and renamed into place, so a crash never leaves half of one.
        """
        target = Path(path)
        text = json.dumps(self.to_document(), indent=1, sort_keys=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> Planner:
        """A planner from a file :meth:`save` wrote (any kind: ``Planner.load`` works for all)."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlannerError(f"no planner file at {p}") from None
        except json.JSONDecodeError as exc:
            raise PlannerError(f"{p} is not a planner file: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != "labflow-planner":
            raise PlannerError(f"{p} is not a planner file (no 'format: labflow-planner')", hint="write one with planner.save(path)")
        return cls.from_document(doc, source=str(p))

    @classmethod
    def from_campaign(cls, path: str | os.PathLike) -> Planner:
        """The planner of a campaign, rebuilt from its provenance file (``runs/<name>.h5``) to continue in a notebook.

        The recipe's planner kind and options, its space and constraints, every recorded
        experiment (prior data first, then in the order they finished) and the last model
        state; see :func:`labflow.planners._campaign.planner_from_campaign`.
        """
        from labflow.planners._campaign import planner_from_campaign

        planner = planner_from_campaign(path)
        if not isinstance(planner, cls):
            raise PlannerError(f"{path} was run by a {type(planner).__name__}, not a {cls.__name__}", hint="use Planner.from_campaign(path)")
        return planner

    # -- state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A JSON-serializable snapshot; ``load_state_dict`` on a fresh planner restores it exactly."""
        state: dict[str, Any] = {
            "planner": self.name,
            "seed": self.seed,
            "asked": self._asked,
            "space": self.space.to_dict(),
            "objectives": [o.to_dict() for o in self.objectives],
            "observations": [] if getattr(self, "_summarizing", False) else [_observation_record(o) for o in self._observations],
            "settings": self.settings(),
            **({"constraints": self.space.constraints_to_dict()} if self.space.constraints else {}),
            **({"nonlinear": [_state_form(c.to_dict()) for c in self.space.nonlinear]} if self.space.nonlinear else {}),
        }
        return state

    def state_summary(self) -> dict[str, Any]:
        """``state_dict()`` without the observations: what a campaign records beside every decision.

        Its cost does not grow with the campaign (the observations are recorded once each, as
        they arrive), where ``state_dict()`` copies every observation every time.
        """
        self._summarizing = True
        try:
            state = self.state_dict()
        finally:
            self._summarizing = False
        state.pop("observations", None)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("planner") != self.name:
            raise ValueError(f"state is for planner {state.get('planner')!r}, not {self.name!r}")
        self.seed = int(state["seed"])
        self._asked = int(state["asked"])
        self._observations = [
            Observation(
                uid=o["uid"],
                params=o["params"],
                outcomes=o["outcomes"],
                status=Status(o["status"]),
                reason=o.get("reason", ""),
                sample_fault=bool(o.get("sample_fault", False)),
            )
            for o in state["observations"]
        ]
        self.__dict__.pop("_digest", None)
        self._on_new_observations()

    def state_hash(self) -> str:
        """A short hash of the state: equal hashes mean the planner will decide the same.

        It covers ``state_summary()`` and every observation, in order. The observations are folded
        into a running digest as they arrive, so that hashing at every decision stays cheap in a
        campaign of thousands of experiments.
        """
        digest, folded, observations = self.__dict__.get("_digest") or (hashlib.sha256(), 0, None)
        if observations is not self._observations or folded > len(self._observations):  # replaced: start again
            digest, folded = hashlib.sha256(), 0
        for o in self._observations[folded:]:
            digest.update(json.dumps(_observation_record(o), sort_keys=True, default=str).encode() + b"\n")
        self._digest = (digest, len(self._observations), self._observations)
        blob = json.dumps(self.state_summary(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob + digest.digest()).hexdigest()[:16]

    def settings(self) -> dict[str, Any]:
        """The planner's own settings, stored in provenance beside each decision."""
        return {}

    def clone(self) -> Planner:
        return copy.deepcopy(self)

    def __getstate__(self) -> dict[str, Any]:
        # the running digest of state_hash() is a cache that neither copies nor pickles; it is rebuilt on demand
        state = dict(self.__dict__)
        state.pop("_digest", None)
        return state

    # -- for subclasses -----------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_propose" in cls.__dict__ and not cls.__module__.startswith("labflow."):
            warnings.warn(f"{cls.__qualname__} overrides Planner._propose, a deprecated alias: implement propose() instead",
                          DeprecationWarning, stacklevel=2)

    def propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        """The hook a planner implements: ``n`` new points, an ``n x space.dim`` array in the unit cube.

        ``X_pending`` (``k x space.dim``, unit cube) holds the points in flight: propose others.
        Set ``self.last_generator`` to name what produced them. Use :meth:`_rng` for randomness
        (seeded, so the same history gives the same points).
        """
        return self._propose(n, X_pending)

    def propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        """For pool labs: pick ``n`` distinct rows of ``X_choices`` (unit cube). Default: snap each
        :meth:`propose` point to its nearest unused choice; model-based planners score the choices."""
        return self._propose_from(n, X_pending, X_choices)

    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        """Deprecated alias of :meth:`propose` (the hook's older, private name)."""
        raise NotImplementedError(f"{type(self).__name__} must implement propose(n, X_pending)")

    def _propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        """Deprecated alias of :meth:`propose_from` (default: snap each proposal to its nearest unused choice)."""
        proposals = np.asarray(self.propose(n, X_pending), dtype=float)
        free = np.ones(len(X_choices), dtype=bool)
        out = []
        for x in proposals:
            d = np.where(free, ((X_choices - x) ** 2).sum(axis=1), np.inf)
            j = int(np.argmin(d))
            free[j] = False
            out.append(X_choices[j])
        return np.array(out)

    def _on_new_observations(self) -> None:
        """Hook called after observations change (invalidate caches here)."""

    def _X_observed(self) -> np.ndarray:
        """Every observation (completed or not) in the unit cube; encoded once each, as the history grows."""
        obs = self._observations
        n, last, X = getattr(self, "_X_observed_cache", (0, None, np.empty((0, self.space.dim))))
        if not (n <= len(obs) and (n == 0 or obs[n - 1] is last)):  # the history was replaced (load_state_dict)
            n, X = 0, np.empty((0, self.space.dim))
        if n < len(obs):
            X = np.vstack([X, self.space.encode([o.params for o in obs[n:]])])
            self._X_observed_cache = (len(obs), obs[-1], X)
        return X

    def _rng(self, salt: int = 0) -> np.random.Generator:
        """A generator determined by the seed and how much has been asked so far."""
        return np.random.default_rng([self.seed, self._asked, salt])

    def _check_observation(self, o: Observation, i: int) -> Observation:
        try:
            params = self.space.coerce(o.params, where=f"observation {i} ({o.uid})")
        except SpaceError as exc:
            raise ObservationError(exc.message, hint=exc.hint) from exc
        outcomes = dict(o.outcomes)
        if o.status is Status.COMPLETED:
            for obj in [*self.objectives, *self._outcome_constraints()]:
                if obj.name not in outcomes:
                    raise ObservationError(f"observation {i} ({o.uid}): no value for objective {obj.name!r}")
                v = outcomes[obj.name]
                if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
                    raise ObservationError(
                        f"observation {i} ({o.uid}): objective {obj.name} = {v!r} is not a finite number",
                        hint="record the experiment with status 'invalid' or 'failed' instead",
                    )
                outcomes[obj.name] = float(v)
        return Observation(o.uid, params, outcomes, o.status, o.reason, o.sample_fault)


class RepeatedObservationWarning(UserWarning):
    """``observe()`` met rows whose ``uid`` the planner already holds, and ignored them."""


def _content_uids(frame: pd.DataFrame, prefix: str) -> list[str]:
    """A uid per row from its content and the number of identical rows before it (stable across reads)."""
    seen: dict[str, int] = {}
    out = []
    for row in frame.to_dict("records"):
        blob = json.dumps({str(k): (None if _is_missing(v) else str(v)) for k, v in row.items()}, sort_keys=True)
        k = seen.get(blob, 0)
        seen[blob] = k + 1
        out.append(f"{prefix}-{hashlib.sha256(f'{blob}#{k}'.encode()).hexdigest()[:12]}")
    return out


def _state_form(d: dict[str, Any]) -> dict[str, Any]:
    """A constraint as provenance records it: a Python function by its name only."""
    return {k: v for k, v in d.items() if k != "function"}


def _jsonable(v: Any) -> Any:
    """Constructor options as JSON values (dataclasses such as Fidelity through their ``to_dict``)."""
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if callable(o):
        raise PlannerError(
            f"cannot save {getattr(o, '__name__', o)!r}: a Python function is not data",
            hint="write the constraint as an expression string (NonlinearConstraint('x**2 + y <= 1')) to save it",
        )
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _observation_record(o: Observation) -> dict[str, Any]:
    """An observation as ``state_dict()`` stores it (plain JSON types)."""
    return {
        "uid": o.uid,
        "params": dict(o.params),
        "outcomes": dict(o.outcomes),
        "status": o.status.value,
        "reason": o.reason,
        "sample_fault": o.sample_fault,
    }


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y")
    return bool(v) and not (isinstance(v, float) and math.isnan(v))


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _to_float(v: Any, obj: Objective, where: str) -> float:
    from labflow.units import convert
    from labflow.errors import UnitError

    try:
        return convert(v, obj.unit) if not isinstance(v, (int, float, np.number)) else float(v)
    except UnitError as exc:
        raise ObservationError(f"{where}: objective {obj.name}: {exc.message}") from exc
