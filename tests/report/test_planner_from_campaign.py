"""Continue a recorded campaign in a notebook: ``Planner.from_campaign`` and the report's model view agree."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labflow.planners import BayesianPlanner, Planner
from labflow.report.model import fit_model_view
from labflow.store.provenance import read_campaign


def test_from_campaign_rebuilds_the_planner_with_its_data_and_state(campaign_file):
    path = campaign_file("quickstart.yaml")
    record = read_campaign(path)
    planner = Planner.from_campaign(path)
    assert isinstance(planner, BayesianPlanner) and planner.n_initial == 8  # the recipe's options
    assert planner.n_observations == len(record.experiments)
    assert sorted(o.uid for o in planner.observations) == sorted(record.experiments["uid"])
    assert planner._asked == len(record.experiments)  # noqa: SLF001 - the Sobol stream continues where the campaign stopped
    nxt = planner.suggest(1)
    assert list(nxt.columns) == record.space.names


def test_predictions_match_the_reports_model_view_on_the_same_data(campaign_file):
    path = campaign_file("quickstart.yaml")
    view = fit_model_view(read_campaign(path))
    planner = Planner.from_campaign(path)
    points = planner.data().head(5)
    mean, sd = view.predict(points)
    got = planner.predict(points)
    np.testing.assert_allclose(got["product_yield_mean"], mean[:, 0], rtol=1e-6)
    np.testing.assert_allclose(got["product_yield_sd"], sd[:, 0], rtol=1e-6)
    measured = pd.to_numeric(points["product_yield"])
    assert np.all(np.abs(got["product_yield_mean"] - measured) < 3 * got["product_yield_sd"] + 1.0)  # percent, as measured
