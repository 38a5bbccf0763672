"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display needed).

Each ``figure_*`` function takes a :class:`~labflow.report.data.CampaignView` (and what else
it needs) and returns a :class:`matplotlib.figure.Figure`, or ``None`` when the campaign has
nothing to show for it (a model's view of three points, a Pareto front of one objective).
:func:`png` renders a figure to PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from labflow.pareto import pareto_mask
from labflow.report.data import CampaignView, best_so_far, time_scale
from labflow.report.model import ModelView
from labflow.space import Categorical

__all__ = [
    "figure_best_so_far",
    "figure_failures",
    "figure_model_2d",
    "figure_model_cv",
    "figure_model_slices",
    "figure_pairs",
    "figure_parameters",
    "figure_pareto",
    "figure_timing",
    "png",
]

CMAP = "viridis"
FAIL = "#d62728"
BASELINE_COLOURS = {"random": "#7f7f7f", "sobol": "#ff7f0e"}
MAX_PAIRS = 6


def png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _new(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


def _outcome_colours(view: CampaignView) -> tuple[np.ndarray, Normalize, str]:
    o = view.objectives[0]
    v = view.values(o.name)
    finite = v[np.isfinite(v)]
    norm = Normalize(float(finite.min()) if len(finite) else 0.0, float(finite.max()) if len(finite) else 1.0)
    return v, norm, view.label(o.name)


def _mark_initial(ax: Any, view: CampaignView) -> None:
    k = view.n_initial()
    if k:
        ax.axvspan(0.5, k + 0.5, color="0.85", alpha=0.6, lw=0, label=f"initial design ({k})")


# -- progress --------------------------------------------------------------------------
def figure_best_so_far(view: CampaignView, baselines: Mapping[str, Any] | None = None, optimum: Mapping[str, float] | None = None) -> Figure:
    """Best so far against experiment number and against (simulated or real) time, one row per objective.

    Every measured value is a dot, failures are red crosses on the axis, the initial design is
    shaded; baselines (re-runs) are drawn as medians with an interquartile band -- against time
    only when the campaign itself ran in simulated time (the virtual executor): the re-runs are
    in simulated seconds, a campaign on a real-time executor in wall-clock seconds.
    """
    objs = view.objectives
    fig = _new(11, 3.4 * len(objs))
    axes = fig.subplots(len(objs), 2, squeeze=False)
    n = view.numbers()
    t = view.t_finished()
    div, tunit = time_scale(float(np.nanmax(t)) if np.isfinite(t).any() else math.nan)
    sim = view.executor() == "virtual"
    for row, o in enumerate(objs):
        vals = view.values(o.name)
        best = view.best_so_far(o)
        fails = view.failed_mask()
        for col, (x, xlabel) in enumerate(((n, "experiment number"), (t / div, f"{'simulated' if sim else 'wall-clock'} time [{tunit}]"))):
            ax = axes[row, col]
            if col == 0:
                _mark_initial(ax, view)
            ax.plot(x, vals, "o", ms=3.5, color="#1f77b4", alpha=0.45, label="measured")
            ax.step(x, best, where="post", color="#1f77b4", lw=2.2, label=f"best so far ({view.planner})")
            if fails.any():
                lo = np.nanmin(vals) if np.isfinite(vals).any() else 0.0
                ax.plot(x[fails], np.full(fails.sum(), lo), "x", color=FAIL, ms=6, label=f"failed ({int(fails.sum())})")
            if baselines and col == 1 and not sim:
                # the re-runs are in simulated seconds; this campaign ran in wall-clock seconds: one axis cannot hold both
                ax.text(0.98, 0.02, "baselines ran in simulated time: compare them by experiment number (left)",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#555555")
            elif baselines:
                for name, runs in baselines.get("planners", {}).items():
                    traces = np.array([best_so_far(np.array(r, dtype=float), o.sign) for r in runs["values"][o.name]], dtype=float)
                    if traces.size == 0:
                        continue
                    med = np.nanmedian(traces, axis=0)
                    q1, q3 = np.nanpercentile(traces, [25, 75], axis=0)
                    colour = BASELINE_COLOURS.get(name, None)
                    if col == 0:
                        xb = np.arange(1, traces.shape[1] + 1)
                    else:
                        tt = np.array(runs["t_finished"], dtype=float)
                        if not np.isfinite(tt).any():
                            continue
                        xb = np.nanmedian(tt, axis=0) / div
                    (line,) = ax.step(xb, med, where="post", ls="--", lw=1.5, color=colour,
                                      label=f"{name} median ({len(runs['values'][o.name])} re-runs)")
                    ax.fill_between(xb, q1, q3, step="post", color=line.get_color(), alpha=0.15, lw=0)
            if optimum and o.name in optimum and optimum[o.name] is not None:
                ax.axhline(optimum[o.name], color="k", ls=":", lw=1, label="known optimum")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(view.label(o.name))
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7, loc="best")
        axes[row, 0].set_title(f"{o.name}: {o.direction}", fontsize=10)
    return fig


def figure_parameters(view: CampaignView) -> Figure:
    """Each parameter's values over the campaign, coloured by the first objective; failures in red."""
    params = view.record.space.parameters
    ncol = min(3, len(params))
    nrow = math.ceil(len(params) / ncol)
    fig = _new(4.0 * ncol, 2.8 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    n = view.numbers()
    colour, norm, clabel = _outcome_colours(view)
    fails = view.failed_mask()
    sc = None
    for ax, p in zip(axes, params):
        y = view.parameter_values(p.name)
        _mark_initial(ax, view)
        ok = ~fails
        sc = ax.scatter(n[ok], y[ok], c=colour[ok], cmap=CMAP, norm=norm, s=14)
        if fails.any():
            ax.scatter(n[fails], y[fails], marker="x", color=FAIL, s=22, label="failed")
        ax.set_title(view.label(p.name), fontsize=9)
        ax.set_xlabel("experiment number")
        if isinstance(p, Categorical):
            ax.set_yticks(range(len(p.choices)), list(p.choices))
        elif view.is_log(p.name):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[len(params):]:
        ax.set_visible(False)
    if sc is not None:
        fig.colorbar(sc, ax=axes[: len(params)].tolist(), label=clabel, shrink=0.9)
    return fig


def figure_pairs(view: CampaignView) -> Figure:
    """Pairwise scatter of the parameters (the first six), coloured by the first objective.

    Failures are red crosses; the best experiment is a red star; the diagonal shows each
    parameter's histogram.
    """
    params = view.record.space.parameters[:MAX_PAIRS]
    d = len(params)
    size = max(2.0, min(2.4, 12 / max(d, 1)))
    fig = _new(size * d + 1.2, size * d)
    axes = fig.subplots(d, d, squeeze=False)
    colour, norm, clabel = _outcome_colours(view)
    fails = view.failed_mask()
    data = {p.name: view.parameter_values(p.name) for p in params}
    o = view.objectives[0]
    v = view.values(o.name)
    best = int(np.nanargmax(o.sign * v)) if np.isfinite(v).any() else None
    sc = None
    for i, pi in enumerate(params):
        for j, pj in enumerate(params):
            ax = axes[i, j]
            if i == j:
                finite = data[pi.name][np.isfinite(data[pi.name])]
                if isinstance(pi, Categorical):
                    ax.hist(finite, bins=np.arange(len(pi.choices) + 1) - 0.5, color="0.6")
                else:
                    bins = np.geomspace(pi.low, pi.high, 16) if view.is_log(pi.name) else 15
                    ax.hist(finite, bins=bins, color="0.6")
            else:
                x, y = data[pj.name], data[pi.name]
                ok = ~fails
                sc = ax.scatter(x[ok], y[ok], c=colour[ok], cmap=CMAP, norm=norm, s=10)
                if fails.any():
                    ax.scatter(x[fails], y[fails], marker="x", color=FAIL, s=16)
                if best is not None:
                    ax.plot(x[best], y[best], "*", color=FAIL, ms=11, mec="k", mew=0.5)
                if view.is_log(pi.name):
                    ax.set_yscale("log")
            if view.is_log(pj.name):
                ax.set_xscale("log")
            if isinstance(pj, Categorical):
                ax.set_xticks(range(len(pj.choices)), list(pj.choices), fontsize=6)
            if isinstance(pi, Categorical) and i != j:
                ax.set_yticks(range(len(pi.choices)), list(pi.choices), fontsize=6)
            ax.tick_params(labelsize=7)
            if i == d - 1:
                ax.set_xlabel(view.label(pj.name), fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0:
                ax.set_ylabel(view.label(pi.name), fontsize=8)
            elif i != j:
                ax.set_yticklabels([])
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), label=clabel, shrink=0.8)
    if len(view.record.space.parameters) > MAX_PAIRS:
        fig.suptitle(f"first {MAX_PAIRS} of {len(view.record.space.parameters)} parameters", fontsize=9)
    return fig


# -- the model's view --------------------------------------------------------------------
def figure_model_slices(view: CampaignView, mv: ModelView) -> Figure:
    """The refitted model along each parameter through the best point: mean with +-2 sd, one row per objective."""
    slices = mv.slices()
    objs = view.objectives[:3]
    ncol = len(slices)
    fig = _new(max(3.2 * ncol, 5), 2.9 * len(objs))
    axes = fig.subplots(len(objs), ncol, squeeze=False)
    for r, o in enumerate(objs):
        measured = view.values(o.name)
        for c, s in enumerate(slices):
            ax = axes[r, c]
            mean, sd = s.mean[:, r], s.sd[:, r]
            xs = np.arange(len(s.x)) if s.categorical else np.asarray(s.x, dtype=float)
            obs_x = view.parameter_values(s.parameter)
            ax.plot(obs_x, measured, ".", color="0.55", ms=4, alpha=0.5, label="measured (all, projected)")
            if s.categorical:
                ax.errorbar(xs, mean, yerr=2 * sd, fmt="o", color="#1f77b4", capsize=3, label="model mean +-2 sd")
                ax.set_xticks(xs, [str(x) for x in s.x], fontsize=7)
                at = s.x.index(s.at) if s.at in s.x else None
            else:
                ax.fill_between(xs, mean - 2 * sd, mean + 2 * sd, color="#1f77b4", alpha=0.2, lw=0, label="+-2 sd")
                ax.plot(xs, mean, color="#1f77b4", lw=1.8, label="model mean")
                at = s.at
                if view.is_log(s.parameter):
                    ax.set_xscale("log")
            if at is not None:
                ax.axvline(at, color=FAIL, ls="--", lw=1, label="best point")
            ax.set_xlabel(view.label(s.parameter), fontsize=8)
            if c == 0:
                ax.set_ylabel(view.label(o.name), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend(fontsize=6, loc="best")
    return fig


def figure_model_2d(view: CampaignView, mv: ModelView) -> Figure | None:
    """Model mean (colour) and sd (contours) over the two most relevant continuous parameters."""
    grid = mv.slice_2d()
    if grid is None:
        return None
    o = view.objectives[0]
    fig = _new(10, 4.2)
    ax_m, ax_s = fig.subplots(1, 2)
    for ax, key, title in ((ax_m, "mean", f"mean of {o.name}"), (ax_s, "sd", f"sd of {o.name}")):
        cs = ax.contourf(grid["xs"], grid["ys"], grid[key], levels=20, cmap=CMAP if key == "mean" else "magma")
        fig.colorbar(cs, ax=ax, label=view.label(o.name))
        x, y = view.parameter_values(grid["x"]), view.parameter_values(grid["y"])
        fails = view.failed_mask()
        ax.scatter(x[~fails], y[~fails], s=9, c="w", edgecolors="k", linewidths=0.4, label="measured (projected)")
        if fails.any():
            ax.scatter(x[fails], y[fails], marker="x", color=FAIL, s=16, label="failed")
        ax.plot(*grid["best"], "*", color=FAIL, ms=13, mec="k", mew=0.6, label="best point")
        if view.is_log(grid["x"]):
            ax.set_xscale("log")
        if view.is_log(grid["y"]):
            ax.set_yscale("log")
        ax.set_xlabel(view.label(grid["x"]))
        ax.set_ylabel(view.label(grid["y"]))
        ax.set_title(title, fontsize=10)
    ax_m.legend(fontsize=7, loc="best")
    others = [p for p in view.record.space.names if p not in (grid["x"], grid["y"])]
    if others:
        fig.suptitle(f"other parameters at the best point ({', '.join(others)})", fontsize=9)
    return fig


def figure_model_cv(view: CampaignView, cv: Mapping[str, Any]) -> Figure:
    """Cross-validated prediction against measurement, one panel per objective, with +-2 sd bars."""
    objs = view.objectives
    fig = _new(4.4 * len(objs), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(objs), squeeze=False)).ravel()
    for j, (ax, o) in enumerate(zip(axes, objs)):
        y, mu, sd = cv["measured"][:, j], cv["mean"][:, j], cv["sd"][:, j]
        ok = np.isfinite(mu)
        inside = np.abs(y - mu) <= 2 * sd
        ax.errorbar(y[ok & inside], mu[ok & inside], yerr=2 * sd[ok & inside], fmt="o", ms=3.5, alpha=0.7, color="#1f77b4",
                    elinewidth=0.8, label="within +-2 sd")
        if (ok & ~inside).any():
            ax.errorbar(y[ok & ~inside], mu[ok & ~inside], yerr=2 * sd[ok & ~inside], fmt="o", ms=3.5, alpha=0.8, color=FAIL,
                        elinewidth=0.8, label="outside")
        lo = float(np.nanmin(np.r_[y, mu])) if ok.any() else 0.0
        hi = float(np.nanmax(np.r_[y, mu])) if ok.any() else 1.0
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        m = cv["metrics"][o.name]
        ax.set_title(f"{o.name}: R$^2$ = {m['r2']:.2f}, RMSE = {m['rmse']:.3g}, coverage {100 * m['coverage95']:.0f}%", fontsize=9)
        ax.set_xlabel(f"measured {view.label(o.name)}")
        ax.set_ylabel(f"predicted ({cv['folds']}-fold CV)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return fig


# -- several objectives ----------------------------------------------------------------------
def figure_pareto(view: CampaignView) -> Figure | None:
    """Pairwise objective scatter with the Pareto front, and the hypervolume over the campaign."""
    objs = view.objectives
    if len(objs) < 2:
        return None
    pairs = [(a, b) for a in range(len(objs)) for b in range(a + 1, len(objs))][:3]
    fig = _new(4.2 * (len(pairs) + 1), 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(pairs) + 1, squeeze=False)).ravel()
    done = view.completed_mask()
    vals = np.column_stack([view.values(o.name) for o in objs])[done]
    Y = view.oriented()
    front = pareto_mask(Y) if len(Y) else np.zeros(0, dtype=bool)
    n_done = view.numbers()[done]
    for ax, (a, b) in zip(axes, pairs):
        sc = ax.scatter(vals[:, a], vals[:, b], c=n_done, cmap="Greys", s=14, edgecolors="0.3", linewidths=0.3, label="measured")
        if front.any():
            f = vals[front]
            order = np.argsort(f[:, a])
            ax.plot(f[order, a], f[order, b], "o-", color=FAIL, ms=5, lw=1.2, label=f"Pareto front ({int(front.sum())})")
        ax.set_xlabel(f"{view.label(objs[a].name)} ({objs[a].direction})")
        ax.set_ylabel(f"{view.label(objs[b].name)} ({objs[b].direction})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.colorbar(sc, ax=axes[: len(pairs)].tolist(), label="experiment number", shrink=0.8)
    ax = axes[-1]
    _mark_initial(ax, view)
    ax.step(view.numbers(), view.hypervolume_trace(), where="post", color="#1f77b4", lw=2)
    ref = view.reference_point()
    ref_text = ", ".join(f"{o.sign * r:.3g}" for o, r in zip(objs, ref)) if ref is not None else "-"
    ax.set_title(f"hypervolume (reference point {ref_text})", fontsize=9)
    ax.set_xlabel("experiment number")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    return fig


# -- failures and timing ------------------------------------------------------------------------
def figure_failures(view: CampaignView) -> Figure:
    """Where and why experiments failed: each station's experiments over time (failures in red),
    and the failures counted by reason."""
    fig = _new(11, 3.6)
    ax_t, ax_r = fig.subplots(1, 2, width_ratios=[3, 2])
    stations = view.stations() or ["(unknown)"]
    ypos = {s: i for i, s in enumerate(stations)}
    t1 = view.t_finished()
    t0 = t1 - view.durations()
    div, unit = time_scale(float(np.nanmax(t1)) if np.isfinite(t1).any() else math.nan)
    status = view.status()
    st = view.experiments["station"].astype(str).to_numpy() if "station" in view.experiments else np.array(["(unknown)"] * view.n)
    colours = {"completed": "#2ca02c", "failed": FAIL, "invalid": "#ff7f0e"}
    timed = np.isfinite(t0) & np.isfinite(t1)
    for i in range(view.n):
        y = ypos.get(st[i], 0)
        c = colours.get(status[i], "0.5")
        if timed[i]:
            ax_t.broken_barh([(t0[i] / div, max((t1[i] - t0[i]) / div, 1e-9))], (y - 0.35, 0.7), facecolors=c, edgecolors="w", linewidth=0.3)
        else:
            ax_t.plot(i + 1, y, "s", color=c)
    ax_t.set_yticks(range(len(stations)), stations)
    ax_t.set_xlabel(f"time [{unit}]" if timed.any() else "experiment number")
    handles = [ax_t.bar([0], [0], color=c, label=k) for k, c in colours.items() if (status == k).any()]
    if handles:
        ax_t.legend(fontsize=7, loc="upper right")
    ax_t.set_title("experiments by station", fontsize=10)
    ax_t.grid(alpha=0.3, axis="x")
    reasons = view.failure_reasons()
    if reasons.empty:
        ax_r.text(0.5, 0.5, "no failures", ha="center", va="center", fontsize=12, transform=ax_r.transAxes)
        ax_r.set_axis_off()
    else:
        labels = [_wrap(r, 40) for r in reasons.index[:8]]
        ax_r.barh(range(len(labels)), reasons.values[:8], color=FAIL)
        ax_r.set_yticks(range(len(labels)), labels, fontsize=7)
        ax_r.invert_yaxis()
        ax_r.set_xlabel("failed experiments")
        ax_r.set_title(f"{int(reasons.sum())} failures by reason", fontsize=10)
    return fig


def figure_timing(view: CampaignView) -> Figure:
    """Durations: each experiment's duration by station, and the planner's latency per decision."""
    fig = _new(11, 3.4)
    ax_d, ax_p = fig.subplots(1, 2)
    d = view.durations()
    div, unit = time_scale(float(np.nanmedian(d)) if np.isfinite(d).any() else math.nan)
    st = view.experiments["station"].astype(str).to_numpy() if "station" in view.experiments else np.array([""] * view.n)
    for s in view.stations():
        m = (st == s) & np.isfinite(d)
        ax_d.plot(view.numbers()[m], d[m] / div, "o", ms=3.5, label=s)
    ax_d.set_xlabel("experiment number")
    ax_d.set_ylabel(f"duration [{unit}]")
    ax_d.set_title("experiment durations (start to finish, retries included)", fontsize=9)
    ax_d.grid(alpha=0.3)
    if view.stations():
        ax_d.legend(fontsize=7)
    sug = view.record.suggestions
    if "latency" in sug and len(sug):
        lat = sug["latency"].to_numpy(dtype=float)
        gen = sug["generator"].astype(str).to_numpy() if "generator" in sug else np.array([""] * len(lat))
        for g in dict.fromkeys(gen):
            m = gen == g
            ax_p.plot(np.flatnonzero(m) + 1, lat[m] * 1000, "o", ms=3.5, label=g or "?")
        ax_p.set_yscale("log")
        ax_p.legend(fontsize=7, title="generator", title_fontsize=7)
    ax_p.set_xlabel("planner decision")
    ax_p.set_ylabel("latency [ms]")
    ax_p.set_title("planner latency per decision (wall clock)", fontsize=9)
    ax_p.grid(alpha=0.3)
    return fig


def _wrap(text: str, width: int) -> str:
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines[:3])
