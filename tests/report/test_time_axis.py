"""The report's best-so-far against time never puts wall-clock and simulated seconds on one axis:
baselines (re-run in simulated time) are drawn against time only for a campaign in simulated time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from labflow.launch import run_recipe  # noqa: E402
from labflow.recipe import load_recipe  # noqa: E402
from labflow.report.baselines import simulated_baselines  # noqa: E402
from labflow.report.data import CampaignView  # noqa: E402
from labflow.report.figures import figure_best_so_far  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _baseline_lines(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if "median" in str(line.get_label())]


def test_a_wall_clock_campaign_report_draws_baselines_by_experiment_number_only(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "branin.yaml")
    for executor in ("local", "virtual"):
        outcome = run_recipe(recipe, tmp_path / executor, budget=4, executor=executor, handle_signals=False)
        view = CampaignView.open(outcome.path)
        baselines = simulated_baselines(view.record, planners=("random",), seeds=2, cache=False)
        fig = figure_best_so_far(view, baselines=baselines)
        by_number, by_time = fig.axes[0], fig.axes[1]
        assert _baseline_lines(by_number) == ["random median (2 re-runs)"]
        if executor == "local":
            assert by_time.get_xlabel().startswith("wall-clock time")
            assert _baseline_lines(by_time) == []
            assert any("baselines ran in simulated time" in t.get_text() for t in by_time.texts)
        else:
            assert by_time.get_xlabel().startswith("simulated time")
            assert _baseline_lines(by_time) == ["random median (2 re-runs)"]
