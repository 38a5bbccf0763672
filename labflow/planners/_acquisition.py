"""Acquisition helpers for the Bayesian planners: build, score a pool, optimize over the cube.

Kept apart from the models (``_models.py``) and the planners, as BoTorch keeps
``models/``, ``acquisition/`` and ``optim/`` apart. All tensors are float64.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.exceptions.warnings import BotorchWarning, OptimizationWarning
from botorch.optim import optimize_acqf
from botorch.utils.transforms import t_batch_mode_transform
from linear_operator.utils.warnings import NumericalWarning
from torch.distributions import Normal

from labflow.planners._models import tensor

Constraint = tuple[torch.Tensor, torch.Tensor, float]
"""BoTorch's linear constraint: (column indices, coefficients, right-hand side)."""


class FeasibilityWeighted(AcquisitionFunction):
    """``log acq(X) + sum_q log P(feasible | x_q)``: a log-acquisition multiplied by the probability of feasibility.

    ``feasibility_model`` is a GP fitted to labels 1 (the experiment produced a result) and
    0 (the sample failed). Its posterior at ``x`` gives ``P(feasible) = Phi((mu - 1/2) / sigma)``:
    about 1 where experiments succeeded, about 0 where samples failed, and undecided
    (one half) far from any data. Points of a q-batch are treated as independent.
    """

    def __init__(self, acq: AcquisitionFunction, feasibility_model: Any, floor: float = 1e-6) -> None:
        super().__init__(model=acq.model)
        self.acq = acq
        self.feasibility_model = feasibility_model
        self.floor = float(floor)

    @t_batch_mode_transform()
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.acq(X) + log_prob_feasible(self.feasibility_model, X).sum(-1)

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        self.acq.set_X_pending(X_pending)

    @property
    def X_pending(self) -> torch.Tensor | None:
        return getattr(self.acq, "X_pending", None)


class CostWeightedImprovement(AcquisitionFunction):
    """Log expected improvement at the target fidelity, weighted by how much a cheaper fidelity tells and what it saves.

    For a candidate ``x`` at fidelity value ``s`` (the last input column; the target is 1)::

        log EI(x, target) + log corr(f(x, s), f(x, target)) + log(cost(target) / cost(s))

    This is the augmented expected improvement of Huang et al. (2006, Struct. Multidisc.
    Optim. 32:369) in log form. The posterior correlation between the two fidelities at ``x``
    falls as measurements at ``s`` accumulate near ``x`` (what is left to learn about the
    target there is the part the cheap fidelity cannot see), so the planner moves to the
    target fidelity once the cheap one has said what it can. ``log_ei`` is a
    ``qLogNoisyExpectedImprovement`` of the same model, which carries the pending points.
    """

    def __init__(self, model: Any, log_ei: AcquisitionFunction, fidelity_column: int, cost_of: Any, target_cost: float) -> None:
        super().__init__(model=model)
        self.log_ei = log_ei
        self.fidelity_column = int(fidelity_column)
        self.cost_of = cost_of
        self.target_cost = float(target_cost)

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Xt = X.clone()
        Xt[..., self.fidelity_column] = 1.0
        post = self.model.posterior(torch.cat([X, Xt], dim=-2))
        cov = post.distribution.covariance_matrix
        corr = cov[..., 0, 1] / (cov[..., 0, 0] * cov[..., 1, 1]).clamp_min(1e-24).sqrt()
        cost = self.cost_of(X)[..., 0, 0]
        return self.log_ei(Xt) + corr.clamp(1e-9, 1.0).log() + (self.target_cost / cost).log()

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        self.log_ei.set_X_pending(X_pending)

    @property
    def X_pending(self) -> torch.Tensor | None:
        return getattr(self.log_ei, "X_pending", None)


def unit_bounds(dim: int) -> torch.Tensor:
    """The ``2 x dim`` bounds of the unit cube that planners optimize over."""
    return torch.stack([torch.zeros(dim, dtype=torch.float64), torch.ones(dim, dtype=torch.float64)])


@contextlib.contextmanager
def quiet_optimizer():
    """Silence the warnings acquisition optimization emits routinely (restarts that stop early,
    jitter added to near-singular covariances); failures still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizationWarning)
        warnings.simplefilter("ignore", BotorchWarning)
        warnings.simplefilter("ignore", NumericalWarning)
        yield


def log_prob_feasible(feasibility_model: Any, X: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """``log P(feasible)`` at each point of ``X`` (``batch x q x D`` -> ``batch x q``)."""
    post = feasibility_model.posterior(X)
    mean = post.mean[..., 0]
    std = post.variance[..., 0].clamp_min(1e-12).sqrt()
    p = Normal(0.0, 1.0).cdf((mean - 0.5) / std)
    return p.clamp_min(floor).log()


def prob_feasible(feasibility_model: Any, X: np.ndarray) -> np.ndarray:
    """``P(feasible)`` at each row of ``X`` (``n x D`` in the unit cube)."""
    with torch.no_grad():
        return log_prob_feasible(feasibility_model, tensor(X)[:, None, :]).exp()[:, 0].numpy()


def score(acq: AcquisitionFunction, X: np.ndarray, chunk: int = 512) -> np.ndarray:
    """The acquisition value of each row of ``X`` alone (q = 1), in chunks, without gradients."""
    out = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", BotorchWarning)
        warnings.simplefilter("ignore", NumericalWarning)  # jitter added to a near-singular covariance
        for start in range(0, len(X), chunk):
            out.append(acq(tensor(X[start : start + chunk])[:, None, :]).reshape(-1).numpy())
    return np.concatenate(out) if out else np.empty(0)


def set_pending(acq: AcquisitionFunction, X_pending: np.ndarray) -> None:
    """Tell ``acq`` which points are pending (none when the array is empty)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BotorchWarning)
        acq.set_X_pending(tensor(X_pending) if len(X_pending) else None)


def optimize(
    acq: AcquisitionFunction,
    dim: int,
    q: int,
    *,
    num_restarts: int,
    raw_samples: int,
    inequality_constraints: Sequence[Constraint] = (),
    equality_constraints: Sequence[Constraint] = (),
    fixed_features: dict[int, float] | None = None,
    batch_initial_conditions: torch.Tensor | None = None,
    maxiter: int = 200,
    sequential: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximize ``acq`` over ``[0, 1]^dim`` for ``q`` points (greedy sequential when q > 1, unless ``sequential=False``).

    Returns (``q x dim`` array, acquisition value of each greedy step).
    """
    bounds = unit_bounds(dim)
    with quiet_optimizer():
        X, values = optimize_acqf(
            acq,
            bounds=bounds,
            q=q,
            num_restarts=num_restarts,
            raw_samples=None if batch_initial_conditions is not None else raw_samples,
            batch_initial_conditions=batch_initial_conditions,
            inequality_constraints=list(inequality_constraints) or None,
            equality_constraints=list(equality_constraints) or None,
            fixed_features=fixed_features,
            sequential=(q > 1) if sequential is None else (sequential and q > 1),
            options={"maxiter": maxiter, "batch_limit": max(num_restarts, 1), "init_batch_limit": 1024},
            retry_on_optimization_warning=False,
        )
    return X.detach().reshape(q, dim).numpy().astype(float), np.atleast_1d(values.detach().numpy()).astype(float)


class LogProbabilityOfGood(AcquisitionFunction):
    """``log P(f(x) > level)``: how likely a point is to be among the best ``top_fraction`` of the space.

    This is the one-step rule of *active search* (Garnett et al., ICML 2012), whose goal is to
    collect as many good points as possible rather than one best point: expected-improvement
    rules value almost nothing below the incumbent, so once the best is found they stop
    collecting the rest, while this one keeps picking whatever is most likely good. ``level``
    is the model's own estimate of the top-``top_fraction`` quantile of f (see
    :func:`top_level`). Pending points are taken as measured at their posterior mean (the
    "kriging believer"): they keep their neighbourhood's mean and shrink its uncertainty, so a
    batch spreads over several likely-good places instead of piling onto one.
    """

    def __init__(self, model: Any, level: float) -> None:
        super().__init__(model=model)
        self.base_model = model
        self.level = float(level)
        self.X_pending: torch.Tensor | None = None

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        self.X_pending = X_pending
        if X_pending is None or len(X_pending) == 0:
            self.model = self.base_model
            return
        with torch.no_grad():
            believed = self.base_model.posterior(X_pending).mean
        self.model = self.base_model.condition_on_observations(X=X_pending, Y=believed)

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        post = self.model.posterior(X)
        mean = post.mean[..., 0, 0]
        sd = post.variance[..., 0, 0].clamp_min(1e-18).sqrt()
        return torch.special.log_ndtr((mean - self.level) / sd)


def top_level(model: Any, X_reference: np.ndarray, top_fraction: float, samples: int = 32) -> float:
    """The model's estimate of the top-``top_fraction`` quantile of f over ``X_reference``.

    Each of ``samples`` draws of f at the reference points (from the posterior marginals, under
    the caller's seeded torch RNG) gives its own quantile; their mean is the level. Posterior
    means alone would shrink towards the average away from the data and so set the bar too low;
    the draws keep the spread the model believes in. Marginal draws cost one posterior call,
    where joint draws would need a Cholesky factor of every reference point (and jitter for the
    near-duplicates that pools contain); they give the same level on average.
    """
    with torch.no_grad():
        post = model.posterior(tensor(X_reference))
        mean = post.mean[..., 0]
        sd = post.variance[..., 0].clamp_min(0.0).sqrt()
        draws = mean + sd * torch.randn(samples, len(mean), dtype=mean.dtype)
        return float(torch.quantile(draws, 1.0 - top_fraction, dim=-1).mean())
