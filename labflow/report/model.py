"""The model's view of a campaign: the surrogate refitted from the record, sliced and cross-validated.

Theory of operation
-------------------
The report does not store or trust a model from the campaign: it **refits** one. A
:class:`~labflow.planners.BayesianPlanner` with the campaign's space, objectives and seed
is told every recorded experiment (completed and failed), and its Gaussian process (the
model the planner would use to decide the next experiment) is asked for posterior means
and standard deviations. The GP lives in the planner's unit-cube encoding with outcomes
oriented so that larger is better; everything returned here is back in the recipe's units
and the objectives' directions.

* **Slices** (:meth:`ModelView.slices`): each parameter swept over its range while every
  other parameter stays at the best experiment's value. Means with +-2 sd bands of the
  latent function (no measurement noise).
* **2-D slice** (:meth:`ModelView.slice_2d`): the two continuous parameters the model finds
  most relevant (shortest ARD length scales in the unit cube), others at the best point.
* **Cross-validation** (:meth:`ModelView.cross_validate`): k-fold (k = min(5, n)); each fold's
  GP is conditioned on the other folds with the hyperparameters fitted on all the data (no
  refit per fold: cheap, deterministic, and slightly optimistic, as the hyperparameters have
  seen the held-out points). Predictions carry +-2 sd *including* the fitted noise, so that
  about 95 % of points should fall inside their bars when the model is calibrated. Reports
  R^2, RMSE and that coverage.

A slice is not a partial dependence (which averages over the other parameters); it shows
what the model believes around the best point, where the planner looks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labflow.objectives import Objective
from labflow.records import Observation, Status
from labflow.space import Categorical, Integer, Space
from labflow.store.provenance import CampaignRecord

__all__ = ["MIN_OBSERVATIONS", "ModelView", "Slice", "fit_model_view", "torch_threads"]

MIN_OBSERVATIONS = 4
"""Fewer completed experiments than this: no model's view (a GP on 3 points says little)."""


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run a block with torch limited to ``n`` intra-op threads, restoring the setting after.

    A GP on a few hundred points gains nothing from more threads, and on a busy machine extra
    threads spin against each other: measured on 2 cores under load (medians of 3,
    ``benchmarks/model_choices.py --only threads``), fitting 200 points took 1.3 s with one
    thread and 15.6 s with two.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Slice:
    """One parameter swept through the best point: x in the parameter's unit (labels for a categorical)."""

    parameter: str
    x: list[Any]
    mean: np.ndarray  # len(x) x m, objectives' units
    sd: np.ndarray  # len(x) x m
    at: Any  # the best point's value of this parameter
    categorical: bool = False


class ModelView:
    """A refitted surrogate for a campaign record (see the module docstring)."""

    def __init__(self, record: CampaignRecord, planner: Any, models: list[Any]) -> None:
        self.record = record
        self.space: Space = record.space
        self.objectives: list[Objective] = list(record.objectives)
        self.planner = planner
        self.models = list(models)
        """One GP per objective, or one GP with an output per objective (outputs in objective order)."""
        done = record.completed
        first = self.objectives[0]
        row = done.loc[(pd.to_numeric(done[first.name]) * first.sign).idxmax()]
        self.best = {p: _plain(row[p]) for p in self.space.names}

    # -- predictions --------------------------------------------------------------------
    def predict(self, points: pd.DataFrame | list[dict[str, Any]], *, noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd (``n x m``, objectives' units) at points given in the recipe's units."""
        X = self.space.encode(points)
        return self._predict_unit(X, self.models, noise=noise)

    def _predict_unit(self, X: np.ndarray, models: list[Any], *, noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        import torch

        means, variances = [], []
        with torch.no_grad():
            for model in models:
                post = model.posterior(torch.as_tensor(X, dtype=torch.float64), observation_noise=noise)
                means.append(post.mean.detach().cpu().numpy().reshape(len(X), -1))
                variances.append(post.variance.detach().cpu().numpy().reshape(len(X), -1))
        mean, var = np.hstack(means), np.hstack(variances)
        signs = np.array([o.sign for o in self.objectives])
        return mean * signs, np.sqrt(np.clip(var, 0.0, None))

    # -- slices ---------------------------------------------------------------------------
    def slices(self, n: int = 60, max_parameters: int = 8) -> list[Slice]:
        """One :class:`Slice` per parameter (the first ``max_parameters``)."""
        out = []
        for p in self.space.parameters[:max_parameters]:
            xs = _grid(p, n)
            rows = [{**self.best, p.name: x} for x in xs]
            mean, sd = self.predict(rows)
            out.append(Slice(p.name, list(xs), mean, sd, self.best[p.name], isinstance(p, Categorical)))
        return out

    def relevance(self) -> dict[str, float]:
        """Inverse ARD length scale of each continuous parameter (unit cube): larger = the model varies faster along it."""
        ls = _lengthscales(self.models[0])
        out: dict[str, float] = {}
        if ls is None:
            return out
        for p in self.space.parameters:
            if isinstance(p, Categorical):
                continue
            cols = self.space.column_slice(p.name)
            out[p.name] = float(1.0 / np.min(ls[cols])) if len(ls[cols]) else 0.0
        return out

    def slice_2d(self, n: int = 40) -> dict[str, Any] | None:
        """Mean and sd of the first objective on an ``n x n`` grid over the two most relevant continuous parameters."""
        rel = self.relevance()
        if len(rel) < 2:
            return None
        a, b = sorted(rel, key=lambda k: -rel[k])[:2]
        pa, pb = self.space[a], self.space[b]
        xa, xb = _grid(pa, n), _grid(pb, n)
        rows = [{**self.best, a: u, b: v} for v in xb for u in xa]
        mean, sd = self.predict(rows)
        return {
            "x": a, "y": b, "xs": np.asarray(xa, dtype=float), "ys": np.asarray(xb, dtype=float),
            "mean": mean[:, 0].reshape(len(xb), len(xa)), "sd": sd[:, 0].reshape(len(xb), len(xa)),
            "best": (self.best[a], self.best[b]),
        }

    # -- cross-validation -------------------------------------------------------------------
    def cross_validate(self, folds: int = 5, seed: int = 0) -> dict[str, Any]:
        """k-fold predictions for every completed experiment; see the module docstring."""
        from labflow.planners import _models

        X, Y = self.planner.train_data()  # unit cube; oriented
        n = len(X)
        k = max(2, min(int(folds), n))
        order = np.random.default_rng(seed).permutation(n)
        hypers = [_models.get_hyperparameters(m) for m in self.models]
        outputs = np.array_split(np.arange(Y.shape[1]), len(self.models))  # columns of Y each model predicts
        mean = np.full(Y.shape, np.nan)
        sd = np.full(Y.shape, np.nan)
        for f in range(k):
            test = order[f::k]
            train = np.setdiff1d(order, test)
            if len(train) < 2:
                continue
            fold = [_models.fit_gp(X[train], Y[train][:, cols], warm_start=h, fit=False) for h, cols in zip(hypers, outputs)]
            mu, s = self._predict_unit(X[test], fold, noise=True)
            mean[test], sd[test] = mu, s
        signs = np.array([o.sign for o in self.objectives])
        measured = Y * signs
        metrics = {}
        for j, o in enumerate(self.objectives):
            ok = np.isfinite(mean[:, j])
            y, mu, s = measured[ok, j], mean[ok, j], sd[ok, j]
            ss = float(np.sum((y - y.mean()) ** 2))
            metrics[o.name] = {
                "r2": float(1 - np.sum((y - mu) ** 2) / ss) if ss > 0 else math.nan,
                "rmse": float(np.sqrt(np.mean((y - mu) ** 2))) if len(y) else math.nan,
                "coverage95": float(np.mean(np.abs(y - mu) <= 2 * s)) if len(y) else math.nan,
                "n": int(ok.sum()),
            }
        return {"measured": measured, "mean": mean, "sd": sd, "folds": k, "metrics": metrics}


def fit_model_view(record: CampaignRecord) -> ModelView | None:
    """Refit the campaign's surrogate from its record; ``None`` with fewer than :data:`MIN_OBSERVATIONS` completed experiments."""
    from labflow.planners import make_planner

    if len(record.completed) < MIN_OBSERVATIONS:
        return None
    seed = int(record.attrs.get("seed", 0) or 0)
    planner = make_planner("bayesian", record.space, record.objectives, seed=seed)
    for row in record.experiments.to_dict("records"):
        params = {p: _plain(row[p]) for p in record.space.names}
        status = Status(row["status"]) if row.get("status") in {s.value for s in Status} else Status.FAILED
        outcomes = {o.name: float(row[o.name]) for o in record.objectives} if status is Status.COMPLETED else {}
        try:
            planner.tell(Observation(str(row.get("uid", "")), params, outcomes, status, str(row.get("reason", ""))))
        except Exception:  # noqa: BLE001 - a row the space rejects (edited file, wider old space) is left out
            continue
    if len(planner.completed()) < MIN_OBSERVATIONS:
        return None
    return ModelView(record, planner, _planner_models(planner))


def _planner_models(planner: Any) -> list[Any]:
    """The planner's fitted objective models, in objective order.

    BayesianPlanner has no public accessor yet: its fitted models are ``_fit()``, keyed
    ``"objective"`` (one GP for all objectives) or ``"objective.<name>"`` (one per objective).
    """
    fitted = planner._fit()  # noqa: SLF001 - see the docstring
    if "objective" in fitted:
        return [fitted["objective"]]
    return [fitted[f"objective.{o.name}"] for o in planner.objectives]


def _grid(p: Any, n: int) -> list[Any]:
    if isinstance(p, Categorical):
        return list(p.choices)
    if isinstance(p, Integer):
        span = p.high - p.low
        if span + 1 <= n:
            return list(range(int(p.low), int(p.high) + 1))
        return sorted({int(round(v)) for v in np.linspace(p.low, p.high, n)})
    if getattr(p, "log", False):
        return list(np.geomspace(p.low, p.high, n))
    return list(np.linspace(p.low, p.high, n))


def _lengthscales(model: Any) -> np.ndarray | None:
    for _, module in model.named_modules():
        ls = getattr(module, "lengthscale", None)
        if ls is not None and hasattr(ls, "detach"):
            arr = ls.detach().cpu().numpy()
            # multi-output models batch their kernels: take the shortest over outputs per column
            return arr.reshape(-1, arr.shape[-1]).min(axis=0)
    return None


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
