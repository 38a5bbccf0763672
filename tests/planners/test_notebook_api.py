"""The planner as a scientist uses it in a notebook: a candidate library, predictions, explanations, files."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from labflow.errors import PlannerError, SpaceError
from labflow.objectives import Objective
from labflow.planners import BayesianPlanner, Planner, SobolPlanner
from labflow.planners.base import RepeatedObservationWarning
from labflow.space import Categorical, Integer, NonlinearConstraint, Real, Space

SPACE = Space([Real("temperature", 20, 200, "degC"), Integer("layers", 1, 5), Categorical("solvent", ("water", "ethanol", "toluene"))])
YIELD = Objective("yield_", "maximize", "percent")


def library(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A shelf of samples: an ID (also the index), the parameters, and columns the planner knows nothing about."""
    rng = np.random.default_rng(seed)
    ids = [f"S{i:03d}" for i in range(n)]
    return pd.DataFrame(
        {
            "sample_id": ids,
            "temperature": rng.uniform(20, 200, n).round(1),
            "layers": rng.integers(1, 6, n),
            "solvent": rng.choice(["water", "ethanol", "toluene"], n),
            "supplier": rng.choice(["acme", "globex"], n),
        },
        index=pd.Index(ids, name="sample"),
    )


def measure(batch: pd.DataFrame) -> pd.DataFrame:
    out = batch.copy()
    out["yield_"] = 50 - 10 * ((out["temperature"] - 120) / 40) ** 2 + 2 * out["layers"] + 5 * (out["solvent"] == "ethanol")
    return out


def planner(**kw) -> BayesianPlanner:
    return BayesianPlanner(SPACE, YIELD, seed=3, num_restarts=2, raw_samples=64, **kw)


def test_candidates_with_an_id_column_and_a_categorical_come_back_with_the_index_and_id_intact():
    lib = library()
    p = planner()
    first = p.suggest(4, candidates=lib)
    assert list(first.index) == list(first["sample_id"])  # the index is the library's, and so is every column
    pd.testing.assert_frame_equal(first[lib.columns], lib.loc[first.index])
    assert set(first["generator"]) == {"rank"} and first["acquisition_value"].isna().all()
    p.observe(measure(first))
    second = p.suggest(3, candidates=lib)
    pd.testing.assert_frame_equal(second[lib.columns], lib.loc[second.index])
    assert set(second["generator"]) == {"LogPGood"}
    assert np.isfinite(second["acquisition_value"]).all()
    assert np.isfinite(second[["yield__mean", "yield__sd"]].to_numpy()).all() and (second["yield__sd"] > 0).all()
    assert not set(second.index) & set(first.index)  # observed rows never come back


def test_pending_rows_are_never_suggested():
    lib = library()
    p = planner()
    p.observe(measure(p.suggest(5, candidates=lib)))
    running = p.suggest(2, candidates=lib)
    more = p.suggest(3, candidates=lib, pending=running)
    assert not set(more.index) & set(running.index)


def test_a_library_without_a_parameter_column_is_refused_naming_the_column():
    lib = library().rename(columns={"temperature": "temp"})
    with pytest.raises(SpaceError) as err:
        planner().suggest(1, candidates=lib)
    assert "['temperature']" in err.value.message and "did you mean 'temp'" in err.value.hint


def test_a_library_value_outside_the_space_is_refused_naming_the_row():
    lib = library()
    lib.loc["S007", "solvent"] = "acetone"
    with pytest.raises(SpaceError, match=r"candidates row 'S007': solvent: 'acetone' is not one of"):
        planner().suggest(1, candidates=lib)


def test_baselines_take_candidate_libraries_too():
    lib = library()
    got = SobolPlanner(SPACE, YIELD, seed=0).suggest(3, candidates=lib)
    pd.testing.assert_frame_equal(got[lib.columns], lib.loc[got.index])
    assert got["yield__mean"].isna().all()  # no model, no prediction


def test_rerunning_an_observe_cell_does_not_double_the_history():
    p = planner()
    results = measure(p.suggest(3, candidates=library())).assign(uid=["run-1", "run-2", "run-3"])
    p.observe(results)
    with pytest.warns(RepeatedObservationWarning, match=r"3 row\(s\) carry a uid the planner already holds \(run-1, run-2, run-3\)"):
        p.observe(results)  # the same cell, run again
    assert p.n_observations == 3


def test_replicates_without_uids_still_count_as_replicates():
    p = planner()
    results = measure(p.suggest(2, candidates=library()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepeatedObservationWarning)
        p.observe(results)
        p.observe(results)  # measured twice on purpose: no uid column
    assert p.n_observations == 4


def test_reading_the_same_prior_file_twice_adds_nothing(tmp_path):
    csv = tmp_path / "last_month.csv"
    measure(library(6)).drop(columns=["sample_id", "supplier"]).to_csv(csv, index=False)
    p = planner()
    assert p.observe_prior(csv) == 6
    with pytest.warns(RepeatedObservationWarning):
        assert p.observe_prior(csv) == 0


def test_predictions_are_in_the_objectives_unit_and_direction():
    cost = Objective("cost", "minimize", "kJ")  # energy used per sample
    space = Space([Real("x", 0, 10, "mm")])
    p = BayesianPlanner(space, cost, seed=0, num_restarts=2, raw_samples=64)
    data = pd.DataFrame({"x": np.linspace(0, 10, 9)})
    data["cost"] = 1000 + 40 * (data["x"] - 4) ** 2
    p.observe(data)
    pred = p.predict(pd.DataFrame({"x": [4.0, 9.5]}, index=["near", "far"]))
    assert list(pred.columns) == ["cost_mean", "cost_sd"] and list(pred.index) == ["near", "far"]
    assert pred.loc["near", "cost_mean"] == pytest.approx(1000, abs=25)  # in kJ, not standardized, not sign-flipped
    assert pred.loc["far", "cost_mean"] == pytest.approx(1000 + 40 * 5.5**2, rel=0.05)


def test_a_baseline_has_no_predictions():
    with pytest.raises(PlannerError, match="SobolPlanner has no model"):
        SobolPlanner(SPACE, YIELD).predict(library(2))


def test_relevance_puts_the_parameter_that_matters_first():
    space = Space([Real("a", 0, 1), Real("b", 0, 1), Real("c", 0, 1)])
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.random((24, 3)), columns=["a", "b", "c"])
    data["y"] = np.sin(6 * data["b"]) + 0.1 * data["a"]
    p = BayesianPlanner(space, Objective("y"), seed=0)
    p.observe(data)
    rel = p.relevance()
    assert list(rel.columns) == ["lengthscale", "y_first_order", "y_total"]
    assert rel.index[0] == "b" and rel.loc["b", "y_total"] > 0.8 and rel.loc["c", "y_total"] < 0.05
    assert rel.loc["b", "lengthscale"] < rel.loc["c", "lengthscale"]


def test_the_planner_shows_itself_in_a_notebook():
    p = planner()
    p.observe(measure(p.suggest(3, candidates=library())))
    html = p._repr_html_()
    best = p.best()
    assert "BayesianPlanner" in html and "3</b> observations" in html and "maximize yield_ [percent]" in html
    assert "solvent in {water, ethanol, toluene}" in html and f"{best.outcomes['yield_']:.4g} percent" in html


def test_save_and_load_give_the_same_next_suggestion(tmp_path):
    space = SPACE.with_nonlinear([NonlinearConstraint("temperature * layers <= 500")])
    p = BayesianPlanner(space, YIELD, seed=5, num_restarts=2, raw_samples=64, kernel="matern52")
    p.observe(measure(p.suggest(5)))
    path = p.save(tmp_path / "planner.json")
    again = Planner.load(path)
    assert type(again) is BayesianPlanner and again.kernel == "matern52" and again.space == space
    pd.testing.assert_frame_equal(p.suggest(2), again.suggest(2))


def test_a_constraint_function_cannot_be_saved_and_says_why(tmp_path):
    space = SPACE.with_nonlinear([NonlinearConstraint(lambda row: row["temperature"] * row["layers"], "<=", 500, name="heat")])
    with pytest.raises(PlannerError, match="a Python function is not data"):
        BayesianPlanner(space, YIELD).save(tmp_path / "p.json")
    assert not list(tmp_path.iterdir()) or all(not f.name.endswith(".json") for f in tmp_path.iterdir())


def test_plots_reuse_the_reports_figures():
    import matplotlib

    matplotlib.use("Agg")
    from labflow.report.notebook import PLOTS

    p = planner()
    p.observe(measure(library(10)))
    for kind in PLOTS:
        fig = p.plot(kind)
        assert fig.axes, kind
        labels = {ax.get_xlabel() for ax in fig.axes} | {ax.get_ylabel() for ax in fig.axes}
        assert any("[degC]" in t or "[percent]" in t or "experiment number" in t for t in labels), (kind, labels)
    with pytest.raises(PlannerError, match="no model to plot"):
        SobolPlanner(SPACE, YIELD).plot("slices")
