"""Surrogate models for the Bayesian planners: Gaussian processes on the unit cube.

Theory of operation
-------------------
Every model is a BoTorch ``SingleTaskGP`` (or ``SingleTaskMultiFidelityGP``) on inputs
already in ``[0, 1]^D`` (the :class:`~labflow.space.Space` encoding), with an RBF kernel
that has one length scale per input column (ARD, BoTorch's dimension-scaled priors) and a
``Standardize`` outcome transform. Fitting maximizes the marginal likelihood with
``fit_gpytorch_mll`` (L-BFGS-B).

Fitting dominates a suggestion's latency, so each fit starts from the hyperparameters of the
previous one (a *warm start*): measured at d = 6 on two loaded cores (medians of 3,
``benchmarks/model_choices.py``), 50 observations fit in 3.4 s warm against 17.9 s cold, 200 in
8.3 s against 12.5 s. Because the warm start makes
a fit depend on the previous one, the hyperparameters are part of the planner's state
(:class:`Hyperparameters`), so that a planner restored from ``state_dict`` decides exactly
as the original would have.

Everything here runs in float64 under a forked, seeded torch RNG (see :func:`seeded`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from botorch.exceptions.warnings import InputDataWarning, OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.warnings import NumericalWarning

DTYPE = torch.float64
FIT_MAXITER = 300
"""L-BFGS-B iterations at most per GP fit (converged fits here take well under 100)."""

KERNELS = {"rbf": "RBF", "matern52": "Matern-5/2"}
"""Kernels a planner may name: both with one length scale per input column and BoTorch's
dimension-scaled log-normal length-scale prior (Hvarfner et al. 2024), as ``SingleTaskGP`` builds them."""


def _rank_normal(Y: np.ndarray) -> np.ndarray:
    """Each column replaced by the normal scores of its ranks (ties share their mean rank)."""
    from scipy.stats import norm, rankdata

    n = len(Y)
    return np.column_stack([norm.ppf((rankdata(Y[:, j]) - 0.5) / n) for j in range(Y.shape[1])]) if n else Y


def _signed_log(Y: np.ndarray) -> np.ndarray:
    """``log(1 + (y - min))`` per column, after scaling each column to unit spread (compresses heavy upper tails)."""
    if not len(Y):
        return Y
    spread = np.where(np.ptp(Y, axis=0) > 0, np.ptp(Y, axis=0), 1.0)
    return np.log1p((Y - Y.min(axis=0)) / spread * 10.0)


OUTCOME_WARPS = {
    "standardize": lambda Y: Y,
    "rank": _rank_normal,
    "log": _signed_log,
}
"""Monotone warps of the (larger-is-better) objective values before the GP sees them; the GP then
standardizes. A monotone warp keeps which points are better, so pool choices stay meaningful."""

Hyperparameters = dict[str, list]
"""A model's raw hyperparameters by name, as nested lists of floats (JSON-serializable, exact)."""


def tensor(a: np.ndarray) -> torch.Tensor:
    """A float64 tensor from an array."""
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=DTYPE)


def torch_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (e.g. the planner's seed and how much it has been asked)."""
    return int(np.random.SeedSequence([abs(int(k)) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@contextlib.contextmanager
def seeded(*keys: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded from ``keys``, restoring the caller's RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(*keys))
        yield


def get_hyperparameters(model: torch.nn.Module) -> Hyperparameters:
    """The model's raw hyperparameters (trainable parameters) as plain lists."""
    return {name: p.detach().cpu().tolist() for name, p in model.named_parameters()}


def set_hyperparameters(model: torch.nn.Module, hyper: Mapping[str, Any] | None) -> bool:
    """Load ``hyper`` into ``model`` where names and shapes agree. Returns True when all of them did."""
    if not hyper:
        return False
    params = dict(model.named_parameters())
    loaded = 0
    with torch.no_grad():
        for name, value in hyper.items():
            p = params.get(name)
            if p is None:
                continue
            t = torch.as_tensor(value, dtype=p.dtype)
            if t.shape != p.shape:
                continue
            p.copy_(t)
            loaded += 1
    return loaded == len(params)


def fit_gp(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    warm_start: Mapping[str, Any] | None = None,
    fit: bool = True,
    model_cls: type = SingleTaskGP,
    kernel: str = "rbf",
    **model_kwargs: Any,
) -> SingleTaskGP:
    """Build a GP on ``X`` (``n x D`` in the unit cube) and ``Y`` (``n x m``, larger is better) and fit it.

    ``warm_start`` hyperparameters (from :func:`get_hyperparameters`) initialize the fit; with
    ``fit=False`` they are used as they are (restoring a model exactly, without refitting).
    Raises ``botorch.exceptions.ModelFittingError`` (or a linear-algebra error) when fitting fails.
    """
    train_X, train_Y = tensor(X), tensor(Y)
    if kernel != "rbf" and "covar_module" not in model_kwargs:
        from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior

        model_kwargs["covar_module"] = get_covar_module_with_dim_scaled_prior(train_X.shape[-1], use_rbf_kernel=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDataWarning)
        model = model_cls(train_X, train_Y, outcome_transform=Standardize(m=train_Y.shape[-1]), **model_kwargs)
    warm = set_hyperparameters(model, warm_start)
    if fit or not warm:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizationWarning)
            warnings.simplefilter("ignore", NumericalWarning)  # jitter on near-duplicate, noiseless data
            # scipy's default (15,000 iterations) lets a nearly noiseless data set stall a suggestion for
            # tens of seconds; BoTorch accepts a fit that stops at the cap (it does not retry).
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": FIT_MAXITER}})
    model.eval()
    return model


def check_finite_model(model: torch.nn.Module) -> None:
    """Raise ``FloatingPointError`` if a fitted hyperparameter is NaN or infinite."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"model hyperparameter {name} is not finite after fitting")


def describe_model(model: torch.nn.Module) -> dict[str, Any]:
    """A short, readable summary of a fitted GP for provenance: length scales, output scale, noise."""
    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        if hasattr(module, "lengthscale") and getattr(module, "lengthscale", None) is not None:
            out[(name + ".lengthscale").lstrip(".")] = _round(module.lengthscale)
        if hasattr(module, "outputscale"):
            out[(name + ".outputscale").lstrip(".")] = _round(module.outputscale)
        if hasattr(module, "noise") and name.endswith("likelihood"):
            out[(name + ".noise").lstrip(".")] = _round(module.noise)
    return out


def _round(t: torch.Tensor) -> Any:
    values = t.detach().cpu().reshape(-1).tolist()
    values = [float(f"{v:.4g}") if math.isfinite(v) else v for v in values]
    return values[0] if len(values) == 1 else values
