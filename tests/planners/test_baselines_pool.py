"""Sobol and LHS on a pool: the design is laid over the pool's rows in rank space, not snapped from the unit cube."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labflow.objectives import Objective
from labflow.planners import make_planner
from labflow.planners.baselines import match_design_to_rows, pool_ranks
from labflow.space import Real, Space

SPACE = Space([Real("x", 0.0, 1.0), Real("y", 0.0, 1.0)])
OBJECTIVE = Objective("z", "maximize")


def clustered_pool(seed: int = 0) -> pd.DataFrame:
    """95 rows crowded in the middle of the square and 5 isolated rows near its corners and edge,
    as when earlier campaigns sampled a region densely and probed the extremes once each."""
    rng = np.random.default_rng(seed)
    cluster = rng.uniform(0.4, 0.6, size=(95, 2))
    outliers = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.5, 1.0]])
    return pd.DataFrame(np.vstack([cluster, outliers]), columns=["x", "y"])


def outliers_among_first(planner_options: dict, k: int = 8, seeds: range = range(20)) -> float:
    pool = clustered_pool()
    counts = []
    for seed in seeds:
        planner = make_planner("sobol", SPACE, [OBJECTIVE], seed=seed, **planner_options)
        picked = pd.DataFrame([c.params for c in planner.ask(k, choices=pool)])
        counts.append(int((((picked["x"] - 0.5).abs() > 0.2) | ((picked["y"] - 0.5).abs() > 0.2)).sum()))
    return float(np.mean(counts))


def test_pool_ranks_are_mid_rank_quantiles_with_ties_shared():
    X = np.array([[0.0, 5.0], [10.0, 5.0], [10.0, 5.0], [11.0, 1.0]])
    assert pool_ranks(X).tolist() == [[0.125, 0.625], [0.5, 0.625], [0.5, 0.625], [0.875, 0.125]]
    with pytest.raises(ValueError, match="non-empty rows x dims"):
        pool_ranks(np.empty((0, 2)))


def test_matching_gives_each_design_point_the_nearest_untaken_row():
    rows = np.array([[0.0], [0.1], [0.9]])
    assert match_design_to_rows(np.array([[0.05], [0.0], [1.0], [0.5]]), rows).tolist() == [0, 1, 2]


def test_the_rank_design_samples_a_clustered_pool_like_its_density_and_snapping_does_not():
    # 5 of 100 rows are isolated: a fair design takes about 8 x 5/100 = 0.4 of them among its first 8.
    assert outliers_among_first({}) <= 1.0
    assert outliers_among_first({"pool_design": "snap"}) >= 2.0  # snapping runs to the isolated rows (3.1 today)


@pytest.mark.parametrize("kind", ["sobol", "lhs"])
def test_the_pool_design_orders_every_row_once_and_is_seeded(kind):
    pool = clustered_pool()
    a = make_planner(kind, SPACE, [OBJECTIVE], seed=3).ask(100, choices=pool)
    b = make_planner(kind, SPACE, [OBJECTIVE], seed=3).ask(100, choices=pool)
    c = make_planner(kind, SPACE, [OBJECTIVE], seed=4).ask(100, choices=pool)
    rows = lambda cands: [tuple(np.round([x.params["x"], x.params["y"]], 9)) for x in cands]  # noqa: E731
    assert len(set(rows(a))) == 100  # a permutation of the pool
    assert rows(a) == rows(b) and rows(a) != rows(c)
    assert a[0].generator == f"{kind}-pool"


def test_asking_one_at_a_time_with_pending_rows_walks_the_same_order():
    pool = clustered_pool()
    whole = make_planner("sobol", SPACE, [OBJECTIVE], seed=5).ask(6, choices=pool)
    planner = make_planner("sobol", SPACE, [OBJECTIVE], seed=5)
    pending = []
    for _ in range(6):  # as a campaign with several instruments asks: the rows out on instruments are pending
        pending += planner.ask(1, pending=pending, choices=pool)
    assert [c.params for c in pending] == [c.params for c in whole]


def test_an_unknown_pool_design_is_refused_by_name():
    with pytest.raises(ValueError, match="pool_design must be one of \\['rank', 'snap'\\], got 'kmeans'"):
        make_planner("lhs", SPACE, [OBJECTIVE], pool_design="kmeans")
