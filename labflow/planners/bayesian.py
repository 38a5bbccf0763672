"""The Bayesian planner: a Gaussian process surrogate and an acquisition chosen for the task.

Theory of operation
-------------------
One suggestion goes through these steps (``ask`` in :class:`~labflow.planners.base.Planner`
calls :meth:`BayesianPlanner._propose`, or :meth:`BayesianPlanner._propose_from` for a pool):

1. **Initial design.** While fewer than ``n_initial`` experiments are measured or pending,
   propose the next points of a scrambled Sobol sequence (seeded by ``seed``); from a pool,
   the same sequence laid over the rows' ranks by default (``initial_design="rank"``: even
   coverage that follows the pool's own density, where Sobol points snapped to rows favour
   the isolated outliers of unevenly sampled pools). Pending
   experiments count, so a lab with four idle instruments fills them at once.
2. **Model.** Fit a GP to the completed observations in the unit cube (``train_data()``),
   one per objective, warm-started from the previous fit (see :mod:`labflow.planners._models`).
3. **Acquisition.** One objective, proposing freely: ``qLogNoisyExpectedImprovement``;
   choosing from a pool: the log-probability of being among the best 5 % (``pgood``, active
   search: see ``_acquisition.LogProbabilityOfGood`` and ``docs/decisions/0006``); several
   objectives: ``qLogNoisyExpectedHypervolumeImprovement``. Pending experiments are passed as
   ``X_pending``, so the acquisition already counts on their results and does not suggest
   them again. When samples have failed (``Observation.sample_fault``), the log-acquisition
   is added the log-probability of feasibility from a second GP on 0/1 labels.
4. **Optimization.** ``optimize_acqf`` over ``[0, 1]^D`` (linear constraints of the space
   passed as ``inequality_constraints``/``equality_constraints``), greedy sequential for a
   batch. Up to ``max_enumerate`` combinations of categorical values are each optimized
   with their one-hot columns fixed (``optimize_acqf_mixed``); more are relaxed to ``[0, 1]``
   and snapped. Integers are relaxed and rounded (``Space.snap``). Under constraints the
   multistart begins from the best of ``raw_samples`` feasible points of the space's own
   sampler. See ``docs/decisions/0003-planner-modelling.md``.
5. **Checks.** Each point is snapped, made feasible, and compared with every measured,
   pending or already chosen point: one closer than ``min_distance`` (largest difference of
   any unit-cube column) is replaced by the best-scoring fresh Sobol point that is not.

If anything in 2-4 fails (the GP cannot be fitted, the acquisition is NaN or flat at
``-inf``) the planner falls back to a space-filling point (the Sobol point farthest from
everything measured or pending), sets ``last_generator = "fallback"`` and keeps the reason
in ``last_decision``: it never wedges and never leaves the space.

Determinism: every random draw (Sobol scrambling, raw samples, MC base samples, fitting
restarts) is seeded by ``(seed, number of candidates asked so far)`` under a forked torch RNG,
and the warm-start hyperparameters are part of ``state_dict()``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy.stats import qmc

from labflow.errors import PlannerError, SpaceError
from labflow.objectives import OutcomeConstraint
from labflow.planners import _acquisition as acqf
from labflow.planners import _models as models
from labflow.planners.base import Planner
from labflow.records import Status
from labflow.space import Space

log = logging.getLogger("labflow.planners")

_SALT_SOBOL, _SALT_FIT, _SALT_OPT, _SALT_MC, _SALT_FALLBACK, _SALT_REPLACE = range(1, 7)


class BayesianPlanner(Planner):
    """Gaussian-process Bayesian optimization (BoTorch): qLogNEI for one objective, qLogNEHVI for several.

    Parameters
    ----------
    space, objectives, seed:
        As for every :class:`~labflow.planners.base.Planner`.
    n_initial:
        Size of the initial design, pending experiments included. Default
        ``max(4, len(space) + 1)``: the fewest points that can fix a linear trend in every
        parameter, and not fewer than four (two, the published protocol, let the model chase
        the first two results: decision 0006).
    num_restarts, raw_samples:
        Multistart settings of ``optimize_acqf``: ``raw_samples`` Sobol points are scored,
        the best ``num_restarts`` are polished with L-BFGS-B (SLSQP under constraints).
    mc_samples:
        Quasi-Monte-Carlo samples of the acquisition.
    maxiter:
        Iterations of L-BFGS-B (SLSQP) per restart when maximizing the acquisition.
    min_distance:
        Two points closer than this in every unit-cube column count as the same experiment;
        no suggestion is that close to a measured, pending or fellow suggested point.
    warm_start:
        Start each GP fit from the previous hyperparameters (much faster; see ``_models``).
    refit_every:
        Fit the hyperparameters only every ``refit_every``-th time new data arrive; in between,
        the GPs take the new data with the last hyperparameters (no optimization at all).
        1 refits every time; 5 to 10 suits long benchmark sweeps. ``"auto"`` (default): refit
        every time up to ``AUTO_REFIT_UNTIL`` observations, then whenever the data have grown by
        ``AUTO_REFIT_GROWTH`` (10 %) since the last fit: late hyperparameters barely move, so the
        cost of fitting stops growing with the campaign.
    feasibility:
        Learn from sample faults (``Observation.sample_fault``) and steer away from them.
    mixed, max_enumerate:
        How categoricals are searched when proposing freely (pool mode scores the rows
        instead). ``"enumerate"``: the acquisition is optimized once per combination of
        categorical values with those columns fixed (BoTorch's ``optimize_acqf_mixed``).
        ``"relax"``: the one-hot columns are optimized as continuous in ``[0, 1]`` and
        snapped to the largest. ``"auto"`` (default): enumerate up to ``max_enumerate``
        combinations, relax beyond (the cost grows with their number). Integers are always
        relaxed and rounded. Measurements in ``docs/decisions/0003-planner-modelling.md``.
    acquisition:
        ``"auto"`` (default): ``"pgood"`` from a pool, ``"qlognei"`` when proposing freely.
        ``"qlognei"``: noisy expected improvement; ``"ucb"``: upper confidence bound with
        ``beta``; ``"ts"``: Thompson sampling; ``"pgood"``: probability of being among the
        best ``top_fraction`` (0.05). One objective only; several always use qLogNEHVI.
    initial_design:
        How pool campaigns start: ``"rank"`` (default: Sobol in the rows' rank space, as the
        Sobol baseline does, decision 0005), ``"random"`` rows (the published protocol),
        ``"kcenter"`` (max-min over rows) or ``"sobol"`` (Sobol points snapped to the nearest
        rows: the 0.1 behaviour). Free proposals always start from Sobol points.
    outcome_transform, kernel:
        ``"standardize"`` (default), ``"rank"`` (normal scores) or ``"log"`` warps of the
        objective before the GP; ``"rbf"`` (default) or ``"matern52"``, both ARD with
        BoTorch's dimension-scaled priors.
    outcome_constraints:
        Measured quantities that must stay within bounds (:class:`~labflow.objectives.OutcomeConstraint`,
        e.g. ``OutcomeConstraint("purity", ">=", 95, "percent")``), one objective only. Each gets its
        own GP; the acquisition is then BoTorch's constrained ``qLogNoisyExpectedImprovement`` (the
        improvement weighted by the modelled probability that every constraint holds), whatever
        ``acquisition`` says. Observations must carry a column per constraint.
    ref_point:
        Several objectives: the reference point of the hypervolume, one value per objective
        in its own unit and direction. Default: each objective's ``threshold``, else inferred
        from the observations (``pareto.infer_reference_point``).
    """

    name: ClassVar[str] = "bayesian"

    def __init__(
        self,
        space: Space,
        objectives: Any,
        seed: int = 0,
        *,
        n_initial: int | None = None,
        num_restarts: int = 4,
        raw_samples: int = 256,
        mc_samples: int = 128,
        maxiter: int = 200,
        min_distance: float = 1e-3,
        warm_start: bool = True,
        refit_every: int | str = "auto",
        feasibility: bool = True,
        ref_point: Mapping[str, float] | None = None,
        mixed: str = "auto",
        max_enumerate: int = 8,
        acquisition: str = "auto",
        beta: float = 2.0,
        top_fraction: float = 0.05,
        initial_design: str = "rank",
        outcome_transform: str = "standardize",
        kernel: str = "rbf",
        outcome_constraints: Sequence[OutcomeConstraint | Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(space, objectives, seed)
        self.outcome_constraints = [c if isinstance(c, OutcomeConstraint) else OutcomeConstraint(**c) for c in outcome_constraints]
        if self.outcome_constraints and len(self.objectives) > 1:
            raise ValueError("outcome constraints are supported with one objective (several: not yet)")
        clash = {c.name for c in self.outcome_constraints} & (set(space.names) | {o.name for o in self.objectives})
        if clash:
            raise ValueError(f"outcome constraints name a parameter or objective: {sorted(clash)}")
        self.n_initial = max(1, int(n_initial)) if n_initial is not None else max(4, len(space) + 1)
        self.num_restarts = int(num_restarts)
        self.raw_samples = int(raw_samples)
        self.mc_samples = int(mc_samples)
        self.maxiter = int(maxiter)
        self.min_distance = float(min_distance)
        self.warm_start = bool(warm_start)
        if refit_every == "auto":
            self.refit_every: int | str = "auto"
        elif isinstance(refit_every, (int, float)) and not isinstance(refit_every, bool) and refit_every >= 1:
            self.refit_every = int(refit_every)
        else:
            raise ValueError(f"refit_every must be a whole number >= 1 or 'auto', got {refit_every!r}")
        self.feasibility = bool(feasibility)
        self.ref_point = dict(ref_point) if ref_point is not None else None
        if mixed not in ("auto", "relax", "enumerate"):
            raise ValueError(f"mixed must be 'auto', 'relax' or 'enumerate', got {mixed!r}")
        self.mixed = mixed
        self.max_enumerate = int(max_enumerate)
        self.acquisition = _choice("acquisition", acquisition, ACQUISITIONS)
        self._active = self._acquisition_for(pool=False)  # the rule of the proposal in progress (or the last one)
        self.beta = float(beta)
        if not self.beta >= 0:
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        self.top_fraction = float(top_fraction)
        if not 0 < self.top_fraction < 1:
            raise ValueError(f"top_fraction must be between 0 and 1, got {top_fraction!r}")
        self.initial_design = _choice("initial_design", initial_design, INITIAL_DESIGNS)
        self.outcome_transform = _choice("outcome_transform", outcome_transform, tuple(models.OUTCOME_WARPS))
        self.kernel = _choice("kernel", kernel, tuple(models.KERNELS))
        if self.ref_point is not None:
            missing = [o.name for o in self.objectives if o.name not in self.ref_point]
            if missing:
                raise ValueError(f"ref_point lacks objectives {missing}")
        if self.num_restarts < 1 or self.raw_samples < self.num_restarts or self.mc_samples < 1:
            raise ValueError("need num_restarts >= 1, raw_samples >= num_restarts and mc_samples >= 1")
        # Model state: hyperparameters last fitted (warm start of the next fit), those the
        # last fit started from, and how many observations it saw. The fitted models
        # themselves are a cache, rebuilt exactly from these after load_state_dict.
        self._hyper: dict[str, models.Hyperparameters] = {}
        self._hyper_init: dict[str, models.Hyperparameters] = {}
        self._fit_key: int | None = None
        self._since_refit = 0
        self._refit_n = 0  # observations the hyperparameters were last fitted on
        self._models: dict[str, Any] | None = None
        self.last_decision: dict[str, Any] = {}
        self._decision: dict[str, Any] = {}

    # -- configuration and state ----------------------------------------------------
    @property
    def acquisition_name(self) -> str:
        if len(self.objectives) > 1:
            return "qLogNEHVI"
        if getattr(self, "outcome_constraints", None):
            return "qLogNEI(constrained)"
        return {"qlognei": "qLogNEI", "ucb": "qUCB", "ts": "Thompson", "pgood": "LogPGood"}[self._active]

    def _acquisition_for(self, pool: bool) -> str:
        """The acquisition rule used when choosing from a pool (``pool=True``) or proposing freely.

        ``auto``: ``pgood`` from a pool, ``qlognei`` freely. A pool is a finite library of
        candidates, and what a lab wants from it is its good members, found early and many of
        them (the benchmark's two targets); ``pgood`` keeps collecting them where expected
        improvement stops once the best is found. In a continuous space the aim is the optimum
        itself, which ``pgood`` does not refine (inside the good region every point is about
        equally likely good), so free proposals use noisy expected improvement.
        """
        if getattr(self, "outcome_constraints", None):
            return "qlognei"  # the constrained form (BoTorch's constraint handling)
        if self.acquisition == "auto":
            return "pgood" if pool else "qlognei"
        return self.acquisition

    def settings(self) -> dict[str, Any]:
        return {
            "model": f"SingleTaskGP({models.KERNELS[self.kernel]}-ARD, {self.outcome_transform})",
            "acquisition": self.acquisition_name,
            "acquisition_rule": self.acquisition,
            "beta": self.beta,
            "top_fraction": self.top_fraction,
            "initial_design": self.initial_design,
            "outcome_transform": self.outcome_transform,
            "kernel": self.kernel,
            "n_initial": self.n_initial,
            "num_restarts": self.num_restarts,
            "raw_samples": self.raw_samples,
            "mc_samples": self.mc_samples,
            "maxiter": self.maxiter,
            "min_distance": self.min_distance,
            "warm_start": self.warm_start,
            "refit_every": self.refit_every,
            "feasibility": self.feasibility,
            "ref_point": self.ref_point,
            "mixed": self.mixed,
            "max_enumerate": self.max_enumerate,
            **({"outcome_constraints": [c.to_dict() for c in self.outcome_constraints]} if self.outcome_constraints else {}),
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["model"] = {
            "hyper": self._hyper,
            "hyper_init": self._hyper_init,
            "fit_key": self._fit_key,
            "since_refit": self._since_refit,
            "refit_n": self._refit_n,
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        m = state.get("model") or {}
        self._hyper = {k: v for k, v in (m.get("hyper") or {}).items()}
        self._hyper_init = {k: v for k, v in (m.get("hyper_init") or {}).items()}
        self._fit_key = m.get("fit_key")
        self._since_refit = int(m.get("since_refit", 0))
        self._refit_n = int(m.get("refit_n", 0))
        self._models = None
        self.__dict__.pop("_sobol_cache", None)  # drawn from the seed, which may have changed

    def _on_new_observations(self) -> None:
        self._models = None

    # -- what the model believes -------------------------------------------------------
    def predict(self, points: pd.DataFrame) -> pd.DataFrame:
        """The model's mean and standard deviation of each objective at ``points``, in the objective's unit.

        ``points``: a DataFrame with a column per parameter in declared units (other columns are
        ignored). Returns ``<objective>_mean`` and ``<objective>_sd`` columns with the index of
        ``points``. The sd is that of the underlying function (without measurement noise). The
        same GP the planner decides with, fitted to the completed observations; the report's
        model view (``labflow.report.model``) shows the same numbers for a finished campaign.
        """
        if not isinstance(points, pd.DataFrame):
            raise SpaceError(f"predict() takes a pandas DataFrame, got {type(points).__name__}")
        X = self._encode_named(self._prediction_rows(points), "points")
        mean, sd = self._predict_unit(X)
        cols: dict[str, Any] = {}
        for j, o in enumerate(self.objectives):
            cols[f"{o.name}_mean"] = mean[:, j]
            cols[f"{o.name}_sd"] = sd[:, j]
        return pd.DataFrame(cols, index=points.index)

    def _prediction_rows(self, points: pd.DataFrame) -> pd.DataFrame:
        return points

    def _objective_models(self) -> list[Any]:
        """The fitted model of each objective, in objective order (fitting them if need be)."""
        if len(self.completed()) < 2:
            raise PlannerError(
                f"the model needs at least two completed observations; the planner has {len(self.completed())}",
                hint="observe() some results first",
            )
        if self.outcome_transform != "standardize":
            raise PlannerError(
                f"with outcome_transform={self.outcome_transform!r} the model predicts a warped objective, not values in its unit",
                hint="use outcome_transform='standardize' (the default) to predict in the objective's unit",
            )
        fitted = self._fit()
        if "objective" in fitted:
            return [fitted["objective"]]
        return [fitted[f"objective.{o.name}"] for o in self.objectives]

    def _predict_unit(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd (``n x objectives``, objectives' units and directions) at unit-cube rows."""
        Xm = models.tensor(self._model_input(X))
        fitted = self._objective_models()  # fitting needs gradients: outside no_grad
        means, sds = [], []
        with torch.no_grad():
            for model in fitted:
                post = model.posterior(Xm)
                means.append(post.mean.reshape(len(X), -1).numpy())
                sds.append(post.variance.clamp_min(0.0).sqrt().reshape(len(X), -1).numpy())
        signs = np.array([o.sign for o in self.objectives])
        return np.hstack(means) * signs, np.hstack(sds)

    def _predict_or_none(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if len(self.completed()) < 2 or self.outcome_transform != "standardize":
            return None
        try:
            return self._predict_unit(X)
        except (RuntimeError, ValueError, FloatingPointError) as exc:  # a model that cannot be fitted predicts nothing
            log.warning("no predictions for the suggestions: %s", _reason(exc))
            return None

    def _model_columns(self, name: str) -> list[int]:
        """The model-input columns of parameter ``name``."""
        sl = self.space.column_slice(name)
        return list(range(sl.start, sl.stop))

    def relevance(self, samples: int = 1024) -> pd.DataFrame:
        """Which parameters matter: the model's length scales and a variance-based sensitivity analysis.

        One row per parameter, sorted by the first objective's total index (most relevant first):

        * ``lengthscale``: the GP's ARD length scale along the parameter in the unit cube (for a
          categorical, the shortest of its one-hot columns): short = the objective changes fast along it;
        * ``<objective>_first_order`` and ``<objective>_total``: Sobol indices of the model's mean over
          the space -- the share of the predicted objective's variance due to the parameter alone, and
          with all its interactions (Saltelli 2010 and Jansen estimators, ``samples`` base points drawn
          from the space, seeded). Under constraints, points are drawn from the feasible space and
          one parameter is swapped at a time, so the indices describe the model around it.
        """
        models_ = self._objective_models()
        rng = np.random.default_rng([self.seed, self.n_observations, 17])
        A = self.space.encode(self.space.sample(samples, seed=rng))
        B = self.space.encode(self.space.sample(samples, seed=rng))
        mean_A, _ = self._predict_unit(A)
        mean_B, _ = self._predict_unit(B)
        var = np.var(np.vstack([mean_A, mean_B]), axis=0)
        var = np.where(var > 0, var, np.nan)
        rows = []
        for p in self.space.parameters:
            cols = self.space.column_slice(p.name)
            AB = A.copy()
            AB[:, cols] = B[:, cols]
            mean_AB, _ = self._predict_unit(AB)
            row: dict[str, Any] = {"parameter": p.name, "lengthscale": _shortest_lengthscale(models_[0], self._model_columns(p.name))}
            for j, o in enumerate(self.objectives):
                row[f"{o.name}_first_order"] = float(np.mean(mean_B[:, j] * (mean_AB[:, j] - mean_A[:, j])) / var[j])
                row[f"{o.name}_total"] = float(0.5 * np.mean((mean_A[:, j] - mean_AB[:, j]) ** 2) / var[j])
            rows.append(row)
        first = self.objectives[0].name
        out = pd.DataFrame(rows).set_index("parameter")
        return out.sort_values(f"{first}_total", ascending=False, kind="stable")

    # -- proposals ------------------------------------------------------------------
    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        self._decision = {}
        self._active = self._acquisition_for(pool=False)
        X_avoid = np.vstack([self._X_observed(), X_pending])
        if self._in_initial_design(len(X_pending)):
            X = self._initial_design(n, X_avoid)
            return self._decided(X, "sobol", "initial design", started)
        try:
            fitted = self._fit()
            acq = self._acquisition(fitted, X_pending)
            if self._active == "ts" and len(self.objectives) == 1:
                # Thompson sampling without a pool: the draws are made over fresh space-filling points
                raw = self._space_filling_pool(max(self.raw_samples, 4 * n), _SALT_OPT)
                picks, ts_values = self._thompson_picks(fitted, raw, np.arange(len(raw)), n)
                X, values = raw[picks], np.asarray(ts_values)
            else:
                with models.seeded(self.seed, self._asked, _SALT_OPT):
                    X, values = self._optimize(acq, n)
            if not np.all(np.isfinite(X)) or not np.all(np.isfinite(values)):
                raise FloatingPointError(f"acquisition optimum is not finite (values {values.tolist()})")
            X = self._clean(X, X_avoid, acq)
            self._decision["acquisition_values"] = [float(v) for v in values]
            return self._decided(X, self.acquisition_name, "", started)
        except Exception as exc:  # noqa: BLE001 - never wedge; the reason is kept for provenance
            return self._decided(self._fallback(n, X_avoid), "fallback", _reason(exc), started)

    def _propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        self._decision = {}
        self._active = self._acquisition_for(pool=True)
        free = self._free_choices(X_choices, np.vstack([self._X_observed(), X_pending]))
        if free.sum() < n:
            raise PlannerError(
                f"asked for {n} candidates but only {int(free.sum())} of {len(X_choices)} choices are neither measured nor pending",
                hint="the pool is exhausted: end the campaign or add choices",
            )
        if self._in_initial_design(len(X_pending)):
            picks = self._pool_initial_design(n, X_choices, free, X_pending)
            return self._decided(X_choices[picks], self.initial_design, "initial design", started)
        try:
            fitted = self._fit()
            if self._active == "ts" and len(self.objectives) == 1:
                picks, values = self._thompson_picks(fitted, X_choices, np.flatnonzero(free), n)
            else:
                picks, values = self._greedy_picks(fitted, X_pending, X_choices, np.flatnonzero(free), n)
            self._decision["acquisition_values"] = values
            return self._decided(X_choices[picks], self.acquisition_name, "", started)
        except Exception as exc:  # noqa: BLE001
            rng = np.random.default_rng([self.seed, self._asked, _SALT_FALLBACK])
            picks = rng.choice(np.flatnonzero(free), size=n, replace=False)
            return self._decided(X_choices[picks], "fallback", _reason(exc), started)

    def _greedy_picks(
        self, fitted: Mapping[str, Any], X_pending: np.ndarray, X_choices: np.ndarray, candidates: np.ndarray, n: int
    ) -> tuple[list[int], list[float]]:
        """Score the free rows with the acquisition; for a batch, each pick joins the pending points of the next."""
        acq = self._acquisition(fitted, X_pending, X_reference=X_choices[candidates])
        picks: list[int] = []
        values: list[float] = []
        for _ in range(n):
            s = acqf.score(acq, self._model_input(X_choices[candidates]))
            if not np.any(np.isfinite(s)) or np.any(np.isnan(s)):
                raise FloatingPointError("the acquisition is NaN or -inf over the whole pool")
            best = int(np.argmax(np.where(np.isfinite(s), s, -np.inf)))
            picks.append(int(candidates[best]))
            values.append(float(s[best]))
            candidates = np.delete(candidates, best)
            if len(picks) < n:
                acqf.set_pending(acq, self._model_input(np.vstack([X_pending, X_choices[picks]])))
        return picks, values

    def _thompson_picks(
        self, fitted: Mapping[str, Any], X_choices: np.ndarray, candidates: np.ndarray, n: int
    ) -> tuple[list[int], list[float]]:
        """Thompson sampling over the free rows: one joint posterior draw per pick, its best row.

        Pending experiments need no special care: they are not among the free rows, and separate
        draws spread a batch by themselves. Under sample faults, each draw is weighted by the
        probability of feasibility (rows likely to fail are drawn as failures).
        """
        model = fitted["objective"]
        Xc = models.tensor(self._model_input(X_choices[candidates]))
        with models.seeded(self.seed, self._asked, _SALT_MC), torch.no_grad():
            post = model.posterior(Xc)
            draws = post.rsample(torch.Size([n]))[..., 0].numpy()  # n x rows
            if "feasibility" in fitted:
                feasible = acqf.prob_feasible(fitted["feasibility"], X_choices[candidates])
                u = np.random.default_rng([self.seed, self._asked, _SALT_MC]).random((n, len(candidates)))
                draws = np.where(u < feasible[None, :], draws, -np.inf)
        picks: list[int] = []
        values: list[float] = []
        taken = np.zeros(len(candidates), dtype=bool)
        for draw in draws:
            draw = np.where(taken, -np.inf, draw)
            if not np.isfinite(draw).any():
                draw = np.where(taken, -np.inf, 0.0)
            j = int(np.argmax(draw))
            taken[j] = True
            picks.append(int(candidates[j]))
            values.append(float(draw[j]))
        return picks, values

    def _pool_initial_design(self, n: int, X_choices: np.ndarray, free: np.ndarray, X_pending: np.ndarray) -> list[int]:
        """``n`` free rows to start with: random rows, Sobol in the rows' rank space, a k-center design, or Sobol snapped.

        ``random`` is the published protocol (Liang et al. 2021). ``rank`` lays the planner's Sobol
        sequence over the rows' empirical quantiles, as the Sobol baseline does on a pool (decision
        0005): even coverage that follows the pool's own density. ``kcenter`` picks each row farthest from
        everything measured, pending or picked (the first one at random). ``sobol`` snaps the planner's
        Sobol points to the nearest free rows, which on pools that earlier campaigns sampled unevenly
        favours isolated, outlying rows.
        """
        rng = np.random.default_rng([self.seed, self._asked, _SALT_SOBOL])
        if self.initial_design == "random":
            return [int(j) for j in rng.choice(np.flatnonzero(free), size=n, replace=False)]
        if self.initial_design == "kcenter":
            taken = np.vstack([self._X_observed(), X_pending])
            rows = np.flatnonzero(free)
            if len(taken) == 0:
                first = int(rng.choice(rows))
                taken = X_choices[[first]]
                picked = [first]
            else:
                picked = []
            dist = _min_distance(X_choices[rows], taken)
            dist[np.isin(rows, picked)] = -np.inf
            while len(picked) < n:
                j = int(np.argmax(dist))
                picked.append(int(rows[j]))
                dist = np.minimum(dist, np.abs(X_choices[rows] - X_choices[rows[j]]).max(axis=1))
                dist[j] = -np.inf
            return picked
        if self.initial_design == "rank":
            from labflow.planners.baselines import match_design_to_rows, pool_ranks

            rows = np.flatnonzero(free)
            return [int(rows[j]) for j in match_design_to_rows(self._sobol(self._asked, n), pool_ranks(X_choices[rows]))]
        targets = self._sobol(self._asked, n)
        chosen = _nearest_free(targets, X_choices, free)
        return [int(np.flatnonzero((np.abs(X_choices - x).max(axis=1) < 1e-12) & free)[0]) for x in chosen]

    # -- steps ----------------------------------------------------------------------
    def _in_initial_design(self, n_pending: int) -> bool:
        n_completed = len(self.completed())
        return n_completed < 2 or self.n_observations + n_pending < self.n_initial

    def _training_sets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What each model learns from: the objectives (completed runs) and, after sample faults, feasibility."""
        X, Y = self.train_data()
        Y = models.OUTCOME_WARPS[self.outcome_transform](Y)
        if Y.shape[1] == 1:
            sets = {"objective": (X, Y)}
        else:  # one GP per objective: not slower to fit than one batched two-output GP (benchmarks/model_choices.py)
            sets = {f"objective.{o.name}": (X, Y[:, j : j + 1]) for j, o in enumerate(self.objectives)}
        if self.outcome_constraints:
            done = self.completed()
            for c in self.outcome_constraints:  # modelled as g(x) = -slack: the constraint holds where g <= 0
                sets[f"constraint.{c.name}"] = (X, np.array([[-c.slack(o.outcomes[c.name])] for o in done], dtype=float))
        faults = [o for o in self._observations if o.status is not Status.COMPLETED and o.sample_fault]
        if self.feasibility and faults:
            X_fail = self.space.encode([o.params for o in faults])
            labels = np.concatenate([np.ones(len(X)), np.zeros(len(X_fail))])[:, None]
            sets["feasibility"] = (np.vstack([X, X_fail]), labels)
        return sets

    def _fit(self) -> dict[str, Any]:
        """The fitted models for the current observations (cached until observations change)."""
        key = self.n_observations
        if self._models is not None and self._fit_key == key:
            return self._models
        restoring = self._fit_key == key and bool(self._hyper)
        # refit_every > 1: between refits, condition on the new data with the last hyperparameters
        reuse = not restoring and bool(self._hyper) and not self._refit_due(key)
        init = self._hyper_init if restoring else (dict(self._hyper) if self.warm_start or reuse else {})
        fitted: dict[str, Any] = {}
        t0 = time.perf_counter()
        for name, (X, Y) in self._training_sets().items():
            with models.seeded(self.seed, key, _SALT_FIT):
                if (restoring or reuse) and name in self._hyper:
                    model = self._fit_one(name, X, Y, self._hyper[name], False)
                else:
                    model = self._fit_one(name, X, Y, init.get(name), True)
            models.check_finite_model(model)
            fitted[name] = model
        if not restoring:
            self._since_refit = self._since_refit + 1 if reuse else 0
            if not reuse:
                self._refit_n = key
        self._hyper_init = {k: v for k, v in init.items() if k in fitted}
        self._hyper = {k: models.get_hyperparameters(m) for k, m in fitted.items()}
        self._fit_key = key
        self._models = fitted
        self._decision["fit_seconds"] = time.perf_counter() - t0
        self._decision["refit"] = not (restoring or reuse)
        return fitted

    def _refit_due(self, n_observations: int) -> bool:
        """Whether the hyperparameters are fitted anew for this many observations (else reused as they are)."""
        if self.refit_every == "auto":
            return n_observations <= AUTO_REFIT_UNTIL or n_observations >= self._refit_n * (1 + AUTO_REFIT_GROWTH)
        return self._since_refit + 1 >= self.refit_every

    def _acquisition(self, fitted: Mapping[str, Any], X_pending: np.ndarray, X_reference: np.ndarray | None = None) -> Any:
        """The acquisition function for the current models. ``X_reference``: the points whose top level
        ``pgood`` estimates (the free pool rows; by default a space-filling sample of the space)."""
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.monte_carlo import qUpperConfidenceBound
        from botorch.sampling import SobolQMCNormalSampler

        if len(self.objectives) == 1:
            model = fitted["objective"]
        else:
            from botorch.models import ModelListGP

            model = ModelListGP(*[fitted[f"objective.{o.name}"] for o in self.objectives])
        X_train, _ = self.train_data()
        sampler = SobolQMCNormalSampler(
            sample_shape=torch.Size([self.mc_samples]), seed=models.torch_seed(self.seed, self._asked, _SALT_MC)
        )
        with models.seeded(self.seed, self._asked, _SALT_MC):
            if len(self.objectives) == 1 and self._active == "pgood":
                if X_reference is None:
                    X_reference = self._space_filling_pool(max(self.raw_samples, 256), _SALT_MC)
                X_reference = np.vstack([X_train, self._model_input(X_reference)])
                level = acqf.top_level(model, X_reference, self.top_fraction)
                self._decision["top_level"] = level
                acq = acqf.LogProbabilityOfGood(model, level)
                acqf.set_pending(acq, X_pending)
            elif len(self.objectives) == 1 and self._active in ("ucb", "ts"):
                # "ts" draws its picks itself (_thompson_picks); this bound serves its replacements only.
                acq = qUpperConfidenceBound(
                    model,
                    beta=self.beta,
                    sampler=sampler,
                    X_pending=models.tensor(X_pending) if len(X_pending) else None,
                )
            elif len(self.objectives) == 1 and self.outcome_constraints:
                acq = self._constrained_acquisition(fitted, X_train, X_pending, sampler)
            elif len(self.objectives) == 1:
                acq = qLogNoisyExpectedImprovement(
                    model,
                    X_baseline=models.tensor(X_train),
                    sampler=sampler,
                    X_pending=models.tensor(X_pending) if len(X_pending) else None,
                    prune_baseline=True,
                    cache_root=True,
                )
            else:
                acq = self._hypervolume_acquisition(model, X_train, X_pending, sampler)
        if "feasibility" in fitted:
            acq = acqf.FeasibilityWeighted(acq, fitted["feasibility"])
        return acq

    def _constrained_acquisition(self, fitted: Mapping[str, Any], X_train: np.ndarray, X_pending: np.ndarray, sampler: Any) -> Any:
        """qLogNEI of the objective under the outcome constraints: outputs (objective, g_1, ..., g_k), feasible where every g <= 0."""
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP

        model = ModelListGP(fitted["objective"], *[fitted[f"constraint.{c.name}"] for c in self.outcome_constraints])
        k = len(self.outcome_constraints)
        return qLogNoisyExpectedImprovement(
            model,
            X_baseline=models.tensor(X_train),
            sampler=sampler,
            objective=GenericMCObjective(lambda Z, X=None: Z[..., 0]),
            constraints=[(lambda Z, i=i: Z[..., 1 + i]) for i in range(k)],
            X_pending=models.tensor(X_pending) if len(X_pending) else None,
            prune_baseline=True,
            cache_root=False,
        )

    def _hypervolume_acquisition(self, model: Any, X_train: np.ndarray, X_pending: np.ndarray, sampler: Any) -> Any:
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement

        ref = self.reference_point()
        assert ref is not None  # there are completed observations once the model is used
        oriented = [o.sign * ref[o.name] for o in self.objectives]
        self._decision["ref_point"] = ref
        return qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=oriented,
            X_baseline=models.tensor(X_train),
            sampler=sampler,
            X_pending=models.tensor(X_pending) if len(X_pending) else None,
            prune_baseline=True,
            alpha=0.0 if len(self.objectives) <= 3 else 1e-3,
        )

    def _optimize(self, acq: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Maximize the acquisition over the unit cube: ``n`` points and their acquisition values."""
        if self.space.nonlinear:
            return self._optimize_on_feasible_sample(acq, n)
        ineq, eq = self._unit_constraints()
        if ineq or eq:
            return self._optimize_constrained(acq, n, ineq, eq)
        combos = self._categorical_combinations()
        if self.mixed != "relax" and 1 < len(combos) <= self.max_enumerate:
            return self._optimize_enumerated(acq, n, combos)
        return acqf.optimize(
            acq,
            self.space.dim,
            n,
            num_restarts=self.num_restarts,
            raw_samples=self.raw_samples,
            inequality_constraints=ineq,
            equality_constraints=eq,
            maxiter=self.maxiter,
        )

    def _optimize_on_feasible_sample(self, acq: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Under nonlinear constraints (expressions, functions, NChooseK): the best of a seeded sample of feasible points.

        ``4 * raw_samples`` points are drawn from the feasible space (NChooseK chooses each point's
        zeros) and scored; a batch is picked greedily, each pick joining the pending points. No
        gradient step follows (it could leave the feasible set of a constraint BoTorch cannot
        differentiate, such as a Python function or a count of non-zeros): the resolution is
        that of the sample, and every point is feasible by construction.
        """
        rng = np.random.default_rng([self.seed, self._asked, _SALT_OPT])
        X = self.space.encode(self.space.sample(4 * self.raw_samples, seed=rng))
        base_pending = acq.X_pending
        picks: list[int] = []
        values: list[float] = []
        for _ in range(n):
            s = acqf.score(acq, self._model_input(X))
            s = np.where(np.isfinite(s), s, -np.inf)
            s[picks] = -np.inf
            j = int(np.argmax(s))
            picks.append(j)
            values.append(float(s[j]))
            if len(picks) < n:
                chosen = models.tensor(self._model_input(X[picks]))
                acq.set_X_pending(torch.cat([base_pending, chosen]) if base_pending is not None else chosen)
        if n > 1:
            acq.set_X_pending(base_pending)
        return X[picks], np.array(values)

    def _categorical_combinations(self) -> list[dict[int, float]]:
        """Every combination of categorical values, as fixed unit-cube columns (one-hot)."""
        import itertools

        from labflow.space import Categorical

        cats = [p for p in self.space.parameters if isinstance(p, Categorical)]
        if not cats:
            return []
        out = []
        for combo in itertools.product(*[range(len(p.choices)) for p in cats]):
            fixed: dict[int, float] = {}
            for p, k in zip(cats, combo):
                start = self.space.column_slice(p.name).start
                for j in range(len(p.choices)):
                    fixed[start + j] = 1.0 if j == k else 0.0
            out.append(fixed)
        return out

    def _optimize_enumerated(self, acq: Any, n: int, combos: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
        """One optimization per categorical combination (BoTorch's ``optimize_acqf_mixed``), greedy for a batch."""
        from botorch.optim import optimize_acqf_mixed

        bounds = acqf.unit_bounds(self.space.dim)
        with acqf.quiet_optimizer():
            X, values = optimize_acqf_mixed(
                acq,
                bounds=bounds,
                q=n,
                num_restarts=self.num_restarts,
                raw_samples=self.raw_samples,
                fixed_features_list=combos,
                options={"maxiter": self.maxiter, "batch_limit": self.num_restarts, "init_batch_limit": 1024},
                retry_on_optimization_warning=False,
            )
        return X.detach().reshape(n, self.space.dim).numpy().astype(float), np.atleast_1d(values.detach().numpy()).astype(float)

    def _optimize_constrained(self, acq: Any, n: int, ineq: list, eq: list) -> tuple[np.ndarray, np.ndarray]:
        """Greedy, one point at a time, from the best of ``raw_samples`` feasible points (the space's own
        hit-and-run sampler: BoTorch's polytope sampler took 1.4 s of a 1.9 s suggestion here)."""
        base_pending = acq.X_pending
        rows, values = [], []
        for j in range(n):
            rng = np.random.default_rng([self.seed, self._asked, _SALT_OPT, j])
            raw = self.space.encode(self.space.sample(self.raw_samples, seed=rng))
            scores = acqf.score(acq, self._model_input(raw))
            scores = np.where(np.isfinite(scores), scores, -np.inf)
            start = raw[np.argsort(-scores, kind="stable")[: self.num_restarts]]
            x, v = acqf.optimize(
                acq,
                self.space.dim,
                1,
                num_restarts=len(start),
                raw_samples=self.raw_samples,
                inequality_constraints=ineq,
                equality_constraints=eq,
                batch_initial_conditions=models.tensor(start)[:, None, :],
                maxiter=self.maxiter,
            )
            rows.append(x)
            values.append(v)
            if j < n - 1:
                chosen = models.tensor(np.vstack(rows))
                acq.set_X_pending(torch.cat([base_pending, chosen]) if base_pending is not None else chosen)
        if n > 1:
            acq.set_X_pending(base_pending)
        return np.vstack(rows), np.concatenate(values)

    def _model_input(self, X: np.ndarray) -> np.ndarray:
        """Unit-cube rows as the acquisition takes them (the same here; a fidelity value for the multi-fidelity planner)."""
        return X

    def _fit_one(self, name: str, X: np.ndarray, Y: np.ndarray, hyper: Any, fit: bool) -> Any:
        """Fit (or, with ``fit=False``, restore) the model called ``name``."""
        if name == "feasibility":
            return models.fit_gp(X, Y, warm_start=hyper, fit=fit)
        return models.fit_gp(X, Y, warm_start=hyper, fit=fit, kernel=self.kernel)

    def _unit_constraints(self) -> tuple[list, list]:
        """The space's linear constraints in the unit cube, as BoTorch's (indices, coefficients, rhs)."""
        unit = getattr(self.space, "unit_constraints", None)
        if unit is None:
            return [], []
        ineq, eq = [], []
        for idx, coef, rhs, kind in unit():
            entry = (torch.as_tensor(idx, dtype=torch.long), models.tensor(coef), float(rhs))
            (eq if kind == "eq" else ineq).append(entry)
        return ineq, eq

    def _repair(self, X: np.ndarray) -> np.ndarray:
        """Make unit-cube points satisfy the space's constraints (the nearest feasible point)."""
        repair = getattr(self.space, "repair", None)
        return repair(X) if repair is not None else X

    def _clean(self, X: np.ndarray, X_avoid: np.ndarray, acq: Any | None) -> np.ndarray:
        """Snap, repair, and replace any point too close to a measured, pending or fellow point."""
        X = self._repair(self.space.snap(np.clip(X, 0.0, 1.0)))
        out: list[np.ndarray] = []
        for x in X:
            avoid = np.vstack([X_avoid, *out]) if out else X_avoid
            if _too_close(x[None, :], avoid, self.min_distance)[0]:
                x = self._replacement(avoid, acq)
            out.append(x)
        return np.array(out)

    def _replacement(self, avoid: np.ndarray, acq: Any | None) -> np.ndarray:
        """The best fresh space-filling point that is not too close to ``avoid``."""
        pool = self._space_filling_pool(max(self.raw_samples, 64), _SALT_REPLACE, salt2=len(avoid))
        ok = ~_too_close(pool, avoid, self.min_distance)
        if not ok.any():
            raise PlannerError(
                "every point of the space has been measured or is pending",
                hint="the space is exhausted: widen it or end the campaign",
            )
        pool = pool[ok]
        if acq is None:
            return pool[int(np.argmax(_min_distance(pool, avoid)))]
        s = acqf.score(acq, self._model_input(pool))
        s = np.where(np.isfinite(s), s, -np.inf)
        if not np.isfinite(s).any():
            return pool[int(np.argmax(_min_distance(pool, avoid)))]
        return pool[int(np.argmax(s))]

    # -- space-filling designs ---------------------------------------------------------
    def _sobol(self, start: int, n: int) -> np.ndarray:
        """Points ``start .. start+n-1`` of the planner's scrambled Sobol sequence."""
        need = start + n
        cache = getattr(self, "_sobol_cache", None)
        if cache is None or len(cache) < need:
            m = max(5, math.ceil(math.log2(max(need, 2))))
            cache = qmc.Sobol(d=self.space.dim, scramble=True, seed=np.random.default_rng([self.seed, _SALT_SOBOL])).random_base2(m)
            self._sobol_cache = cache
        return cache[start:need]

    def _space_filling_pool(self, size: int, salt: int, salt2: int = 0) -> np.ndarray:
        """``size`` snapped, feasible points scattered over the space (seeded by the state)."""
        rng = np.random.default_rng([self.seed, self._asked, salt, salt2])
        constrained = getattr(self.space, "constraints", ()) or getattr(self.space, "nonlinear", ())
        if constrained:
            raw = self.space.encode(self.space.sample(size, seed=rng))
        else:
            raw = qmc.Sobol(d=self.space.dim, scramble=True, seed=rng).random(size)
        return self._repair(self.space.snap(raw))

    def _initial_design(self, n: int, X_avoid: np.ndarray) -> np.ndarray:
        if getattr(self.space, "constraints", ()) or getattr(self.space, "nonlinear", ()):
            X = self._space_filling_pool(max(64, 8 * n), _SALT_SOBOL)
            picks = _maximin(X, X_avoid, n, self.min_distance)
            return self._clean(X[picks], X_avoid, None)
        return self._clean(self._sobol(self._asked, n), X_avoid, None)

    def _fallback(self, n: int, X_avoid: np.ndarray) -> np.ndarray:
        """``n`` space-filling points, each the farthest from everything measured, pending or picked."""
        X = self._space_filling_pool(max(256, 16 * n), _SALT_FALLBACK)
        picks = _maximin(X, X_avoid, n, self.min_distance)
        if len(picks) < n:
            raise PlannerError("every point of the space has been measured or is pending")
        return X[picks]

    def _free_choices(self, X_choices: np.ndarray, X_avoid: np.ndarray) -> np.ndarray:
        free = ~_too_close(X_choices, X_avoid, 1e-9) if len(X_avoid) else np.ones(len(X_choices), dtype=bool)
        feasible = getattr(self.space, "feasible_unit", None)
        if feasible is not None:
            free &= feasible(X_choices)
        return free

    def _decided(self, X: np.ndarray, generator: str, reason: str, started: float) -> np.ndarray:
        self.last_generator = generator
        decision = dict(self._decision)
        decision.update(
            {
                "generator": generator,
                "reason": reason,
                "n_training": len(self.completed()),
                "seconds": time.perf_counter() - started,
            }
        )
        if generator != "sobol" and self._models:
            decision["model"] = {k: models.describe_model(m) for k, m in self._models.items()}
        if generator == "fallback":
            log.warning("%s planner fell back to a space-filling suggestion: %s", self.name, reason)
        self.last_decision = decision
        return X


AUTO_REFIT_UNTIL = 20
AUTO_REFIT_GROWTH = 0.10

ACQUISITIONS = ("auto", "qlognei", "ucb", "ts", "pgood")
"""``auto``: ``pgood`` when choosing from a pool, ``qlognei`` when proposing freely; ``qlognei``: noisy expected improvement (log form); ``ucb``: upper confidence bound ``mean + sqrt(beta) * sd``
(MC form, so pending experiments count); ``ts``: Thompson sampling; ``pgood``: the probability of being among the
best ``top_fraction`` of the space (active search). Several objectives always use qLogNEHVI."""

INITIAL_DESIGNS = ("sobol", "random", "rank", "kcenter")
"""How pool campaigns start (free proposals always start from the scrambled Sobol sequence)."""


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {list(allowed)}, got {value!r}")
    return value


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shortest_lengthscale(model: Any, columns: list[int]) -> float:
    """The shortest ARD length scale among ``columns`` of a fitted GP (NaN when it has none)."""
    for _, module in model.named_modules():
        ls = getattr(module, "lengthscale", None)
        if ls is not None and hasattr(ls, "detach"):
            arr = ls.detach().cpu().numpy().reshape(-1)
            cols = [c for c in columns if c < len(arr)]
            return float(arr[cols].min()) if cols else math.nan
    return math.nan


def _min_distance(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """For each row of X, the smallest largest-column difference to a row of Y (inf when Y is empty)."""
    if len(Y) == 0:
        return np.full(len(X), np.inf)
    out = np.empty(len(X))
    for start in range(0, len(X), 256):
        block = X[start : start + 256]
        out[start : start + 256] = np.abs(block[:, None, :] - Y[None, :, :]).max(axis=2).min(axis=1)
    return out


def _too_close(X: np.ndarray, Y: np.ndarray, tol: float) -> np.ndarray:
    return _min_distance(X, Y) < max(tol, 1e-12)


def _maximin(X: np.ndarray, X_avoid: np.ndarray, n: int, tol: float) -> list[int]:
    """Greedy maximin: pick ``n`` rows of X, each the farthest from X_avoid and the rows picked before."""
    dist = _min_distance(X, X_avoid)
    picks: list[int] = []
    for _ in range(n):
        j = int(np.argmax(dist))
        if not dist[j] >= tol:
            break
        picks.append(j)
        dist = np.minimum(dist, np.abs(X - X[j]).max(axis=1))
    return picks


def _nearest_free(targets: np.ndarray, X_choices: np.ndarray, free: np.ndarray) -> np.ndarray:
    free = free.copy()
    out = []
    for x in targets:
        d = np.where(free, ((X_choices - x) ** 2).sum(axis=1), np.inf)
        j = int(np.argmin(d))
        free[j] = False
        out.append(X_choices[j])
    return np.array(out)
