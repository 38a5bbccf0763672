"""Landscapes for the simulated lab: two analytic benchmarks and a synthetic materials model.

* :class:`Branin` -- 2 inputs, 3 global minima of 0.397887 (a classic BO benchmark);
* :class:`Hartmann6` -- 6 inputs in the unit cube, global minimum -3.32237;
* :class:`MaterialsLandscape` -- a plausible synthesis response: yield of a product phase
  made at a temperature, for a time, with a dopant fraction (explained in its docstring).

``LANDSCAPES`` maps a config name to its class; :func:`make_landscape` builds one by name.
All evaluate plain numbers in each input's *device* unit (``Input.unit``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import minimize

from labflow.errors import RecipeError
from labflow.sim.base import Input, Landscape, Output

__all__ = ["LANDSCAPES", "Branin", "Hartmann6", "MaterialsLandscape", "make_landscape"]


def _values(landscape: Landscape, values: Mapping[str, Any]) -> list[float]:
    missing = [i.name for i in landscape.inputs if i.name not in values]
    if missing:
        raise KeyError(f"{landscape.name}: missing inputs {missing}")
    return [float(values[i.name]) for i in landscape.inputs]


class Branin(Landscape):
    r"""The Branin-Hoo function (minimize), on :math:`x_1 \in [-5, 10]`, :math:`x_2 \in [0, 15]`.

    .. math::

        f(x) = a (x_2 - b x_1^2 + c x_1 - r)^2 + s (1 - t) \cos x_1 + s

    with :math:`a = 1, b = 5.1 / (4\pi^2), c = 5/\pi, r = 6, s = 10, t = 1/(8\pi)`.
    Three global minima, :math:`f = 0.397887`, at :math:`(-\pi, 12.275)`,
    :math:`(\pi, 2.275)` and :math:`(9.42478, 2.475)`. Inputs and output are dimensionless.
    """

    name = "branin"
    inputs = (Input("x1", -5.0, 10.0), Input("x2", 0.0, 15.0))
    outputs = (Output("y", "", "minimize"),)
    minimizers = ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475))
    minimum = 0.397887357729738

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        x1, x2 = _values(self, values)
        a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
        return {"y": float(a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s)}

    def optimum(self) -> dict[str, float]:
        return {"y": self.minimum}

    def optimum_inputs(self) -> dict[str, float]:
        """One of the three minimizers (the middle one, :math:`(\\pi, 2.275)`)."""
        return dict(zip(("x1", "x2"), self.minimizers[1]))


class Hartmann6(Landscape):
    r"""The 6-dimensional Hartmann function (minimize) on :math:`[0, 1]^6`.

    .. math::

        f(x) = -\sum_{i=1}^{4} \alpha_i \exp\Big(-\sum_{j=1}^{6} A_{ij} (x_j - P_{ij})^2\Big)

    with the standard constants :math:`\alpha, A, P` (Hartmann 1972; Dixon and Szegö 1978).
    Six local minima; the global one, :math:`f = -3.32237`, lies at
    :math:`(0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)`.
    """

    name = "hartmann6"
    inputs = tuple(Input(f"x{j}", 0.0, 1.0) for j in range(1, 7))
    outputs = (Output("y", "", "minimize"),)
    alpha = np.array([1.0, 1.2, 3.0, 3.2])
    A = np.array(
        [
            [10, 3, 17, 3.5, 1.7, 8],
            [0.05, 10, 17, 0.1, 8, 14],
            [3, 3.5, 1.7, 10, 17, 8],
            [17, 8, 0.05, 10, 0.1, 14],
        ]
    )
    P = 1e-4 * np.array(
        [
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650],
            [4047, 8828, 8732, 5743, 1091, 381],
        ]
    )
    minimizer = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
    minimum = -3.32237

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        x = np.array(_values(self, values))
        inner = np.sum(self.A * (x - self.P) ** 2, axis=1)
        return {"y": float(-np.sum(self.alpha * np.exp(-inner)))}

    def optimum(self) -> dict[str, float]:
        return {"y": self.minimum}

    def optimum_inputs(self) -> dict[str, float]:
        return {f"x{j}": v for j, v in enumerate(self.minimizer, start=1)}


class MaterialsLandscape(Landscape):
    r"""Yield of a doped product phase made by a solvothermal synthesis (maximize).

    Inputs (device units): ``temperature`` T [K] in 323.15..673.15, ``time`` t [s] in
    30..7200, ``dopant_fraction`` x (dimensionless) in 0..1. Output: ``product_yield`` [%].

    The model multiplies three physically motivated factors::

        yield = 100 % * B(T, t, x) * S(T, x) * C(x)

    **Kinetics, B.** Precursor A forms the product B, which decomposes to C
    (consecutive first-order reactions ``A -k1-> B -k2-> C``). Both rates follow Arrhenius:

    .. math::

        k_i(T) = k_{i,\mathrm{ref}} \exp\Big(-\frac{E_i}{R}\Big(\frac{1}{T} - \frac{1}{T_\mathrm{ref}}\Big)\Big)

    and the dopant catalyses formation, :math:`k_1 \propto 1 + \kappa x`. The product
    fraction is

    .. math::

        B(t) = \frac{k_1}{k_2 - k_1}\big(e^{-k_1 t} - e^{-k_2 t}\big)

    so yield rises with time at a temperature-dependent rate, saturates, then falls as the
    product decomposes. Decomposition has the larger activation energy (:math:`E_2 > E_1`),
    so it dominates at high temperature and long times.

    **Phase selection, S.** The product phase only crystallizes above a threshold
    temperature that the dopant shifts, :math:`T_c(x) = T_{c,0} + \Delta T_c (x - x_0)`:
    :math:`S = 1 / (1 + e^{-(T - T_c(x))/w})`. Together with the kinetics this moves the
    optimal temperature with composition (about 155 degC at x = 0, 200 degC at x = 1).

    **Composition, C.** Phase purity peaks at a dopant fraction :math:`x_0` (a Gaussian of
    width :math:`\sigma_x` on a baseline): too little dopant leaves a competing phase, too
    much precipitates a secondary phase.

    With the defaults the optimum is about 74 % at 171 degC, 19.5 min, x = 0.34: inside the
    100..300 degC, 1..60 min, 0..1 box but away from its centre (where the yield is ~7 %).
    Every coefficient is a constructor keyword, so variants are one option away.
    """

    name = "materials"
    inputs = (
        Input("temperature", 323.15, 673.15, "K"),
        Input("time", 30.0, 7200.0, "s"),
        Input("dopant_fraction", 0.0, 1.0, ""),
    )
    outputs = (Output("product_yield", "percent", "maximize"),)

    GAS_CONSTANT = 8.314462618  # J / (mol K)

    def __init__(
        self,
        *,
        t_ref: float = 443.15,
        k_form_ref: float = 1 / 480,
        k_decomp_ref: float = 1 / 5400,
        e_form: float = 60e3,
        e_decomp: float = 120e3,
        catalysis: float = 1.5,
        x_peak: float = 0.35,
        x_width: float = 0.15,
        baseline: float = 0.6,
        t_crystallize: float = 415.0,
        t_shift: float = 50.0,
        t_width: float = 10.0,
    ) -> None:
        """Coefficients: ``t_ref`` [K]; ``k_*_ref`` [1/s] at ``t_ref`` (formation at x = 0.3);
        ``e_*`` activation energies [J/mol]; ``catalysis`` kappa; ``x_peak``, ``x_width``,
        ``baseline`` of C(x); ``t_crystallize`` T_c0 [K] at x = 0.3, ``t_shift`` [K per unit x],
        ``t_width`` w [K]."""
        self.t_ref = float(t_ref)
        self.k_form_ref = float(k_form_ref)
        self.k_decomp_ref = float(k_decomp_ref)
        self.e_form = float(e_form)
        self.e_decomp = float(e_decomp)
        self.catalysis = float(catalysis)
        self.x_peak = float(x_peak)
        self.x_width = float(x_width)
        self.baseline = float(baseline)
        self.t_crystallize = float(t_crystallize)
        self.t_shift = float(t_shift)
        self.t_width = float(t_width)
        if min(self.k_form_ref, self.k_decomp_ref, self.x_width, self.t_width, self.t_ref) <= 0:
            raise ValueError("materials landscape: rates, widths and t_ref must be > 0")
        self._optimum: tuple[dict[str, float], float] | None = None

    # -- the model ------------------------------------------------------------------------
    def response(self, T: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Yield [%] for arrays of temperature [K], time [s] and dopant fraction (broadcast)."""
        T, t, x = np.asarray(T, float), np.asarray(t, float), np.asarray(x, float)
        R = self.GAS_CONSTANT
        arrhenius = lambda e: np.exp(-e / R * (1.0 / T - 1.0 / self.t_ref))  # noqa: E731
        k1 = self.k_form_ref * arrhenius(self.e_form) * (1 + self.catalysis * x) / (1 + self.catalysis * 0.3)
        k2 = self.k_decomp_ref * arrhenius(self.e_decomp)
        # B = k1 e^{-k1 t} (1 - e^{-(k2 - k1) t}) / (k2 - k1), written stably for k1 ~ k2.
        d = k2 - k1
        dt = d * t
        small = np.abs(dt) < 1e-8
        factor = np.where(small, t, -np.expm1(-np.where(small, 1.0, dt)) / np.where(small, 1.0, d))
        product = k1 * np.exp(-k1 * t) * factor
        t_c = self.t_crystallize + self.t_shift * (x - 0.3)
        phase = 1.0 / (1.0 + np.exp(-(T - t_c) / self.t_width))
        purity = self.baseline + (1 - self.baseline) * np.exp(-0.5 * ((x - self.x_peak) / self.x_width) ** 2)
        return 100.0 * product * phase * purity

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        T, t, x = _values(self, values)
        return {"product_yield": float(self.response(T, t, x))}

    # -- the optimum (numerical, cached) ----------------------------------------------------
    def _find_optimum(self) -> tuple[dict[str, float], float]:
        """Dense grid over the device limits (time on a log scale), then L-BFGS-B from the
        best few grid points; deterministic."""
        lows = np.array([i.low for i in self.inputs])
        highs = np.array([i.high for i in self.inputs])
        T = np.linspace(lows[0], highs[0], 141)
        t = np.geomspace(lows[1], highs[1], 121)
        x = np.linspace(lows[2], highs[2], 51)
        Y = self.response(T[:, None, None], t[None, :, None], x[None, None, :])
        flat = np.argsort(Y, axis=None)[::-1][:5]
        # optimize on a scaled box: T/100 K, log10(t / s), x
        scale = lambda z: np.array([z[0] / 100.0, math.log10(z[1]), z[2]])  # noqa: E731
        unscale = lambda u: np.array([u[0] * 100.0, 10 ** u[1], u[2]])  # noqa: E731
        bounds = list(zip(scale(lows), scale(highs)))
        best_z, best_y = None, -math.inf
        for idx in flat:
            i, j, k = np.unravel_index(idx, Y.shape)
            start = scale(np.array([T[i], t[j], x[k]]))
            res = minimize(lambda u: -float(self.response(*unscale(u))), start, method="L-BFGS-B", bounds=bounds)
            y = -float(res.fun)
            if y > best_y:
                best_z, best_y = unscale(res.x), y
        point = {i.name: float(v) for i, v in zip(self.inputs, best_z)}
        return point, best_y

    def optimum(self) -> dict[str, float]:
        if self._optimum is None:
            self._optimum = self._find_optimum()
        return {"product_yield": self._optimum[1]}

    def optimum_inputs(self) -> dict[str, float]:
        """Where the optimum lies, in device units (K, s, dimensionless)."""
        if self._optimum is None:
            self._optimum = self._find_optimum()
        return dict(self._optimum[0])


LANDSCAPES: dict[str, type[Landscape]] = {
    "branin": Branin,
    "hartmann6": Hartmann6,
    "materials": MaterialsLandscape,
}


def make_landscape(name: str, **options: Any) -> Landscape:
    """Build the landscape registered as ``name`` in :data:`LANDSCAPES`, with ``options``.

    Raises :class:`~labflow.errors.RecipeError` for an unknown name or options the
    landscape does not take.
    """
    try:
        cls = LANDSCAPES[name]
    except (KeyError, TypeError):
        raise RecipeError(
            f"unknown landscape {name!r}; expected one of {sorted(LANDSCAPES)}",
            hint="add new landscapes to labflow.sim.landscapes.LANDSCAPES",
        ) from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise RecipeError(f"landscape {name!r}: bad options {sorted(options)}: {exc}") from exc
