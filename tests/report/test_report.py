"""`labflow report`: every kind of shipped recipe, several objectives, failures, an empty file."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.report import FIGURES, CampaignView, build_report, simulated_baselines
from labflow.report.data import best_so_far, short_reason
from labflow.store.provenance import ProvenanceWriter, read_campaign

from .conftest import RECIPES

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def assert_report_holds(report, expected: set[str]) -> str:
    html = report.html.read_text(encoding="utf-8")
    assert set(report.figures) == expected, sorted(report.figures)
    for name, path in report.figures.items():
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 4_000, f"{name}.png is {len(data)} bytes"
        assert base64.b64encode(data).decode() in html, f"{name}.png is not embedded in the HTML"
    assert "<script" not in html and "http://" not in html  # self-contained: nothing to fetch, nothing to run
    return html


@pytest.mark.parametrize("recipe", [r.name for r in RECIPES])
def test_report_on_every_shipped_recipe(recipe, campaign_file, tmp_path):
    path = campaign_file(recipe)
    rep = build_report(path, tmp_path / "report", baseline_seeds=2, dpi=60)
    rec = read_campaign(path)
    expected = {"best_so_far", "parameters", "pairs", "model_slices", "model_cv", "failures", "timing"}
    if sum(1 for p in rec.space.parameters if p.kind != "categorical") >= 2:
        expected.add("model_2d")
    if len(rec.objectives) > 1:
        expected.add("pareto")
    html = assert_report_holds(rep, expected)
    for section in ("Summary", "Progress", "The model&#x27;s view", "Failures", "Provenance", "software versions", "recipe as written"):
        assert section in html, section
    if recipe in ("branin.yaml", "quickstart.yaml"):  # simulated labs: the baselines are drawn, and the HTML says what they are
        assert "re-runs" in html and (tmp_path / "report" / "baselines.json").is_file()
    else:  # other labs may not be re-runnable: then the report says so
        assert ("re-runs" in html) == (tmp_path / "report" / "baselines.json").is_file() or "No baselines" in html


def test_baselines_are_cached_and_the_cache_is_used(campaign_file, monkeypatch):
    path = campaign_file("quickstart.yaml")
    rec = read_campaign(path)
    first = simulated_baselines(rec, seeds=2)
    assert first is not None and set(first["planners"]) == {"random", "sobol"}
    runs = first["planners"]["random"]["values"][rec.objectives[0].name]
    assert len(runs) == 2 and all(len(r) == len(rec.experiments) for r in runs)

    import labflow.report.baselines as b

    monkeypatch.setattr(b, "_run_once", lambda *a, **k: pytest.fail("the cache was not used"))
    assert simulated_baselines(rec, seeds=2) == first


def test_two_objectives_give_a_pareto_front_and_a_growing_hypervolume(two_objective_file, tmp_path):
    rep = build_report(two_objective_file, tmp_path / "r", dpi=60)
    html = assert_report_holds(rep, {"best_so_far", "parameters", "pairs", "model_slices", "model_2d", "model_cv", "pareto", "failures", "timing"})
    assert "Pareto front (" in html and "Several objectives" in html
    view = CampaignView.open(two_objective_file)
    hv = view.hypervolume_trace()
    assert hv[-1] > 0 and np.all(np.diff(hv) >= 0)
    # the energy threshold (12 kJ, minimized) is the reference point's energy coordinate
    assert view.reference_point()[1] == pytest.approx(-12.0)


def test_failures_are_shown_where_and_why(failing_campaign, tmp_path):
    rec = read_campaign(failing_campaign)
    assert len(rec.failed) > 0
    rep = build_report(failing_campaign, tmp_path / "r", baselines=False, model=False, dpi=60)
    html = assert_report_holds(rep, {"best_so_far", "parameters", "pairs", "failures", "timing"})
    assert "simulated instrument fault" in html and f"all {len(rec.failed)} failed experiments" in html
    view = CampaignView.open(failing_campaign)
    assert view.failure_reasons().sum() == len(rec.failed)


def test_an_empty_file_gives_a_report_that_says_so(tmp_path):
    from labflow.objectives import Objective
    from labflow.space import Real, Space

    path = tmp_path / "empty.h5"
    with ProvenanceWriter(path, campaign="empty", space=Space([Real("x", 0, 1)]), objectives=[Objective("y")]):
        pass
    rep = build_report(path, tmp_path / "r")
    assert rep.figures == {} and "no finished experiment" in rep.html.read_text()


def test_best_so_far_follows_the_direction_and_skips_failures():
    v = np.array([np.nan, 3.0, 1.0, np.nan, 5.0])
    assert np.allclose(best_so_far(v, +1.0), [np.nan, 3, 3, 3, 5], equal_nan=True)
    assert np.allclose(best_so_far(v, -1.0), [np.nan, 3, 1, 1, 1], equal_nan=True)
    assert short_reason("station2: DeviceError: simulated instrument fault") == "DeviceError: simulated instrument fault"


def test_every_figure_has_a_caption():
    assert {"best_so_far", "parameters", "pairs", "model_slices", "model_2d", "model_cv", "pareto", "failures", "timing"} == set(FIGURES)


def test_cli_report_writes_into_the_folder_given(campaign_file, tmp_path):
    path = campaign_file("branin.yaml")
    result = runner.invoke(app, ["report", str(path), "-o", str(tmp_path / "rep"), "--no-model", "--no-baselines", "--dpi", "50"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "best_so_far.png").is_file()
    assert re.search(r"report\.html \(\d+ figures", result.output)


def test_cli_report_on_a_file_that_is_not_a_campaign(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    result = runner.invoke(app, ["report", str(tmp_path / "x.h5")])
    assert result.exit_code == 1 and "not a readable HDF5 file" in result.output
