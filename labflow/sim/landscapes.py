"""Landscapes for the simulated lab: two analytic benchmarks and synthetic materials models.

* :class:`Branin` -- 2 inputs, 3 global minima of 0.397887 (a classic BO benchmark);
* :class:`Hartmann6` -- 6 inputs in the unit cube, global minimum -3.32237;
* :class:`MaterialsLandscape` -- a plausible synthesis response: yield of a product phase
  made at a temperature, for a time, with a dopant fraction (explained in its docstring);
* :class:`PerovskiteLandscape` -- a mixed-cation perovskite film: three A-site fractions that
  sum to 1, a categorical solvent whose best composition differs, an anneal temperature, and
  regions where the film does not form (sample faults);
* :class:`ThinFilmLandscape` -- a transparent conductor: conductivity against transparency
  (two objectives), with an integer number of layers, a categorical atmosphere, and cracking;
* :class:`MultiFidelityMaterialsLandscape` -- the materials model as the expensive experiment,
  or (``fidelity="simulation"``) a biased kinetic simulation of it: a cheap, correlated fidelity.

Sample faults. A landscape may define ``sample_fault(values) -> str | None``: the reason a
sample made with ``values`` is bad (it did not form, it cracked), or None. The simulated
instrument then fails the measurement with :class:`labflow.sim.devices.SampleFault`, which the
campaign records as ``sample_fault=True`` (the planner learns from it), unlike an instrument
fault.

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

__all__ = [
    "LANDSCAPES",
    "Branin",
    "Hartmann6",
    "MaterialsLandscape",
    "MultiFidelityMaterialsLandscape",
    "PerovskiteLandscape",
    "ThinFilmLandscape",
    "make_landscape",
]


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
    outputs = (Output("product_yield", "percent", "maximize", low=0.0, high=100.0),)

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


class PerovskiteLandscape(Landscape):
    r"""Power-conversion efficiency of a mixed-cation lead-iodide perovskite film (maximize).

    Inputs (device units): the A-site fractions ``cs_fraction``, ``ma_fraction`` and
    ``fa_fraction`` (caesium, methylammonium, formamidinium; dimensionless, each 0..1, meant
    to sum to 1: the station mixes stock solutions in these proportions, so a composition that
    does not sum to 1 is normalized), the ``solvent`` (``DMF``, ``DMSO`` or ``GBL``) and the
    ``anneal_temperature`` [K] in 333.15..473.15 (60..200 degC). Output: ``efficiency`` [%].

    **Structure.** Whether the black perovskite phase forms is governed by Goldschmidt's
    tolerance factor, taken as the composition-weighted mean of the pure compounds'
    (:math:`t_\mathrm{Cs} = 0.81`, :math:`t_\mathrm{MA} = 0.912`, :math:`t_\mathrm{FA} = 0.987`):
    :math:`t = \sum_i x_i t_i`. Below :math:`t_\mathrm{min}` (0.875; 0.885 from GBL, which
    crystallizes fast) the film turns into the yellow non-perovskite phase: **a sample fault**,
    "the film did not form". A second fault: methylammonium above 30 % annealed above
    170 degC decomposes ("film decomposed").

    **Efficiency.** Each solvent has its own best tolerance factor and anneal temperature
    (its coordination and boiling point shift the crystallization), and its own ceiling:

    ========  ==========  ===========  =========
    solvent   ceiling     best t       best T
    ========  ==========  ===========  =========
    DMF       17 %        0.945        100 degC
    DMSO      20 %        0.965        130 degC
    GBL       15 %        0.930        150 degC
    ========  ==========  ===========  =========

    .. math::

        \eta = E_s\, e^{-\frac12 ((t - t_s)/0.025)^2}\, e^{-\frac12 ((T - T_s)/25\,\mathrm{K})^2}\,
               \big(1 + 0.2\, e^{-\frac12 ((x_\mathrm{Cs} - 0.08)/0.05)^2}\big)

    the last factor being the stabilizing effect of a little caesium ("triple cation"). The
    optimum, about 24 %, is DMSO at 130 degC with about 8 % Cs, 11 % MA and 81 % FA; the best
    composition for DMF or GBL is a different one, so the solvent and the composition must be
    searched together.
    """

    name = "perovskite"
    FRACTIONS = ("cs_fraction", "ma_fraction", "fa_fraction")
    TOLERANCE = {"cs_fraction": 0.81, "ma_fraction": 0.912, "fa_fraction": 0.987}
    SOLVENTS = {  # ceiling [%], best tolerance factor, best anneal temperature [K], t_min
        "DMF": (17.0, 0.945, 373.15, 0.875),
        "DMSO": (20.0, 0.965, 403.15, 0.875),
        "GBL": (15.0, 0.930, 423.15, 0.885),
    }
    inputs = (
        Input("cs_fraction", 0.0, 1.0, ""),
        Input("ma_fraction", 0.0, 1.0, ""),
        Input("fa_fraction", 0.0, 1.0, ""),
        Input("solvent", choices=("DMF", "DMSO", "GBL")),
        Input("anneal_temperature", 333.15, 473.15, "K"),
    )
    outputs = (Output("efficiency", "percent", "maximize", low=0.0, high=100.0),)

    def __init__(self, *, t_width: float = 0.025, temperature_width: float = 25.0, cs_bonus: float = 0.2) -> None:
        """``t_width``: width of the tolerance-factor optimum; ``temperature_width`` [K]; ``cs_bonus``: the caesium gain."""
        if min(t_width, temperature_width) <= 0 or cs_bonus < 0:
            raise ValueError("perovskite landscape: widths must be > 0 and cs_bonus >= 0")
        self.t_width = float(t_width)
        self.temperature_width = float(temperature_width)
        self.cs_bonus = float(cs_bonus)
        self._optimum: tuple[dict[str, Any], float] | None = None

    def composition(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The fractions normalized to sum to 1 (what the station actually mixes)."""
        raw = {k: max(float(values[k]), 0.0) for k in self.FRACTIONS}
        total = sum(raw.values())
        if total <= 0:
            return {k: 1.0 / 3 for k in self.FRACTIONS}
        return {k: v / total for k, v in raw.items()}

    def tolerance_factor(self, values: Mapping[str, Any]) -> float:
        x = self.composition(values)
        return float(sum(x[k] * self.TOLERANCE[k] for k in self.FRACTIONS))

    def sample_fault(self, values: Mapping[str, Any]) -> str | None:
        """Why a film made with ``values`` is no good, or None."""
        solvent = str(values["solvent"])
        t = self.tolerance_factor(values)
        t_min = self.SOLVENTS[solvent][3]
        if sum(max(float(values[k]), 0.0) for k in self.FRACTIONS) <= 0:
            return "film did not form: no precursor"
        if t < t_min:
            return f"film did not form the perovskite phase (tolerance factor {t:.3f} < {t_min} from {solvent}: yellow delta phase)"
        x = self.composition(values)
        T = float(values["anneal_temperature"])
        if x["ma_fraction"] > 0.3 and T > 443.15:
            return f"film decomposed: {x['ma_fraction']:.0%} methylammonium annealed at {T - 273.15:.0f} degC"
        return None

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        missing = [i.name for i in self.inputs if i.name not in values]
        if missing:
            raise KeyError(f"{self.name}: missing inputs {missing}")
        ceiling, t_best, T_best, _ = self.SOLVENTS[str(values["solvent"])]
        x = self.composition(values)
        t = self.tolerance_factor(values)
        T = float(values["anneal_temperature"])
        eta = (
            ceiling
            * math.exp(-0.5 * ((t - t_best) / self.t_width) ** 2)
            * math.exp(-0.5 * ((T - T_best) / self.temperature_width) ** 2)
            * (1 + self.cs_bonus * math.exp(-0.5 * ((x["cs_fraction"] - 0.08) / 0.05) ** 2))
        )
        return {"efficiency": float(eta)}

    def optimum_inputs(self) -> dict[str, Any]:
        if self._optimum is None:
            self._optimum = self._find_optimum()
        return dict(self._optimum[0])

    def optimum(self) -> dict[str, float]:
        if self._optimum is None:
            self._optimum = self._find_optimum()
        return {"efficiency": self._optimum[1]}

    def _find_optimum(self) -> tuple[dict[str, Any], float]:
        """A grid over the simplex (1 % steps) for each solvent, the temperature at each solvent's best
        (the factors separate), then the best point polished by Nelder-Mead on the simplex."""
        best: tuple[dict[str, Any], float] = ({}, -math.inf)
        steps = np.linspace(0.0, 1.0, 101)
        for solvent, (_, _, T_best, _) in self.SOLVENTS.items():
            for cs in steps:
                for ma in steps[steps <= 1 - cs + 1e-12]:
                    p = {"cs_fraction": cs, "ma_fraction": ma, "fa_fraction": max(1 - cs - ma, 0.0), "solvent": solvent,
                         "anneal_temperature": T_best}
                    if self.sample_fault(p) is not None:
                        continue
                    y = self.evaluate(p)["efficiency"]
                    if y > best[1]:
                        best = (p, y)
        p0 = best[0]

        def neg(u: np.ndarray) -> float:
            cs, ma = float(np.clip(u[0], 0, 1)), float(np.clip(u[1], 0, 1))
            if cs + ma > 1:
                return 0.0
            q = {**p0, "cs_fraction": cs, "ma_fraction": ma, "fa_fraction": 1 - cs - ma}
            return 0.0 if self.sample_fault(q) else -self.evaluate(q)["efficiency"]

        res = minimize(neg, np.array([p0["cs_fraction"], p0["ma_fraction"]]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
        if -res.fun > best[1]:
            cs, ma = float(res.x[0]), float(res.x[1])
            best = ({**p0, "cs_fraction": cs, "ma_fraction": ma, "fa_fraction": 1 - cs - ma}, float(-res.fun))
        point = {k: (float(v) if not isinstance(v, str) else v) for k, v in best[0].items()}
        return point, float(best[1])


class ThinFilmLandscape(Landscape):
    r"""A sol-gel transparent conducting oxide film: conductivity against transparency (maximize both).

    Inputs (device units): ``dopant_fraction`` (0..0.15), ``anneal_temperature`` [K] in
    473.15..873.15 (200..600 degC), ``layers`` (integer 1..12, each spin-coated layer 50 nm
    thick) and ``atmosphere`` of the anneal (``air``, ``argon``, ``forming_gas``). Outputs:
    ``conductivity`` [S/cm] and ``transparency`` [%] (mean visible transmittance).

    **Carriers.** Dopants are activated above about 400 degC,
    :math:`a(T) = 1/(1 + e^{-(T - 673\,\mathrm{K})/40\,\mathrm{K}})`, and a reducing anneal adds
    oxygen vacancies: :math:`n = 10^{21} x\, a(T)\, g + 10^{19}` cm\ :sup:`-3` with
    :math:`g` = 0.6 (air), 1.0 (argon), 1.6 (forming gas).

    **Mobility.** Ionized-impurity scattering lowers it with :math:`n`, crystallinity
    :math:`c(T) = 1/(1 + e^{-(T - 573\,\mathrm{K})/50\,\mathrm{K}})` raises it, and thin films
    have small grains: :math:`\mu = 40\, c(T)\, (1 - 0.6\, e^{-L/3}) / (1 + n / 5\cdot10^{20})`
    cm\ :sup:`2`/Vs. Conductivity :math:`\sigma = q\, n\, \mu`.

    **Transparency.** Beer-Lambert over the thickness :math:`d = 50\,\mathrm{nm}\cdot L`, with
    free-carrier absorption :math:`10^{-17} n` cm\ :sup:`-1`, a background that a reducing
    anneal raises (500, 1000, 3000 cm\ :sup:`-1`) and scattering by poorly crystallized film
    :math:`4000 (1 - c)`: :math:`\tau = 92\,\% \cdot e^{-\alpha d}`.

    So more dopant, more layers and a reducing anneal raise the conductivity and lower the
    transparency: a Pareto front, not an optimum. **Sample fault**: a thick film annealed hot
    cracks on cooling (thermal-expansion mismatch), when :math:`d\,(T - 473\,\mathrm{K}) >
    1.6\cdot10^{5}` nm K (e.g. more than 400 nm at 600 degC).

    Thresholds worth having (the recipe's reference point): 100 S/cm and 70 %.
    """

    name = "thin_film"
    ATMOSPHERES = {"air": (0.6, 500.0), "argon": (1.0, 1000.0), "forming_gas": (1.6, 3000.0)}
    inputs = (
        Input("dopant_fraction", 0.0, 0.15, ""),
        Input("anneal_temperature", 473.15, 873.15, "K"),
        Input("layers", 1, 12, "", integer=True),
        Input("atmosphere", choices=("air", "argon", "forming_gas")),
    )
    outputs = (Output("conductivity", "S/cm", "maximize", low=0.0), Output("transparency", "percent", "maximize", low=0.0, high=100.0))
    LAYER_NM = 50.0

    def __init__(self, *, crack_limit: float = 1.6e5) -> None:
        """``crack_limit`` [nm K]: thickness times cooling range beyond which films crack."""
        if crack_limit <= 0:
            raise ValueError("thin_film landscape: crack_limit must be > 0")
        self.crack_limit = float(crack_limit)

    def sample_fault(self, values: Mapping[str, Any]) -> str | None:
        d = self.LAYER_NM * float(values["layers"])
        T = float(values["anneal_temperature"])
        if d * (T - 473.15) > self.crack_limit:
            return f"film cracked on cooling ({d:.0f} nm annealed at {T - 273.15:.0f} degC)"
        return None

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, float]:
        missing = [i.name for i in self.inputs if i.name not in values]
        if missing:
            raise KeyError(f"{self.name}: missing inputs {missing}")
        x = float(values["dopant_fraction"])
        T = float(values["anneal_temperature"])
        L = float(values["layers"])
        gain, background = self.ATMOSPHERES[str(values["atmosphere"])]
        activation = 1.0 / (1.0 + math.exp(-(T - 673.15) / 40.0))
        crystal = 1.0 / (1.0 + math.exp(-(T - 573.15) / 50.0))
        n = 1e21 * x * activation * gain + 1e19  # cm^-3
        mobility = 40.0 * crystal * (1 - 0.6 * math.exp(-L / 3.0)) / (1 + n / 5e20)  # cm^2/(V s)
        sigma = 1.602176634e-19 * n * mobility  # S/cm
        d_cm = self.LAYER_NM * L * 1e-7
        alpha = 1e-17 * n + background + 4000.0 * (1 - crystal)  # 1/cm
        tau = 92.0 * math.exp(-alpha * d_cm)
        return {"conductivity": float(sigma), "transparency": float(tau)}


class MultiFidelityMaterialsLandscape(MaterialsLandscape):
    r"""The materials landscape at two fidelities: the experiment, or a cheap kinetic simulation of it.

    ``fidelity="experiment"`` (default) is :class:`MaterialsLandscape` itself.
    ``fidelity="simulation"`` is the same kinetic model run with textbook constants, which
    miss what the lab knows only from experiments: the dopant's shift of the crystallization
    threshold is ignored (``t_shift = 0``), decomposition is underestimated by
    ``decomposition_bias`` (0.6 times the rate) and the crystallization threshold sits
    ``threshold_bias`` (15 K) low; a smooth systematic error of up to ``wiggle`` (3 %) is
    added. The two correlate strongly (their optima lie about 15 K and a few minutes apart) but
    the simulation's best point is not the experiment's: a campaign must confirm by experiment.
    """

    name = "materials_mf"

    def __init__(
        self,
        *,
        fidelity: str = "experiment",
        decomposition_bias: float = 0.6,
        threshold_bias: float = 15.0,
        wiggle: float = 3.0,
        **kwargs: Any,
    ) -> None:
        if fidelity not in ("experiment", "simulation"):
            raise ValueError(f"fidelity must be 'experiment' or 'simulation', got {fidelity!r}")
        self.fidelity = fidelity
        self.decomposition_bias = float(decomposition_bias)
        self.threshold_bias = float(threshold_bias)
        self.wiggle = float(wiggle)
        super().__init__(**kwargs)
        if fidelity == "simulation":
            self.k_decomp_ref *= self.decomposition_bias
            self.t_crystallize -= self.threshold_bias
            self.t_shift = 0.0

    def response(self, T: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        y = super().response(T, t, x)
        if self.fidelity == "simulation" and self.wiggle:
            T, x = np.asarray(T, float), np.asarray(x, float)
            y = y + self.wiggle * np.sin((T - 323.15) / 60.0) * np.cos(3.0 * x)
        return np.clip(y, 0.0, 100.0)


LANDSCAPES: dict[str, type[Landscape]] = {
    "branin": Branin,
    "hartmann6": Hartmann6,
    "materials": MaterialsLandscape,
    "perovskite": PerovskiteLandscape,
    "thin_film": ThinFilmLandscape,
    "materials_mf": MultiFidelityMaterialsLandscape,
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
