"""Benchmark metrics, exactly as ``docs/reference/benchmark-definitions.md`` defines them.

Every function here is pure (numpy in, numbers out) and seeded where it draws.

Vocabulary
----------
pool, N
    The N unique input vectors of a dataset after merging replicates, indexed ``0 .. N-1``.
good set, M
    The top ``M = ceil(q*N)`` pool points by the objective's direction (q = 5 %; also 1 %
    for pools of 1,000 points or more). Ties at the cut-off keep pool order.
trace
    The pool indices one run measured, in the order the results came back, initial design
    included (``PoolLandscape.trace``). Its length is the run's budget.
target
    ``k`` points of a set ``S`` of size ``M_S``: k = 1 of the good set ("first good"),
    k = ceil(0.8*M) of the good set ("80% of good"), and k = 1 of the set of best points
    ("best", usually a single point).
first-passage count n_k
    The number of experiments (1-based, initial design included) until the trace holds k
    distinct members of S. *Censored* (``inf`` in arrays, ``None`` in rows) when the trace
    ends first.
random reference
    Drawing without replacement, the draw at which the k-th of M marked items among N arrives
    follows a negative hypergeometric law, ``P(n_k = n) = C(n-1, k-1) C(N-n, M-k) / C(N, M)``:
    exact, no simulation. In scipy's parametrisation it is ``k + nhypergeom(N, N-M, k)``
    (scipy counts the N-M unmarked items drawn before the k-th marked one). Its mean is
    ``k*(N+1)/(M+1)``; its **median** (the smallest n with CDF >= 1/2) is what AF uses.
acceleration factor AF_k
    ``median n_k(reference) / median n_k(method)`` over seeded runs: medians with medians.
    With the random reference the numerator is the exact median of the law above
    (``reference_stat="median"``, the default); the mean is reported beside it
    (``random_reference_mean``) and ``reference_stat="mean"`` reproduces the older tables,
    which divided a mean by a median and inflated the "first" AF 1.3-1.4x. The ceiling is
    ``(N+1)/(M+1)``: an oracle needs exactly k draws.
censoring
    A censored count is only known to exceed the run's length L. A median is computed twice,
    with censored runs at ``L+1`` and at ``+inf``; if both agree the median is exact, else
    the ``L+1`` version is a lower bound of the median. Hence an AF is ``exact``, an ``upper``
    bound (the method's median is censored: AF <= value), a ``lower`` bound (the
    reference's median is censored: AF >= value), or ``undefined`` (both). The bound travels
    to every figure made from the AF: its bootstrap interval, ``af_vs_sobol``, geometric means
    (see :func:`combine_bounds`) and the lab-time factors; tables print ``<=``, ``>=`` or ``?``.
enhancement factor EF(n)
    Mean fraction of the good set found after n experiments divided by n/N (random draws
    find n/N of it on average, so EF = 1 for random; an oracle reaches N/M for n <= M).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln
from scipy.stats import nhypergeom

__all__ = [
    "AccelerationFactor",
    "Target",
    "T_EXP_GRID",
    "P_GRID",
    "acceleration_factor",
    "async_timeline",
    "bootstrap_median_ratio",
    "budget_warnings",
    "ceiling",
    "enhancement_factor",
    "enhancement_summary",
    "first_passage",
    "first_passage_counts",
    "fraction_found",
    "fraction_found_band",
    "geometric_mean",
    "geometric_mean_af",
    "good_set",
    "lab_time_table",
    "WorkingHours",
    "MedianCount",
    "calendar_makespan",
    "conventional_lab_table",
    "format_duration",
    "makespan",
    "markdown_table",
    "median_censored",
    "n_good",
    "overhead_break_even",
    "random_reference",
    "random_reference_law",
    "random_reference_median",
    "combine_bounds",
    "invert_bound",
    "random_reference_pmf",
    "standard_targets",
    "summarize",
    "summarize_traces",
    "time_to_target",
]

Trace = Sequence[int]


# -- good set and targets --------------------------------------------------------------
def n_good(n: int, q: float = 0.05) -> int:
    """``M = ceil(q*N)``, guarded against float round-off (0.05*100 is 5, not 6)."""
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    return max(1, math.ceil(q * n - 1e-9))


def good_set(values: Sequence[float] | np.ndarray, q: float = 0.05, direction: str = "maximize") -> np.ndarray:
    """Indices of the top ``ceil(q*N)`` values (largest when maximizing), best first; ties keep index order."""
    v = np.asarray(values, dtype=float)
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    score = v if direction == "maximize" else -v
    return np.argsort(-score, kind="stable")[: n_good(len(v), q)]


@dataclass(frozen=True)
class Target:
    """Find ``k`` members of ``members`` (pool indices). ``name`` labels rows: "first", "80%", "best"."""

    name: str
    k: int
    members: tuple[int, ...]

    @property
    def m(self) -> int:
        return len(self.members)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= len(self.members):
            raise ValueError(f"target {self.name!r}: k = {self.k} must be between 1 and {len(self.members)}")


def standard_targets(
    values: Sequence[float] | np.ndarray, q: float = 0.05, direction: str = "maximize", names: Iterable[str] = ("first", "80%", "best")
) -> dict[str, Target]:
    """The targets of benchmark-definitions.md: "first" (k = 1 of the good set), "80%" (k = ceil(0.8*M)), "best" (the best point(s))."""
    v = np.asarray(values, dtype=float)
    good = tuple(int(i) for i in good_set(v, q, direction))
    m = len(good)
    best_value = v.max() if direction == "maximize" else v.min()
    best = tuple(int(i) for i in np.flatnonzero(v == best_value))
    every = {
        "first": Target("first", 1, good),
        "80%": Target("80%", max(1, math.ceil(0.8 * m - 1e-9)), good),
        "best": Target("best", 1, best),
    }
    out = {}
    for name in names:
        if name not in every:
            raise ValueError(f"unknown target {name!r}; expected one of {list(every)}")
        out[name] = every[name]
    return out


# -- first passage ---------------------------------------------------------------------
def first_passage(trace: Trace, members: Iterable[int], k: int = 1, budget: int | None = None) -> int | None:
    """Experiments (1-based) until ``trace`` holds ``k`` distinct ``members``; None if not within ``budget``.

    >>> first_passage([5, 2, 7, 1], members=[1, 7], k=2)
    4
    """
    wanted = {int(i) for i in members}
    seen: set[int] = set()
    steps = trace if budget is None else list(trace)[: int(budget)]
    for n, idx in enumerate(steps, start=1):
        idx = int(idx)
        if idx in wanted and idx not in seen:
            seen.add(idx)
            if len(seen) >= k:
                return n
    return None


def first_passage_counts(traces: Sequence[Trace], members: Iterable[int], k: int = 1, budget: int | None = None) -> np.ndarray:
    """``first_passage`` for every run, as floats with ``inf`` for censored runs."""
    members = list(members)
    return np.array(
        [np.inf if (n := first_passage(t, members, k, budget)) is None else float(n) for t in traces], dtype=float
    )


def _budgets(traces: Sequence[Trace], budget: int | None) -> np.ndarray:
    return np.array([len(t) if budget is None else min(len(t), int(budget)) for t in traces], dtype=float)


# -- the random reference ----------------------------------------------------------------
def random_reference(n: int, m: int, k: int = 1) -> float:
    """Exact mean draws to find ``k`` of ``m`` good among ``n`` without replacement: ``k*(n+1)/(m+1)``."""
    if not (1 <= k <= m <= n):
        raise ValueError(f"need 1 <= k <= m <= n, got k={k}, m={m}, n={n}")
    return k * (n + 1) / (m + 1)


def random_reference_pmf(n: int, m: int, k: int = 1) -> np.ndarray:
    """``P(n_k = j)`` for j = 1..n (index j-1): ``C(j-1, k-1) C(n-j, m-k) / C(n, m)``."""
    if not (1 <= k <= m <= n):
        raise ValueError(f"need 1 <= k <= m <= n, got k={k}, m={m}, n={n}")

    def lc(a: np.ndarray | int, b: int) -> np.ndarray:
        a = np.asarray(a, dtype=float)
        ok = (a >= b) & (b >= 0)
        return np.where(ok, gammaln(np.maximum(a, 0) + 1) - gammaln(b + 1) - gammaln(np.maximum(a - b, 0) + 1), -np.inf)

    j = np.arange(1, n + 1)
    logp = lc(j - 1, k - 1) + lc(n - j, m - k) - lc(n, m)
    return np.exp(logp)


def random_reference_law(n: int, m: int, k: int = 1) -> Any:
    """The law of the random reference's failures as a frozen ``scipy.stats.nhypergeom``.

    Drawing without replacement from ``n`` items of which ``m`` are good, the number of draws
    until the ``k``-th good one is ``k + X`` with ``X ~ nhypergeom(M=n, n=n-m, r=k)``: scipy's
    ``M`` is the population, its ``n`` the items counted (here the *bad* ones) and its ``r``
    the number of the other kind (here good) at which drawing stops.
    """
    if not (1 <= k <= m <= n):
        raise ValueError(f"need 1 <= k <= m <= n, got k={k}, m={m}, n={n}")
    return nhypergeom(n, n - m, k)


def random_reference_median(n: int, m: int, k: int = 1) -> float:
    """The exact median draw count of the random reference: ``k + median(nhypergeom(n, n-m, k))``.

    The median of a discrete law is the smallest value whose CDF reaches 1/2. Example: one good
    item among 3 (n = 3, m = 1, k = 1) arrives at draw 1, 2 or 3 with probability 1/3 each,
    so the median is 2.

    >>> random_reference_median(3, 1, 1)
    2.0
    """
    guess = int(k + random_reference_law(n, m, k).median())
    # scipy's ppf works in floating point and lands one draw late when the CDF is exactly 1/2
    # at a count (e.g. n=4, m=2, k=1: P(first draw good) = 1/2); settle it with exact integers.
    while guess > k and _reaches_half(n, m, k, guess - 1):
        guess -= 1
    while not _reaches_half(n, m, k, guess):
        guess += 1
    return float(guess)


def _reaches_half(n: int, m: int, k: int, j: int) -> bool:
    """Exactly, in integers: ``P(n_k <= j) >= 1/2``, i.e. ``2 * sum_i C(i-1, k-1) C(n-i, m-k) >= C(n, m)``."""
    total = sum(math.comb(i - 1, k - 1) * math.comb(n - i, m - k) for i in range(k, j + 1))
    return 2 * total >= math.comb(n, m)


def ceiling(n: int, m: int) -> float:
    """The largest possible AF against the random reference: ``(N+1)/(M+1)`` (an oracle needs k draws)."""
    return (n + 1) / (m + 1)


# -- medians and AF with censoring ---------------------------------------------------------
def median_censored(counts: np.ndarray, budgets: np.ndarray | float) -> tuple[float, bool]:
    """Median of first-passage counts with censored runs (``inf``). Returns ``(value, exact)``.

    Censored runs are placed at ``budget + 1`` (the least they can be); when the median does
    not change with censored runs at ``+inf`` it is exact, else ``value`` is a lower bound.
    """
    c = np.asarray(counts, dtype=float)
    if c.size == 0:
        return float("nan"), False
    b = np.broadcast_to(np.asarray(budgets, dtype=float), c.shape)
    low = np.where(np.isinf(c), b + 1, c)
    lo = float(np.median(low))
    hi = float(np.median(np.where(np.isinf(c), np.inf, c)))
    return lo, bool(lo == hi)


@dataclass(frozen=True)
class AccelerationFactor:
    """An AF with its 95 % bootstrap interval.

    ``bound``: "exact"; "upper" (the method's median is censored, so the true AF is at most
    ``value``); "lower" (the reference's median is censored: at least ``value``); "undefined".
    """

    value: float
    ci_low: float
    ci_high: float
    bound: str
    reference: float
    method_median: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        sign = BOUND_MARKS[self.bound] + (" " if self.bound != "exact" else "")
        return f"{sign}{self.value:.2f} {sign}[{self.ci_low:.2f}, {self.ci_high:.2f}]"


#: How a bound prints in front of a figure: AF <= value ("upper"), >= value ("lower"), unknown direction ("undefined").
BOUND_MARKS = {"exact": "", "upper": "<=", "lower": ">=", "undefined": "?"}


def combine_bounds(bounds: Iterable[str]) -> str:
    """The bound of a figure that increases with each of several inputs (a product, a geometric mean).

    Exact inputs give an exact figure; upper (lower) bounds alone give an upper (lower) bound;
    upper and lower bounds together, or any undefined input, leave the direction unknown.

    >>> combine_bounds(["exact", "upper", "exact"])
    'upper'
    >>> combine_bounds(["upper", "lower"])
    'undefined'
    """
    kinds = {b for b in bounds if b != "exact"}
    for b in kinds:
        if b not in BOUND_MARKS:
            raise ValueError(f"bound must be one of {list(BOUND_MARKS)}, got {b!r}")
    if not kinds:
        return "exact"
    return kinds.pop() if len(kinds) == 1 else "undefined"


def invert_bound(bound: str) -> str:
    """The bound of ``1/x`` when ``x`` has ``bound`` (an upper bound of x is a lower bound of 1/x)."""
    return {"upper": "lower", "lower": "upper"}.get(bound, bound)


def bootstrap_median_ratio(
    numerator: np.ndarray | float,
    denominator: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(numerator) / median(denominator)``.

    Runs (seeds) are resampled with replacement, each array independently; a scalar
    numerator (an exact reference) is held fixed. Censored values must already be replaced.
    """
    rng = np.random.default_rng(seed)
    den = np.asarray(denominator, dtype=float)
    idx = rng.integers(0, len(den), size=(n_boot, len(den)))
    d = np.median(den[idx], axis=1)
    if np.ndim(numerator) == 0:
        num = np.full(n_boot, float(numerator))
    else:
        arr = np.asarray(numerator, dtype=float)
        num = np.median(arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))], axis=1)
    ratio = num / d
    alpha = (1.0 - level) / 2
    return float(np.quantile(ratio, alpha)), float(np.quantile(ratio, 1 - alpha))


def acceleration_factor(
    method_counts: np.ndarray,
    reference: float | np.ndarray,
    method_budgets: np.ndarray | float | None = None,
    reference_budgets: np.ndarray | float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> AccelerationFactor:
    """``AF = median n_k(reference) / median n_k(method)`` with a 95 % bootstrap interval over seeds.

    ``reference`` is either a number (the exact random reference, held fixed in the bootstrap)
    or first-passage counts of reference runs (e.g. Sobol). Censored counts are ``inf``;
    ``*_budgets`` are the run lengths (needed when any count is censored). See the module
    docstring for how censoring turns the AF into a bound.
    """
    mc = np.asarray(method_counts, dtype=float)
    if mc.size == 0:
        raise ValueError("no method runs")
    if np.isinf(mc).any() and method_budgets is None:
        raise ValueError("censored method runs need method_budgets (the run lengths)")
    mb = np.zeros_like(mc) if method_budgets is None else np.broadcast_to(np.asarray(method_budgets, float), mc.shape)
    m_med, m_exact = median_censored(mc, mb)
    m_fill = np.where(np.isinf(mc), mb + 1, mc)
    if np.ndim(reference) == 0:
        r_med, r_exact, r_fill = float(reference), True, float(reference)
    else:
        rc = np.asarray(reference, dtype=float)
        if np.isinf(rc).any() and reference_budgets is None:
            raise ValueError("censored reference runs need reference_budgets (the run lengths)")
        rb = np.zeros_like(rc) if reference_budgets is None else np.broadcast_to(np.asarray(reference_budgets, float), rc.shape)
        r_med, r_exact = median_censored(rc, rb)
        r_fill = np.where(np.isinf(rc), rb + 1, rc)
    bound = {(True, True): "exact", (False, True): "upper", (True, False): "lower", (False, False): "undefined"}[(m_exact, r_exact)]
    lo, hi = bootstrap_median_ratio(r_fill, m_fill, n_boot=n_boot, seed=seed)
    return AccelerationFactor(r_med / m_med, lo, hi, bound, r_med, m_med)


# -- fraction found and EF -------------------------------------------------------------
def fraction_found(traces: Sequence[Trace], members: Iterable[int], n_max: int | None = None) -> np.ndarray:
    """``runs x n_max`` array: fraction of ``members`` found after n = 1..n_max experiments.

    Each member counts once, even if a trace repeats it. A run shorter than ``n_max`` keeps
    its last value (it found nothing more).
    """
    members = {int(i) for i in members}
    n_max = int(n_max if n_max is not None else max((len(t) for t in traces), default=0))
    out = np.zeros((len(traces), n_max))
    for r, t in enumerate(traces):
        seen: set[int] = set()
        found = 0
        for n in range(n_max):
            if n < len(t):
                i = int(t[n])
                if i in members and i not in seen:
                    found += 1
                seen.add(i)
            out[r, n] = found
    return out / max(len(members), 1)


def fraction_found_band(curves: np.ndarray, low: float = 25, high: float = 75) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and percentile band (IQR by default) over runs of :func:`fraction_found` curves."""
    c = np.asarray(curves, dtype=float)
    return np.median(c, axis=0), np.percentile(c, low, axis=0), np.percentile(c, high, axis=0)


def enhancement_factor(traces: Sequence[Trace], members: Iterable[int], n_pool: int, n_max: int | None = None) -> np.ndarray:
    """``EF(n) = mean fraction of good found after n / (n/N)`` for n = 1..n_max (index n-1)."""
    curves = fraction_found(traces, members, n_max)
    n = np.arange(1, curves.shape[1] + 1)
    return curves.mean(axis=0) / (n / n_pool)


def enhancement_summary(ef: np.ndarray, dim: int) -> dict[str, float | int | None]:
    """EF at n = 10*d and 20*d (None past the curve's end) and its maximum with the n reaching it."""
    ef = np.asarray(ef, dtype=float)

    def at(n: int) -> float | None:
        return float(ef[n - 1]) if 1 <= n <= len(ef) else None

    j = int(np.argmax(ef)) if len(ef) else 0
    return {
        "ef_10d": at(10 * dim),
        "ef_20d": at(20 * dim),
        "ef_max": float(ef[j]) if len(ef) else None,
        "ef_max_at": j + 1 if len(ef) else None,
    }


# -- aggregation -------------------------------------------------------------------------
def geometric_mean(values: Iterable[float | None]) -> float:
    """Geometric mean of the positive, finite values (NaN if there are none)."""
    v = np.array([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    return float(np.exp(np.log(v).mean())) if v.size else float("nan")


#: The targets the default planner is chosen by (benchmark-definitions.md, "Choosing a default planner").
SELECTION_TARGETS = ("first", "80%")


def geometric_mean_af(
    rows: Sequence[Mapping[str, Any]],
    targets: str | Sequence[str] = SELECTION_TARGETS,
    columns: Sequence[str] = ("af_vs_random", "af_vs_sobol"),
) -> list[dict[str, Any]]:
    """Per planner: geometric means over datasets of the AF columns, per target and over the targets together.

    For every planner there is one row per target in ``targets`` and, when there are several,
    one more whose ``target`` joins them with ``+`` (``"first+80%"``): the geometric mean over
    every (dataset, target) cell, the figure a default planner is chosen by, so that it cannot
    win one target by losing the other. ``gmean_<column>_bound`` says whether a mean is
    exact or a bound (:func:`combine_bounds` of the cells' bounds); ``bounds`` lists the cells
    that are bounds, so a reader sees them. Columns absent from the rows are left out.
    """
    wanted = [targets] if isinstance(targets, str) else list(targets)
    groups: list[tuple[str, set[str]]] = [(t, {t}) for t in wanted]
    if len(wanted) > 1:
        groups.append(("+".join(wanted), set(wanted)))
    planners = list(dict.fromkeys(r["planner"] for r in rows))
    out = []
    for planner in planners:
        for label, members in groups:
            cells = [r for r in rows if r["planner"] == planner and r["target"] in members]
            if not cells:
                continue
            row: dict[str, Any] = {
                "planner": planner,
                "target": label,
                "datasets": len({r["dataset"] for r in cells}),
                "cells": len(cells),
                "gmean_ceiling": geometric_mean(r["ceiling"] for r in cells),
            }
            for col in columns:
                have = [r for r in cells if r.get(col) is not None]
                if not have:
                    continue
                bound_key = "af_bound" if col == "af_vs_random" else f"{col}_bound"
                row[f"gmean_{col}"] = geometric_mean(r[col] for r in have)
                row[f"gmean_{col}_bound"] = combine_bounds(r.get(bound_key, "exact") for r in have)
                if len(have) < len(cells):
                    row[f"gmean_{col}_cells"] = len(have)
            row["bounds"] = sorted(
                f"{r['dataset']}/{r['target']} ({r['af_bound']})" for r in cells if r.get("af_bound", "exact") != "exact"
            )
            out.append(row)
    return out


def summarize_traces(
    traces: Mapping[str, Sequence[Trace]],
    values: Sequence[float] | np.ndarray,
    *,
    direction: str = "maximize",
    dataset: str = "dataset",
    dim: int = 1,
    q: float = 0.05,
    targets: Iterable[str] = ("first", "80%", "best"),
    budget: int | None = None,
    reference_planner: str | None = None,
    reference_stat: str = "median",
    n_boot: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (planner, target); see :func:`summarize` (this takes the pool's values directly)."""
    if reference_stat not in ("median", "mean"):
        raise ValueError(f"reference_stat must be 'median' (benchmark-definitions.md) or 'mean', got {reference_stat!r}")
    v = np.asarray(values, dtype=float)
    n_pool = len(v)
    tg = standard_targets(v, q, direction, targets)
    good = tuple(int(i) for i in good_set(v, q, direction))
    m_good = len(good)
    rows = []
    for planner, runs in traces.items():
        runs = [list(map(int, t)) for t in runs]
        if not runs:
            continue
        budgets = _budgets(runs, budget)
        ef = enhancement_factor([t[: int(b)] for t, b in zip(runs, budgets)], good, n_pool, n_max=int(budgets.max()))
        efs = enhancement_summary(ef, dim)
        for tname, t in tg.items():
            counts = first_passage_counts(runs, t.members, t.k, budget)
            ref_mean = random_reference(n_pool, t.m, t.k)
            ref_median = random_reference_median(n_pool, t.m, t.k)
            ref = {"median": ref_median, "mean": ref_mean}[reference_stat]
            af = acceleration_factor(counts, ref, budgets, n_boot=n_boot, seed=seed)
            _, med_exact = median_censored(counts, budgets)
            finite = counts[np.isfinite(counts)]
            q25, q75 = np.percentile(np.where(np.isinf(counts), budgets + 1, counts), [25, 75])
            # An IQR end is a lower bound when it moves once censored runs go further out.
            far = np.percentile(np.where(np.isinf(counts), budgets + 1 + 1e9, counts), [25, 75])
            iqr_exact = (bool(far[0] == q25), bool(far[1] == q75))
            row: dict[str, Any] = {
                "dataset": dataset,
                "planner": planner,
                "target": tname,
                "k": t.k,
                "M": t.m,
                "N": n_pool,
                "q": q,
                "seeds": len(runs),
                "budget": int(budgets.max()),
                "median_n": af.method_median,
                "median_exact": med_exact,
                "iqr": (float(q25), float(q75)),
                "iqr_exact": iqr_exact,
                "reached_fraction": float(len(finite) / len(counts)),
                "random_reference": ref,
                "random_reference_median": ref_median,
                "random_reference_mean": ref_mean,
                "reference_stat": reference_stat,
                "af_vs_random": af.value,
                "af_ci": (af.ci_low, af.ci_high),
                "af_bound": af.bound,
                "ceiling": ceiling(n_pool, t.m),
                "m_good": m_good,
                **efs,
            }
            if reference_planner is not None and reference_planner in traces and reference_planner != planner:
                ref_runs = [list(map(int, x)) for x in traces[reference_planner]]
                rc = first_passage_counts(ref_runs, t.members, t.k, budget)
                af2 = acceleration_factor(counts, rc, budgets, _budgets(ref_runs, budget), n_boot=n_boot, seed=seed)
                key = f"af_vs_{reference_planner}"
                if key in row:  # "random" runs as reference: keep the exact reference's column
                    key += "_runs"
                row[key] = af2.value
                row[f"{key}_ci"] = (af2.ci_low, af2.ci_high)
                row[f"{key}_bound"] = af2.bound
            rows.append(row)
    return rows


def summarize(
    traces: Mapping[str, Sequence[Trace]],
    dataset: Any,
    q: float = 0.05,
    targets: Iterable[str] = ("first", "80%", "best"),
    **options: Any,
) -> list[dict[str, Any]]:
    """Benchmark rows for one dataset: one per (planner, target).

    Parameters
    ----------
    traces:
        ``{planner name: [trace per seed]}``; a trace is the pool indices measured, in order.
    dataset:
        A :class:`~labflow.sim.datasets.Dataset` (or anything with ``name``, ``y``,
        ``objective.direction`` and ``space``).
    q:
        Good-set fraction (0.05; 0.01 for pools of 1,000 points or more).
    targets:
        Any of "first", "80%", "best".
    options:
        ``budget`` (truncate runs), ``reference_planner`` (e.g. "sobol": adds
        ``af_vs_sobol`` with ``af_vs_sobol_ci`` and ``af_vs_sobol_bound``),
        ``reference_stat`` ("median", the exact median of the negative hypergeometric law as
        benchmark-definitions.md defines AF, or "mean" for the older tables), ``n_boot``, ``seed``.

    Each row holds: dataset, planner, target, k, M, N, q, seeds, budget, median_n,
    median_exact, iqr, iqr_exact, reached_fraction, random_reference (the one AF uses),
    random_reference_median, random_reference_mean, reference_stat, af_vs_random, af_ci,
    af_bound, ceiling, m_good, ef_10d, ef_20d, ef_max, ef_max_at. ``median_n`` and ``iqr``
    place censored runs at budget + 1 (so they are lower bounds when ``median_exact`` /
    ``iqr_exact`` is False); ``af_bound`` applies to ``af_vs_random`` and ``af_ci`` alike;
    ``reached_fraction`` is the share of runs that reached the target within the budget;
    EF is computed on the good set (top ``ceil(q*N)``).
    """
    return summarize_traces(
        traces,
        dataset.y,
        direction=dataset.objective.direction,
        dataset=dataset.name,
        dim=len(dataset.space),
        q=q,
        targets=targets,
        **options,
    )


# -- rendering -----------------------------------------------------------------------------
DEFAULT_COLUMNS = ("dataset", "planner", "target", "median_n", "iqr", "reached_fraction", "af_vs_random", "af_ci", "ceiling", "ef_10d", "seeds")


def _bound_of(key: str, row: Mapping[str, Any]) -> str:
    """Which bound a column's figure carries: ``af_vs_random`` and ``af_ci`` use ``af_bound``;
    any other column ``X`` (or ``X_ci``) uses ``X_bound`` when the row has one."""
    if key in ("af_vs_random", "af_ci"):
        return row.get("af_bound", "exact")
    base = key[: -len("_ci")] if key.endswith("_ci") else key
    return row.get(f"{base}_bound", "exact")


def _number(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.0f}" if v == round(v) and abs(v) >= 1 else f"{v:.2f}"


def _fmt(key: str, v: Any, row: Mapping[str, Any]) -> str:
    if v is None:
        return "-"
    mark = BOUND_MARKS.get(_bound_of(key, row), "?")
    if key == "median_n" and not row.get("median_exact", True):
        return f">{v - 1:.0f}"
    if key == "iqr" and isinstance(v, (tuple, list)):
        exact = row.get("iqr_exact", (True, True))
        return "[" + ", ".join(_number(x) if e else f">{x - 1:.0f}" for x, e in zip(v, exact)) + "]"
    if key == "reached_fraction":
        return f"{100 * v:.0f}%"
    if isinstance(v, (tuple, list)):
        return mark + "[" + ", ".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in v) + "]"
    if isinstance(v, float):
        if key.startswith(("af_", "gmean_af")):
            return f"{mark}{v:.2f}"
        return mark + _number(v)
    return mark + str(v) if f"{key}_bound" in row else str(v)


def budget_warnings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per AF that the budget censored (a bound, not a measurement), saying so and what
    to change; an AF printed above its ceiling -- the most any planner can reach against random --
    says that the budget was too small for the figure to mean anything."""
    out = []
    for r in rows:
        bound = r.get("af_bound", "exact")
        value = r.get("af_vs_random")
        if bound == "exact" or not isinstance(value, (int, float)):
            continue
        where = f"{r.get('dataset', '?')} / {r.get('planner', '?')} / target {r.get('target', '?')}"
        reached = r.get("reached_fraction")
        ran = f"{reached:.0%} of the runs reached the target" if isinstance(reached, (int, float)) else "runs were censored"
        line = (f"{where}: AF {BOUND_MARKS.get(bound, '?')}{value:.2f} is a bound, not a measurement ({ran} "
                f"within the budget of {r.get('budget', '?')} experiments)")
        ceil = r.get("ceiling")
        if isinstance(ceil, (int, float)) and math.isfinite(value) and value > ceil:
            line += f"; it is above the ceiling {ceil:.2f}, the largest AF possible: the budget was too small"
        out.append(line + "; raise --budget")
    return out


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as a GitHub markdown table.

    A figure that is a bound prints with its mark in every column it reaches (``<=`` upper,
    ``>=`` lower, ``?`` direction unknown): ``af_vs_random`` and ``af_ci`` by ``af_bound``,
    any other column ``X`` and ``X_ci`` by ``X_bound``. A censored median prints as ``>budget``.
    """
    cols = list(columns or [c for c in DEFAULT_COLUMNS if any(c in r for r in rows)])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c, r.get(c), r) for c in cols) + " |")
    return "\n".join(lines)


# -- lab time --------------------------------------------------------------------------------
MINUTE, HOUR = 60.0, 3600.0
#: Experiment durations of benchmark-definitions.md, in seconds: 1 min, 10 min, 1 h, 8 h.
T_EXP_GRID = (1 * MINUTE, 10 * MINUTE, 1 * HOUR, 8 * HOUR)
#: Instrument counts of benchmark-definitions.md.
P_GRID = (1, 4, 16)

PlanLatency = float | Callable[[int], float]


def async_timeline(n: int, instruments: int, t_exp: float, t_plan: PlanLatency = 0.0, t_orch: float = 0.0) -> np.ndarray:
    """Completion times [s] of the first ``n`` experiments on ``instruments`` asynchronous instruments.

    Model: one planner serves suggestions one at a time. A free instrument asks for a
    suggestion; the planner starts on it when it is free itself and takes ``t_plan`` seconds
    (a number, or a function of the number of suggestions made so far, for planners that slow
    down as data grow); then orchestration takes ``t_orch`` and the experiment ``t_exp``,
    after which the instrument is free again. Returns the completion times in increasing order
    (the order results come back, which is the trace order).
    """
    if n < 0 or instruments < 1:
        raise ValueError(f"need n >= 0 and instruments >= 1, got n={n}, instruments={instruments}")
    free = np.zeros(int(instruments))
    planner_free = 0.0
    done = np.empty(int(n))
    for i in range(int(n)):
        j = int(np.argmin(free))
        plan = float(t_plan(i)) if callable(t_plan) else float(t_plan)
        start = max(free[j], planner_free)
        planner_free = start + plan
        done[i] = planner_free + t_orch + t_exp
        free[j] = done[i]
    return np.sort(done)


def time_to_target(trace: Trace, times: Sequence[float], members: Iterable[int], k: int = 1) -> float:
    """Lab time [s] until a run held ``k`` distinct ``members``, from its recorded completion times.

    ``times[i]`` is when the result of ``trace[i]`` came back (e.g. from a virtual-time
    executor); the run is put in completion order first. ``inf`` when the target is never reached.
    """
    t = np.asarray(times, dtype=float)
    if len(t) != len(trace):
        raise ValueError(f"trace has {len(trace)} entries but times has {len(t)}")
    order = np.argsort(t, kind="stable")
    n = first_passage([trace[i] for i in order], members, k)
    return float("inf") if n is None else float(t[order][n - 1])


def makespan(n_target: float | None, instruments: int, t_exp: float, t_plan: PlanLatency = 0.0, t_orch: float = 0.0) -> float:
    """Time [s] until the ``n_target``-th result comes back (``inf`` when the target is censored)."""
    if n_target is None or not np.isfinite(n_target):
        return float("inf")
    n = int(math.ceil(n_target))
    if n < 1:
        return 0.0
    return float(async_timeline(n, instruments, t_exp, t_plan, t_orch)[n - 1])


def overhead_break_even(t_plan: float, t_orch: float = 0.0, fraction: float = 0.05, include_orchestration: bool = False) -> float:
    """The ``t_exp`` [s] below which overhead exceeds ``fraction`` of a sequential cycle.

    Cycle = t_plan + t_orch + t_exp. With planning overhead alone (default):
    ``t_plan / cycle > f  <=>  t_exp < t_plan*(1-f)/f - t_orch``; with
    ``include_orchestration``: ``(t_plan+t_orch)/cycle > f  <=>  t_exp < (t_plan+t_orch)*(1-f)/f``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if include_orchestration:
        return max(0.0, (t_plan + t_orch) * (1 - fraction) / fraction)
    return max(0.0, t_plan * (1 - fraction) / fraction - t_orch)


def lab_time_table(
    n_method: Mapping[int, float | None],
    n_baseline: Mapping[int, float | None],
    t_plan_method: PlanLatency,
    t_plan_baseline: PlanLatency = 0.0,
    t_orch: float = 0.0,
    t_exps: Sequence[float] = T_EXP_GRID,
    instruments: Sequence[int] = P_GRID,
) -> list[dict[str, Any]]:
    """Speed-up in lab time, ``S = T_baseline / T_method``, for every ``t_exp`` and ``P``.

    ``n_method[P]`` and ``n_baseline[P]`` are the median first-passage counts measured *with*
    P instruments (never n(1)/P). Each row reports:

    * ``algorithmic`` = n_baseline / n_method (experiments saved);
    * ``timing`` = S / algorithmic (what planning latency and orchestration cost or save);
    * ``automation`` = T_method(P=1) / T_method(P) (what running P instruments buys the method;
      None when P = 1 was not measured);
    * ``break_even_t_exp``: the t_exp below which the method's planning exceeds 5 % of a cycle.
    """
    rows = []
    for p in instruments:
        if p not in n_method or p not in n_baseline:
            continue
        for te in t_exps:
            t_m = makespan(n_method[p], p, te, t_plan_method, t_orch)
            t_b = makespan(n_baseline[p], p, te, t_plan_baseline, t_orch)
            t_m1 = makespan(n_method[1], 1, te, t_plan_method, t_orch) if 1 in n_method else None
            nm, nb = n_method[p], n_baseline[p]
            alg = (nb / nm) if (nm and nb and np.isfinite(nm) and np.isfinite(nb)) else None
            s = t_b / t_m if np.isfinite(t_m) and np.isfinite(t_b) and t_m > 0 else None
            if callable(t_plan_method):  # the latency at the last suggestion before the target
                plan0 = float(t_plan_method(int(nm) - 1 if nm and np.isfinite(nm) else 0))
            else:
                plan0 = float(t_plan_method)
            rows.append(
                {
                    "P": p,
                    "t_exp_s": te,
                    "n_method": nm,
                    "n_baseline": nb,
                    "T_method_s": t_m,
                    "T_baseline_s": t_b,
                    "speedup": s,
                    "algorithmic": alg,
                    "timing": (s / alg) if (s is not None and alg) else None,
                    "automation": (t_m1 / t_m) if (t_m1 is not None and np.isfinite(t_m1) and np.isfinite(t_m) and t_m > 0) else None,
                    "break_even_t_exp_s": overhead_break_even(plan0, t_orch),
                }
            )
    return rows


# -- the headline: labflow around the clock vs a conventional lab --------------------------
DAY, WEEK = 24 * HOUR, 7 * 24 * HOUR


@dataclass(frozen=True)
class WorkingHours:
    """When a conventional lab runs experiments: ``hours_per_day`` on the first ``days_per_week`` days of each week.

    The campaign starts at the opening of the first working day (day 0, a Monday). The rule an
    experiment of duration ``t_exp`` follows (:func:`calendar_makespan`):

    * it starts at once if it ends before closing time (it fits in what is left of the working day);
    * otherwise it waits for the next opening: nobody starts an experiment they cannot finish;
    * an experiment longer than a whole working day starts only at an opening and runs on
      unattended past closing (the next one then waits for the next opening after it ends).

    ``WorkingHours(24, 7)`` is around the clock: experiments run back to back.
    """

    hours_per_day: float = 8.0
    days_per_week: int = 5

    def __post_init__(self) -> None:
        h = self.hours_per_day
        if not (isinstance(h, (int, float)) and math.isfinite(h) and 0 < h <= 24):
            raise ValueError(f"working hours: hours_per_day must be in (0, 24], got {h!r}")
        d = self.days_per_week
        if not (isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7):
            raise ValueError(f"working hours: days_per_week must be a whole number from 1 to 7, got {d!r}")

    @property
    def around_the_clock(self) -> bool:
        return self.hours_per_day >= 24 and self.days_per_week == 7

    @property
    def fraction(self) -> float:
        """Share of the week the lab is open: 8 h x 5 d / 168 h = 0.238."""
        return self.hours_per_day * self.days_per_week / (7 * 24)

    def is_working_day(self, day: int) -> bool:
        return day % 7 < self.days_per_week

    def next_opening(self, t: float) -> float:
        """The first opening time [s] at or after ``t``."""
        day = math.ceil(t / DAY - 1e-12)
        while not self.is_working_day(day):
            day += 1
        return day * DAY

    def closing(self, t: float) -> float:
        """When the working stretch holding time ``t`` ends [s]: its day's closing, or later when
        24-hour working days follow each other (``inf`` when the lab never closes)."""
        if self.around_the_clock:
            return math.inf
        day = math.floor(t / DAY + 1e-12)
        end = day * DAY + self.hours_per_day * HOUR
        while self.hours_per_day >= 24 and self.is_working_day(day + 1):
            day += 1
            end = day * DAY + DAY
        return end

    def is_open(self, t: float) -> bool:
        day = math.floor(t / DAY + 1e-12)
        return self.is_working_day(day) and t < day * DAY + self.hours_per_day * HOUR - 1e-9


def calendar_makespan(n: int, t_exp: float, hours: WorkingHours = WorkingHours()) -> float:
    """Calendar time [s] for ``n`` experiments of ``t_exp`` seconds each, one after the other on one
    instrument, within ``hours`` (see :class:`WorkingHours` for the rule).

    With 8 h a day, 5 days a week and 1-hour experiments: 8 fit in day 0 (done at 8 h), the 9th
    ends at 25 h (day 1, 1 h after opening), the 41st at 169 h (the Monday after the weekend).

    >>> calendar_makespan(9, 3600.0) / 3600.0
    25.0
    """
    if n < 0 or int(n) != n:
        raise ValueError(f"n must be a whole number of experiments >= 0, got {n!r}")
    if not (math.isfinite(t_exp) and t_exp > 0):
        raise ValueError(f"t_exp must be a positive duration in seconds, got {t_exp!r}")
    if hours.around_the_clock:
        return float(n) * t_exp
    eps = 1e-9 * max(1.0, t_exp)
    long_runs = t_exp > hours.hours_per_day * HOUR + eps  # longer than a working day
    t = 0.0
    for _ in range(int(n)):
        if long_runs:
            start = hours.next_opening(t - eps)  # only at an opening (now, if it is one)
        else:
            start = t if hours.is_open(t) and t + t_exp <= hours.closing(t) + eps else hours.next_opening(t + eps)
            while start + t_exp > hours.closing(start) + eps:  # e.g. a short working day after a 24-h stretch
                start = hours.next_opening(start + eps)
        t = start + t_exp
    return t


@dataclass(frozen=True)
class MedianCount:
    """A median first-passage count and whether it is exact (False: a lower bound, runs were censored)."""

    value: float
    exact: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value >= 1):
            raise ValueError(f"a median count must be a finite number of experiments >= 1, got {self.value!r}")

    @property
    def bound(self) -> str:
        """As an input: ``"exact"`` or ``"lower"`` (the true median is at least ``value``)."""
        return "exact" if self.exact else "lower"


def _ratio_bound(numerator: str, denominator: str) -> str:
    """Bound of ``a / b`` from the bounds of an increasing ``a`` and an increasing ``b``."""
    return combine_bounds([numerator, invert_bound(denominator)])


def format_duration(seconds: float) -> str:
    """``90`` -> "1.5 min", ``7200`` -> "2 h", ``3 * 86400`` -> "3 d"; "inf" for a censored time."""
    if not math.isfinite(seconds):
        return "inf"
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size:
            v = seconds / size
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 1e-9 else f"{v:.3g} {unit}"
    return f"{seconds:.3g} s"


def conventional_lab_table(
    n_method: Mapping[int, MedianCount],
    n_conventional: MedianCount,
    *,
    t_plan: float,
    t_orch: float = 0.0,
    hours: WorkingHours = WorkingHours(),
    t_exps: Sequence[float] = T_EXP_GRID,
    instruments: Sequence[int] = P_GRID,
) -> list[dict[str, Any]]:
    """The headline table: labflow on P instruments around the clock vs a conventional lab, factor by factor.

    Parameters
    ----------
    n_method:
        ``{P: median experiments to the target}`` measured with P instruments running
        asynchronously (real batches with pending experiments, never n(1)/P). Must hold P = 1.
    n_conventional:
        The conventional design's median on one instrument (grid or the best non-adaptive design).
    t_plan, t_orch:
        labflow's measured median planning latency and its orchestration overhead per
        experiment [s]. The conventional design is planned in advance (no latency).
    hours:
        The conventional lab's working hours; labflow's instruments run around the clock.

    For each P and t_exp, with ``T0(n, P)`` the makespan of n experiments on P instruments
    without overhead, ``T(n, P)`` with it (:func:`makespan`) and ``C(n)`` the conventional
    calendar time (:func:`calendar_makespan`), the total speed-up is split into factors whose
    product is exactly the total (each is a ratio of consecutive terms of a telescoping product):

    * ``algorithmic`` = n_conv / n_method(1): fewer experiments;
    * ``parallel`` = n_method(1)*t_exp / T0(n_method(P), P): P instruments, *including* the
      asynchronous penalty; it is ``parallel_ideal`` (= n_method(P)*t_exp / T0, about P) times
      ``async_penalty`` (= n_method(1) / n_method(P), usually below 1);
    * ``hours`` = C(n_conv) / (n_conv*t_exp): running around the clock instead of in working hours
      (the calendar schedules ``ceil(n_conv)`` experiments when a median ends in .5);
    * ``overhead`` = T0(n_method(P), P) / T(n_method(P), P): planning and orchestration (<= 1);
    * ``speedup`` = C(n_conv) / T(n_method(P), P) = algorithmic * parallel * hours * overhead.

    Every figure carries a ``<name>_bound`` ("exact", "upper", "lower" or "undefined") from the
    censoring of the medians it is made of: a censored count is a lower bound of the true median.
    """
    if 1 not in n_method:
        raise ValueError(f"n_method needs the one-instrument median (P = 1) for the algorithmic factor; got P = {sorted(n_method)}")
    if t_plan < 0 or t_orch < 0:
        raise ValueError(f"t_plan and t_orch must be >= 0 seconds, got t_plan={t_plan!r}, t_orch={t_orch!r}")
    n1, nc = n_method[1], n_conventional
    rows = []
    for p in instruments:
        if p not in n_method:
            continue
        np_ = n_method[p]
        for te in t_exps:
            t0 = makespan(np_.value, p, te)
            tm = makespan(np_.value, p, te, t_plan, t_orch)
            cal = calendar_makespan(int(math.ceil(nc.value)), te, hours)
            alg = nc.value / n1.value
            par = n1.value * te / t0
            par_ideal = np_.value * te / t0
            penalty = n1.value / np_.value
            hrs = cal / (nc.value * te)  # the median count itself (it may end in .5), as in "algorithmic"
            ovh = t0 / tm
            total = cal / tm
            rows.append(
                {
                    "P": p,
                    "t_exp_s": te,
                    "t_exp": format_duration(te),
                    "n_conventional": nc.value,
                    "n_conventional_bound": nc.bound,
                    "n_method_P1": n1.value,
                    "n_method_P1_bound": n1.bound,
                    "n_method": np_.value,
                    "n_method_bound": np_.bound,
                    "T_conventional_s": cal,
                    "T_conventional": format_duration(cal),
                    "T_conventional_bound": nc.bound,
                    "T_method_s": tm,
                    "T_method": format_duration(tm),
                    "T_method_bound": np_.bound,
                    "speedup": total,
                    "speedup_bound": _ratio_bound(nc.bound, np_.bound),
                    "algorithmic": alg,
                    "algorithmic_bound": _ratio_bound(nc.bound, n1.bound),
                    "parallel": par,
                    "parallel_bound": _ratio_bound(n1.bound, np_.bound),
                    "parallel_ideal": par_ideal,
                    "parallel_ideal_bound": "exact" if np_.exact else "undefined",
                    "async_penalty": penalty,
                    "async_penalty_bound": _ratio_bound(n1.bound, np_.bound),
                    "hours": hrs,
                    "hours_bound": "exact" if nc.exact else "undefined",
                    "overhead": ovh,
                    "overhead_bound": "exact" if np_.exact else "undefined",
                    "t_plan_s": t_plan,
                    "t_orch_s": t_orch,
                    "planning_share": t_plan / (t_plan + t_orch + te),
                    "work_hours": hours.hours_per_day,
                    "work_days": hours.days_per_week,
                }
            )
    return rows
