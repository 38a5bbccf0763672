"""A dataset as a continuous lab: a Gaussian-process emulator that answers any point.

:class:`EmulatorLandscape` fits a GP (BoTorch ``SingleTaskGP``: Matern-5/2 kernel with one
lengthscale per input (ARD), a fitted noise term, outcomes standardized) to the pool of a
:class:`~labflow.sim.datasets.Dataset` on the space's unit cube, and answers with the
posterior mean (noise-free: simulated instruments add :attr:`EmulatorLandscape.noise_std`).

Why a GP: it is already a labflow dependency (no scikit-learn), it interpolates smooth
responses well at the 10^2..10^3 points these pools hold, and its fit is deterministic given
the data and the seed.

Trust: an emulator is only a stand-in for the lab when it predicts data it has not seen.
:attr:`cv_r2` is the k-fold cross-validated coefficient of determination (hyperparameters
refitted in every fold; folds from a seeded permutation), computed as
``1 - sum (y - y_oof)^2 / sum (y - mean y)^2`` over the pooled out-of-fold predictions.
``docs/reference/benchmark-definitions.md`` forbids emulators below R^2 = 0.7 as benchmark ground truth, so
construction raises :class:`EmulatorQualityError` below ``min_r2`` unless ``force=True``.

Noise: the pooled within-replicate standard deviation of the raw rows when the data hold
replicates (``noise_source == "replicates"``), else the GP's fitted noise level
(``"residuals"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from labflow.errors import LabflowError
from labflow.sim.base import Input, Landscape, Output
from labflow.sim.datasets import Dataset
from labflow.space import Categorical, Integer

__all__ = ["EmulatorLandscape", "EmulatorQualityError", "cross_validated_r2", "fit_gp", "torch_threads"]

MIN_R2 = 0.7


class EmulatorQualityError(LabflowError, ValueError):
    """An emulator predicts held-out data too poorly to stand in for the lab."""


@contextmanager
def torch_threads(n: int | None):
    """Run torch with ``n`` intra-op threads inside the block (None: leave as is), then restore.

    Small GP fits (hundreds of points) are dominated by per-operation overhead; on a busy
    machine extra threads spin and slow them down several-fold, so labflow fits emulators
    on one thread by default. The setting is process-wide while the block runs.
    """
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_gp(X: np.ndarray, y: np.ndarray, seed: int = 0, maxiter: int = 200, noise_floor: float = 1e-4):
    """Fit a BoTorch ``SingleTaskGP`` (Matern-5/2 ARD, standardized outcome) to ``X`` (unit cube) and ``y``.

    One L-BFGS-B run from the default initialization (``fit_gpytorch_mll_scipy``), at most
    ``maxiter`` steps: deterministic, and without the silent restarts of ``fit_gpytorch_mll``.
    When the kernel matrix turns out not positive definite (near-duplicate inputs with a
    vanishing noise term), the fit is repeated with a noise floor a hundred times higher,
    up to 0.1 of the standardized variance.
    """
    from linear_operator.utils.errors import NotPSDError

    while True:
        try:
            model = _fit_once(X, y, seed, maxiter, noise_floor)
            _predict(model, X[:2])  # the posterior must be computable
            return model
        except NotPSDError:
            if noise_floor >= 0.1:
                raise
            noise_floor = min(0.1, noise_floor * 100)


def _fit_once(X: np.ndarray, y: np.ndarray, seed: int, maxiter: int, noise_floor: float):
    import torch
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.constraints import GreaterThan
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    tX = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64)
    tY = torch.tensor(np.asarray(y, dtype=float).reshape(-1, 1), dtype=torch.float64)
    kernel = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=tX.shape[1]))
    likelihood = GaussianLikelihood(noise_constraint=GreaterThan(noise_floor))
    model = SingleTaskGP(tX, tY, likelihood=likelihood, covar_module=kernel, outcome_transform=Standardize(m=1))
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numerical-jitter chatter; the fit's quality is judged by cv_r2
        fit_gpytorch_mll_scipy(mll, options={"maxiter": int(maxiter)})
    model.eval()
    return model


def _predict(model, X: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        post = model.posterior(torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64))
        return post.mean.squeeze(-1).numpy().astype(float)


def cross_validated_r2(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[float, np.ndarray]:
    """k-fold cross-validated R^2 of the GP and the out-of-fold predictions (refit per fold)."""
    n = len(y)
    folds = max(2, min(int(folds), n))
    order = np.random.default_rng(seed).permutation(n)
    pred = np.empty(n)
    for f, test in enumerate(np.array_split(order, folds)):
        train = np.setdiff1d(order, test)
        pred[test] = _predict(fit_gp(X[train], y[train], seed=seed + f), X[test])
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return r2, pred


class EmulatorLandscape(Landscape):
    """A GP fitted to a dataset, answering any point of its space (posterior mean, noise-free).

    Parameters
    ----------
    dataset:
        The data to emulate.
    seed:
        Seeds the fold split and the fits.
    folds:
        k of the k-fold cross-validation behind :attr:`cv_r2`.
    min_r2:
        The least ``cv_r2`` accepted for use as a benchmark's ground truth (0.7, benchmark-definitions.md).
    force:
        Build it anyway below ``min_r2`` (for demos; never report benchmark figures from it).
    threads:
        torch threads for fitting and predicting (see :func:`torch_threads`; None leaves torch's setting).
    """

    def __init__(
        self,
        dataset: Dataset,
        seed: int = 0,
        *,
        folds: int = 5,
        min_r2: float = MIN_R2,
        force: bool = False,
        threads: int | None = 1,
    ) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.name = f"{dataset.name}-emulator"
        self.space = dataset.space
        self.inputs = tuple(
            Input(p.name, choices=p.choices)
            if isinstance(p, Categorical)
            else Input(p.name, float(p.low), float(p.high), p.unit, integer=isinstance(p, Integer))
            for p in dataset.space.parameters
        )
        obj = dataset.objective
        self.outputs = (Output(obj.name, obj.unit, obj.direction),)
        self.threads = threads
        X = dataset.space.encode(dataset.X)
        y = dataset.y
        with torch_threads(threads):
            self.cv_r2, self.cv_predictions = cross_validated_r2(X, y, folds=folds, seed=self.seed)
        self.folds = folds
        self.min_r2 = float(min_r2)
        self.forced = bool(force)
        if not (self.cv_r2 >= self.min_r2) and not force:
            raise EmulatorQualityError(
                f"emulator of {dataset.name!r}: {folds}-fold cross-validated R^2 = {self.cv_r2:.3f} is below {self.min_r2}",
                hint="it cannot stand in for the lab in a benchmark; use the pool (PoolLandscape), or pass force=True for a demo",
            )
        with torch_threads(threads):
            self.model = fit_gp(X, y, seed=self.seed)
        rep = dataset.replicate_noise()
        if rep is not None:
            self.noise_std, self.noise_source = float(rep), "replicates"
        else:
            noise_var = float(self.model.likelihood.noise.detach().mean()) * float(self.model.outcome_transform.stdvs.squeeze() ** 2)
            self.noise_std, self.noise_source = math.sqrt(noise_var), "residuals"

    @property
    def trusted(self) -> bool:
        """True when ``cv_r2 >= min_r2`` (usable as benchmark ground truth)."""
        return bool(self.cv_r2 >= self.min_r2)

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        X = self.space.encode([{n: values[n] for n in self.space.names}])
        with torch_threads(self.threads):
            return {self.outputs[0].name: float(_predict(self.model, X)[0])}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Posterior means at many points (a DataFrame with one column per parameter)."""
        with torch_threads(self.threads):
            return _predict(self.model, self.space.encode(frame[self.space.names]))

    def target(self, q: float = 0.05, n: int = 2**14) -> float:
        """The top-``q`` quantile of the emulator over the space by volume (seeded scrambled Sobol sample).

        Values at least this good are "good". The box ignores sum-to-total constraints.
        """
        from scipy.stats import qmc

        U = qmc.Sobol(self.space.dim, scramble=True, seed=self.seed).random(n)
        with torch_threads(self.threads):
            f = _predict(self.model, self.space.snap(U)) * self.dataset.objective.sign
        return float(np.quantile(f, 1.0 - q) * self.dataset.objective.sign)

    def report(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.name,
            "model": "SingleTaskGP(Matern-5/2 ARD, Standardize)",
            "cv_r2": self.cv_r2,
            "folds": self.folds,
            "noise_std": self.noise_std,
            "noise_source": self.noise_source,
            "trusted": self.trusted,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return f"EmulatorLandscape({self.dataset.name!r}, cv_r2={self.cv_r2:.3f}, noise_std={self.noise_std:.3g} ({self.noise_source}))"
