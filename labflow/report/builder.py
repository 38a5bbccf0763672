"""``build_report``: a campaign file in, a self-contained HTML report and its PNG figures out."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labflow.report import figures as F
from labflow.report import html as H
from labflow.report.data import CampaignView, time_scale
from labflow.store.columns import IDENTITY

__all__ = ["FIGURES", "Report", "build_report", "default_report_dir"]

FIGURES: dict[str, str] = {
    "best_so_far": "Best so far against experiment number and against time; dots are single measurements, "
    "the shaded span is the initial design, dashed lines are the medians of random and Sobol re-runs (simulated labs).",
    "parameters": "Each parameter's value over the campaign, coloured by the first objective; red crosses failed.",
    "pairs": "Pairwise scatter of the parameters coloured by the first objective; red star: the best experiment.",
    "model_slices": "The refitted model along each parameter through the best point (mean, +-2 sd); grey dots: all measurements projected.",
    "model_2d": "The refitted model over the two parameters it finds most relevant, others at the best point.",
    "model_cv": "Cross-validated predictions against measurements with +-2 sd (noise included): calibration at a glance.",
    "pareto": "Objectives against each other with the Pareto front, and the hypervolume after each experiment.",
    "failures": "Each station's experiments over time (red: failed, orange: invalid reading) and failures by reason.",
    "timing": "Experiment durations by station and the planner's latency for each decision.",
}
"""Every figure a report can hold, with its caption. Figures without data are left out (and said so)."""


@dataclass
class Report:
    """What :func:`build_report` wrote: the HTML file, the PNG files by figure name, and timings."""

    html: Path
    figures: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


def default_report_dir(path: str | Path) -> Path:
    """``runs/quickstart-20250101-120000.h5`` -> ``runs/quickstart-20250101-120000-report``."""
    p = Path(path)
    return p.with_name(p.stem + "-report")


def build_report(
    path: str | Path,
    out_dir: str | Path | None = None,
    *,
    baselines: bool = True,
    baseline_seeds: int = 5,
    model: bool = True,
    dpi: int = 100,
) -> Report:
    """Write ``report.html`` and one PNG per figure into ``out_dir`` (default :func:`default_report_dir`).

    Parameters
    ----------
    path:
        The campaign's provenance file (also one still being written).
    baselines:
        For campaigns on a simulated lab, draw random and Sobol re-runs' medians (cached; see
        :mod:`labflow.report.baselines`).
    baseline_seeds:
        Re-runs per baseline planner.
    model:
        Refit the surrogate and draw the model's view (see :mod:`labflow.report.model`).
    dpi:
        Resolution of the PNGs (100 dpi: about 1100 px wide).

    Raises :class:`~labflow.errors.ProvenanceError` when ``path`` is not a campaign file.
    """
    seconds: dict[str, float] = {}
    notes: list[str] = []

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    view: CampaignView = timed("read", lambda: CampaignView.open(path))
    rec = view.record
    out = Path(out_dir) if out_dir is not None else default_report_dir(path)
    out.mkdir(parents=True, exist_ok=True)

    base = None
    if baselines and view.n:
        from labflow.report.baselines import simulated_baselines

        base = timed("baselines", lambda: simulated_baselines(rec, seeds=baseline_seeds))
        if base is not None:
            (out / "baselines.json").write_text(json.dumps(base, allow_nan=True))
        else:
            notes.append("No baselines: the lab cannot be re-run here (it is not a simulated lab with a landscape, "
                         "or its stored config does not validate).")
    optimum = base.get("optimum") if base is not None else None

    mv = cv = None
    if model and view.n:
        from labflow.report.model import MIN_OBSERVATIONS, fit_model_view, torch_threads

        try:
            with torch_threads(1):
                mv = timed("model fit", lambda: fit_model_view(rec))
                if mv is None:
                    notes.append(f"No model's view: fewer than {MIN_OBSERVATIONS} completed experiments.")
                else:
                    cv = timed("model cross-validation", lambda: mv.cross_validate(seed=int(rec.attrs.get("seed", 0) or 0)))
        except Exception as exc:  # noqa: BLE001 - a report without the model is still a report
            notes.append(f"No model's view: refitting the model failed ({type(exc).__name__}: {exc}).")
            mv = cv = None

    figs: dict[str, bytes] = {}

    def draw(name: str, make: Callable[[], Any]) -> None:
        def run() -> None:
            fig = make()
            if fig is not None:
                figs[name] = F.png(fig, dpi=dpi)

        timed(f"figure {name}", run)

    if view.n:
        draw("best_so_far", lambda: F.figure_best_so_far(view, base, optimum))
        draw("parameters", lambda: F.figure_parameters(view))
        draw("pairs", lambda: F.figure_pairs(view))
        if mv is not None:
            from labflow.report.model import torch_threads

            with torch_threads(1):
                draw("model_slices", lambda: F.figure_model_slices(view, mv))
                draw("model_2d", lambda: F.figure_model_2d(view, mv))
            draw("model_cv", lambda: F.figure_model_cv(view, cv))
        draw("pareto", lambda: F.figure_pareto(view))
        draw("failures", lambda: F.figure_failures(view))
        draw("timing", lambda: F.figure_timing(view))
    else:
        notes.append("The file holds no finished experiment yet: no figures.")

    def write() -> tuple[Path, dict[str, Path]]:
        paths = {}
        for name, data in figs.items():
            p = out / f"{name}.png"
            p.write_bytes(data)
            paths[name] = p
        page = _page(view, figs, base, mv, cv, notes, seconds)
        html_path = out / "report.html"
        html_path.write_text(page, encoding="utf-8")
        return html_path, paths

    html_path, paths = timed("write", write)
    return Report(html=html_path, figures=paths, seconds=seconds, notes=notes)


# -- the page ------------------------------------------------------------------------------
def _page(view: CampaignView, figs: dict[str, bytes], base: Any, mv: Any, cv: Any, notes: list[str], seconds: dict[str, float]) -> str:
    rec = view.record
    a = rec.attrs
    name = a.get("campaign", "") or rec.recipe.get("name", "campaign")

    def fig(n: str) -> str:
        return H.figure_html(n, figs[n], FIGURES[n]) if n in figs else ""

    sections: list[tuple[str, str, str]] = []
    # summary
    best = rec.best() if view.n else None
    cards = {
        "experiments": f"{view.n} of {view.summary_attrs.get('budget', rec.recipe.get('budget', '?'))}",
        "completed": len(rec.completed),
        "failed or invalid": len(rec.failed),
        "planner": view.planner,
        "executor": view.executor() or "-",
    }
    span = view.makespan()
    if math.isfinite(span):
        div, unit = time_scale(span)
        cards["makespan"] = f"{span / div:.3g} {unit}"
    if best:
        o = rec.objectives[0]
        cards[f"best {o.name}"] = f"{H.fmt(best[o.name]['value'])} {best[o.name]['unit']}".strip()
    inner = '<div class="cards">' + "".join(f'<div class="card">{H.esc(k)}<b>{H.esc(v)}</b></div>' for k, v in cards.items()) + "</div>"
    if best:
        rows = [{"name": k, "value": v["value"], "unit": v["unit"]} for k, v in best.items() if k != "uid"]
        inner += f"<h3>best experiment <code>{H.esc(best['uid'])}</code></h3>" + H.table(rows, ["name", "value", "unit"])
    for n in notes:
        inner += f'<p class="note">{H.esc(n)}</p>'
    if not a.get("finished"):
        inner += '<p class="note">The file has no end summary: the campaign is still running, or it stopped without finishing.</p>'
    sections.append(("summary", "Summary", inner))

    # progress
    inner = fig("best_so_far")
    if base is not None:
        inner += (f"<p>Baselines are <b>re-runs</b>, not part of this campaign's record: the same recipe planned by "
                  f"{', '.join(base['planners'])} for seeds {base['seeds']} on the lab's landscape with its noise and "
                  f"failure rate ({H.esc(base['method'])}). Lines are medians over the seeds, bands their interquartile range.</p>")
    sections.append(("progress", "Progress", inner))
    sections.append(("parameters", "Parameters", fig("parameters") + fig("pairs")))

    # model
    if mv is not None:
        rel = mv.relevance()
        inner = ("<p>The model is <b>refitted</b> from the recorded experiments: a BayesianPlanner with the campaign's "
                 "space, objectives and seed, told every experiment. Slices hold every other parameter at the best "
                 "experiment's values.</p>")
        inner += fig("model_slices") + fig("model_2d") + fig("model_cv")
        if cv is not None:
            rows = [{"objective": k, "R2": m["r2"], "RMSE": m["rmse"], "coverage of +-2 sd": m["coverage95"], "points": m["n"]}
                    for k, m in cv["metrics"].items()]
            inner += f"<h3>{cv['folds']}-fold cross-validation</h3>" + H.table(rows)
            inner += ("<p>Coverage near 0.95 means the model's uncertainty is honest; much lower means it is "
                      "over-confident, and its suggestions deserve less trust.</p>")
        if rel:
            inner += "<h3>relevance (1 / ARD length scale in the unit cube)</h3>" + H.table(
                [{"parameter": k, "relevance": v} for k, v in sorted(rel.items(), key=lambda kv: -kv[1])])
    else:
        inner = "<p>No model's view for this file (see the notes in the summary).</p>"
    sections.append(("model", "The model's view", inner))

    # several objectives
    if len(rec.objectives) > 1:
        from labflow.pareto import pareto_mask

        inner = fig("pareto")
        done = rec.completed
        if len(done):
            front = done[pareto_mask(view.oriented())]
            cols = ["uid", *rec.space.names, *[o.name for o in rec.objectives]]
            inner += f"<h3>Pareto front ({len(front)} experiments)</h3>" + H.table(front[cols], headers={c: view.label(c) for c in cols})
        sections.append(("pareto", "Several objectives", inner))

    # failures
    failures = view.failures()
    inner = fig("failures")
    if failures.empty:
        inner += "<p>No experiment failed.</p>"
    else:
        reasons = view.failure_reasons()
        inner += H.table([{"reason": r, "count": int(c)} for r, c in reasons.items()])
        inner += f"<details><summary>all {len(failures)} failed experiments</summary>{H.table(failures.head(500))}</details>"
    sections.append(("failures", "Failures", inner))

    sections.append(("provenance", "Provenance", _provenance(view, seconds) + fig("timing")))

    exp = rec.experiments.assign(n=view.numbers())
    cols = ["n", *IDENTITY[:3], *rec.space.names, *[o.name for o in rec.objectives], "generator", "t_finished"]
    cols = [c for c in cols if c in exp]
    sections.append(("experiments", "Experiments", f"<details><summary>all {len(exp)} experiments (units in the headers)</summary>"
                     + H.table(exp[cols], headers={c: view.label(c) for c in cols}) + "</details>"))
    subtitle = f"{rec.recipe.get('description', '')} -- file {rec.path.name}, created {a.get('created', '?')}".strip(" -")
    return H.render_html(title=f"labflow campaign {name}", subtitle=subtitle, sections=sections)


def _provenance(view: CampaignView, seconds: dict[str, float]) -> str:
    rec = view.record
    a = rec.attrs
    ident = {
        "campaign": a.get("campaign", ""),
        "campaign id": a.get("campaign_id", ""),
        "file": str(rec.path),
        "file format": f"{a.get('format', '')} {a.get('format_version', '')}".strip(),
        "recipe hash": a.get("recipe_hash", ""),
        "seed": a.get("seed", ""),
        "planner": view.planner,
        "created": a.get("created", ""),
        "finished": a.get("finished", "") or "(not finished)",
        "host": a.get("host", ""),
        "stop summary": json.dumps(view.summary_attrs, default=str) if view.summary_attrs else "-",
    }
    out = "<h3>identity</h3>" + H.kv_table(ident)
    sug = rec.suggestions
    if len(sug) and "state" in sug:
        try:
            state = json.loads(sug["state"].iloc[-1])
            settings = state.get("settings", state)
            out += "<h3>planner settings (last decision)</h3>" + H.pre(H.pretty_json(settings))
        except (TypeError, ValueError):
            pass
    human = rec.human
    if len(human):
        out += f"<h3>people's acts ({len(human)})</h3>" + H.table(
            human, ["when", "who", "act", "target", "before", "after", "comment", "via", "outcome", "refusal"])
    # instruments
    stations = view.stations()
    rows = []
    for dev, keys in sorted(view.devices.items()):
        rows.append({"device": dev, "readings [units]": ", ".join(f"{k} [{u}]" if u else k for k, u in keys.items())})
    out += f"<h3>instruments ({len(stations)} station{'s' if len(stations) != 1 else ''}: {H.esc(', '.join(stations))})</h3>"
    out += H.table(rows) if rows else "<p>No run descriptors recorded.</p>"
    # durations
    d = view.durations()
    st = view.experiments["station"].astype(str).to_numpy() if "station" in view.experiments else np.array([""] * view.n)
    drows = []
    for s in stations:
        m = (st == s) & np.isfinite(d)
        if m.any():
            drows.append({"station": s, "experiments": int(m.sum()), "median duration [s]": float(np.median(d[m])),
                          "total busy [s]": float(d[m].sum())})
    if drows:
        out += "<h3>durations</h3>" + H.table(drows)
    lat = sug["latency"].to_numpy(dtype=float) if "latency" in sug and len(sug) else np.array([])
    timing = {
        "makespan [s]": view.makespan(),
        "utilization": view.summary_attrs.get("utilization"),
        "planner decisions": len(sug),
        "planner latency median [s]": float(np.median(lat)) if len(lat) else None,
        "planner latency max [s]": float(np.max(lat)) if len(lat) else None,
        "report built in [s]": round(sum(seconds.values()), 2),
    }
    out += H.kv_table(timing)
    out += "<h3>software versions</h3>" + H.kv_table(rec.versions)
    out += "<h3>recipe as written</h3>" + H.pre(rec.recipe_text or "(not stored)")
    out += "<details><summary>recipe as validated (JSON)</summary>" + H.pre(H.pretty_json(rec.recipe)) + "</details>"
    out += "<details><summary>lab config (JSON)</summary>" + H.pre(H.pretty_json(rec.lab)) + "</details>"
    return out
