"""The Bayesian planner, used the way a notebook or the campaign loop uses it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from botorch.exceptions import ModelFittingError

from labflow.objectives import Objective
from labflow.planners import BayesianPlanner, SobolPlanner, make_planner
from labflow.records import Observation, Status
from labflow.space import Real, Space

FAST = {"num_restarts": 2, "raw_samples": 64, "mc_samples": 64}


def branin(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Branin on the unit square (x1, x2 in [0, 1]); minimum 0.397887 at three points."""
    u, v = 15 * x1 - 5, 15 * x2
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (v - b * u**2 + c * u - 6) ** 2 + 10 * (1 - t) * np.cos(u) + 10


def toy(row: dict) -> float:
    """A smooth yield with a peak at 150 degC, 20 min."""
    return 100 * math.exp(-(((row["temperature"] - 150) / 60) ** 2) - ((row["time"] - 20) / 30) ** 2)


def measured(planner, n: int) -> None:
    """Run ``n`` experiments one at a time with the toy landscape."""
    for _ in range(n):
        df = planner.suggest(1)
        df["yield_"] = [toy(r) for r in df.to_dict("records")]
        planner.observe(df)


def test_make_planner_builds_it(space, objective):
    planner = make_planner("bayesian", space, [objective], seed=3, n_initial=5)
    assert isinstance(planner, BayesianPlanner)
    assert planner.settings()["n_initial"] == 5
    assert planner.settings()["acquisition"] == "qLogNEI"


def test_initial_design_is_sobol_then_the_model_takes_over(space, objective):
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    assert planner.n_initial == 4  # max(4, 3 parameters + 1)
    measured(planner, 4)
    assert planner.last_generator == "sobol"
    measured(planner, 1)
    assert planner.last_generator == "qLogNEI"
    assert planner.last_decision["n_training"] == 4


def test_pending_experiments_count_towards_the_initial_design(space, objective):
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    busy = planner.ask(3)
    measured(planner, 2)
    planner.ask(1, pending=busy)  # 2 measured + 3 pending >= 4: the model is used
    assert planner.last_generator == "qLogNEI"


def test_same_seed_and_history_give_the_same_suggestion(space, objective):
    a = BayesianPlanner(space, objective, seed=7, **FAST)
    measured(a, 6)
    b = BayesianPlanner(space, objective, seed=7, **FAST)
    b.observe(a.data())
    b._asked = a._asked  # the same history: observations and the number asked so far
    b._hyper, b._hyper_init, b._fit_key = a._hyper, a._hyper_init, a._fit_key
    pd.testing.assert_frame_equal(a.suggest(2), b.suggest(2))


def test_state_round_trip_decides_the_same(space, objective):
    planner = BayesianPlanner(space, objective, seed=1, **FAST)
    measured(planner, 7)
    restored = BayesianPlanner(space, objective, seed=99, **FAST)
    restored.load_state_dict(planner.state_dict())
    assert restored.state_hash() == planner.state_hash()
    pd.testing.assert_frame_equal(planner.suggest(1), restored.suggest(1))


def test_pending_points_are_not_suggested_again(space, objective):
    planner = BayesianPlanner(space, objective, seed=2, **FAST)
    measured(planner, 6)
    busy = planner.ask(2)
    more = planner.ask(2, pending=busy)
    X_busy = space.encode([c.params for c in busy])
    X_more = space.encode([c.params for c in more])
    closest = np.abs(X_more[:, None, :] - X_busy[None, :, :]).max(axis=2).min()
    assert closest > planner.min_distance


def test_a_batch_has_distinct_points(mixed_space, objective):
    planner = BayesianPlanner(mixed_space, objective, seed=4, **FAST)
    rng = np.random.default_rng(0)
    df = mixed_space.sample(8, seed=1)
    df["yield_"] = rng.random(8)
    planner.observe(df)
    batch = planner.suggest(4)
    assert not batch.duplicated().any()
    merged = batch.merge(df[mixed_space.names], how="inner")
    assert merged.empty  # nothing already measured either


def test_pool_mode_never_repeats_a_measured_or_pending_row(space, objective):
    pool = space.sample(60, seed=5)
    planner = BayesianPlanner(space, objective, seed=5, **FAST)
    seen: set[tuple] = set()
    busy = planner.ask(2, choices=pool)  # two instruments, both busy
    seen |= {tuple(c.params.values()) for c in busy}
    for _ in range(10):
        done, busy = busy[0], busy[1:]  # the older experiment finishes ...
        planner.tell(Observation(done.uid, done.params, {"yield_": toy(done.params)}))
        (new,) = planner.ask(1, pending=busy, choices=pool)  # ... and its instrument gets a new one
        key = tuple(new.params.values())
        assert key not in seen
        seen.add(key)
        busy.append(new)
    assert planner.last_generator == "LogPGood"  # from a pool, the default asks what is likely among the best


def test_fitting_failure_falls_back_to_a_space_filling_point(space, objective, monkeypatch):
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    measured(planner, 5)

    def broken_fit(*args, **kwargs):
        raise ModelFittingError("All attempts to fit the model have failed.")

    monkeypatch.setattr("labflow.planners._models.fit_gpytorch_mll", broken_fit)
    planner._models = planner._fit_key = None  # force a refit
    (candidate,) = planner.ask(1)
    assert candidate.generator == "fallback"
    assert "ModelFittingError" in planner.last_decision["reason"]
    assert space.encode([candidate.params]).min() >= 0 and space.encode([candidate.params]).max() <= 1


def test_fitting_failure_in_pool_mode_still_picks_unmeasured_rows(space, objective, monkeypatch):
    pool = space.sample(30, seed=1)
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    for c in planner.ask(5, choices=pool):
        planner.tell(Observation(c.uid, c.params, {"yield_": toy(c.params)}))
    monkeypatch.setattr("labflow.planners._models.fit_gpytorch_mll", lambda *a, **k: 1 / 0)
    picks = planner.ask(3, choices=pool)
    assert planner.last_generator == "fallback"
    measured_rows = {tuple(o.params.values()) for o in planner.observations}
    assert not measured_rows & {tuple(c.params.values()) for c in picks}


def test_a_nan_acquisition_falls_back(space, objective, monkeypatch):
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    measured(planner, 5)
    monkeypatch.setattr(
        "labflow.planners._acquisition.optimize", lambda acq, dim, q, **kw: (np.full((q, dim), np.nan), np.full(q, np.nan))
    )
    planner.suggest(1)
    assert planner.last_generator == "fallback"
    assert "not finite" in planner.last_decision["reason"]


def test_failed_experiments_are_remembered_but_not_modelled(space, objective):
    planner = BayesianPlanner(space, objective, seed=0, **FAST)
    measured(planner, 4)
    c = planner.ask(1)[0]
    planner.tell(Observation(c.uid, c.params, status=Status.FAILED, reason="instrument timeout"))
    assert planner.n_observations == 5
    assert len(planner.train_data()[0]) == 4
    planner.suggest(1)
    assert planner.last_generator == "qLogNEI"


def test_branin_campaign_beats_its_own_initial_design():
    """25 experiments, one at a time: the GP finds a better point than the 4 Sobol points it started from."""
    space = Space([Real("x1", 0, 1), Real("x2", 0, 1)])
    planner = BayesianPlanner(space, Objective("y", "minimize"), seed=0, num_restarts=2, raw_samples=32, mc_samples=32, maxiter=40)
    for _ in range(25):
        df = planner.suggest(1)
        df["y"] = branin(df["x1"].to_numpy(), df["x2"].to_numpy())
        planner.observe(df)
    y = planner.data()["y"].to_numpy()
    assert y[planner.n_initial :].min() < y[: planner.n_initial].min()
    assert y.min() < 2.0  # the global minimum is 0.398; the initial design's best is far above


def test_sobol_baseline_and_bayesian_start_from_the_same_kind_of_design(space, objective):
    # Not the same points (different seed streams), but the same kind: scrambled Sobol, in bounds.
    from scipy.stats import qmc

    for planner in (SobolPlanner(space, objective, seed=3), BayesianPlanner(space, objective, seed=3, **FAST)):
        X = space.encode(planner.suggest(4))
        assert X.min() >= 0 and X.max() <= 1
        assert [c.generator for c in planner.ask(1)] == ["sobol"]  # still in the design, and it says so
        # a Sobol design's first 4 points are balanced: one in each half of every axis, twice
        assert ((X < 0.5).sum(axis=0) == 2).all(), X
        assert qmc.discrepancy(X) < np.median([qmc.discrepancy(np.random.default_rng(s).random(X.shape)) for s in range(20)])


@pytest.mark.parametrize("mode", ["relax", "enumerate"])
def test_categoricals_relaxed_or_enumerated(mixed_space, objective, mode):
    planner = BayesianPlanner(mixed_space, objective, seed=0, mixed=mode, **FAST)
    df = mixed_space.sample(6, seed=2)
    df["yield_"] = df["temperature"] / 2 + (df["solvent"] == "ethanol") * 30 - df["layers"]
    planner.observe(df)
    batch = planner.suggest(2)
    assert planner.last_generator == "qLogNEI"
    assert set(batch["solvent"]) <= {"water", "ethanol", "toluene"}
    assert batch["layers"].between(1, 5).all() and (batch["layers"] % 1 == 0).all()


def test_refit_every_reuses_hyperparameters_between_fits(space, objective):
    planner = BayesianPlanner(space, objective, seed=0, refit_every=3, **FAST)
    measured(planner, 5)
    refits = []
    for _ in range(4):
        measured(planner, 1)
        refits.append(planner.last_decision["refit"])
    assert refits == [False, False, True, False]
    restored = BayesianPlanner(space, objective, seed=0, refit_every=3, **FAST)
    restored.load_state_dict(planner.state_dict())
    pd.testing.assert_frame_equal(planner.suggest(1), restored.suggest(1))


# -- the acquisition, initial-design and model options (docs/decisions/0005) ---------------------------------


@pytest.mark.parametrize(
    "acquisition, generator", [("ucb", "qUCB"), ("ts", "Thompson"), ("qlognei", "qLogNEI"), ("pgood", "LogPGood")]
)
def test_every_acquisition_picks_fresh_pool_rows_with_pending_experiments(space, objective, acquisition, generator):
    pool = space.sample(60, seed=5)
    planner = BayesianPlanner(space, objective, seed=5, acquisition=acquisition, initial_design="random", n_initial=3, **FAST)
    busy = planner.ask(3, choices=pool)  # three instruments start at once
    assert planner.last_generator == "random"
    seen = {tuple(c.params.values()) for c in busy}
    for _ in range(6):
        done, busy = busy[0], busy[1:]
        planner.tell(Observation(done.uid, done.params, {"yield_": toy(done.params)}))
        (new,) = planner.ask(1, pending=busy, choices=pool)
        assert tuple(new.params.values()) not in seen
        seen.add(tuple(new.params.values()))
        busy.append(new)
    assert planner.last_generator == generator


@pytest.mark.parametrize("acquisition", ["ucb", "ts", "pgood"])
def test_every_acquisition_proposes_freely_in_a_batch(space, objective, acquisition):
    planner = BayesianPlanner(space, objective, seed=1, acquisition=acquisition, **FAST)
    measured(planner, 5)
    batch = planner.suggest(3)
    assert not batch.duplicated().any()
    assert planner.last_generator == planner.acquisition_name != "fallback"
    assert all(p.contains(v) for p in space.parameters for v in batch[p.name])


def test_kcenter_initial_design_spreads_over_the_pool(space, objective):
    pool = space.sample(200, seed=2)
    X = space.encode(pool)
    planner = BayesianPlanner(space, objective, seed=2, initial_design="kcenter", n_initial=6)
    picked = space.encode([c.params for c in planner.ask(6, choices=pool)])
    gaps = np.abs(picked[:, None, :] - picked[None, :, :]).max(axis=2)[np.triu_indices(6, 1)]
    rng = np.random.default_rng(0)
    random_gaps = [np.abs(X[s][:, None] - X[s][None]).max(axis=2)[np.triu_indices(6, 1)].min()
                   for s in (rng.choice(200, 6, replace=False) for _ in range(50))]
    assert gaps.min() > np.median(random_gaps)  # farther apart than random rows usually are


@pytest.mark.parametrize("design", ["random", "rank", "kcenter", "sobol"])
def test_the_same_seed_starts_from_the_same_pool_rows(space, objective, design):
    pool = space.sample(100, seed=3)
    start = lambda seed: [c.params for c in BayesianPlanner(space, objective, seed=seed, initial_design=design).ask(4, choices=pool)]  # noqa: E731
    first = start(7)
    assert first == start(7) and first != start(8)
    assert len({tuple(p.values()) for p in first}) == 4


@pytest.mark.parametrize("warp", ["rank", "log"])
def test_outcome_warps_keep_the_order_of_results(warp):
    from labflow.planners._models import OUTCOME_WARPS

    Y = np.array([[0.0], [0.0], [3.0], [1.0], [250.0], [2.0]])
    W = OUTCOME_WARPS[warp](Y)
    assert W.shape == Y.shape and np.isfinite(W).all()
    assert (np.argsort(W[:, 0], kind="stable") == np.argsort(Y[:, 0], kind="stable")).all()
    assert W[0, 0] == W[1, 0]  # ties stay ties


def test_an_unknown_option_value_is_named_with_the_choices(space, objective):
    with pytest.raises(ValueError, match=r"acquisition must be one of \['auto', 'qlognei', 'ucb', 'ts', 'pgood'\], got 'lcb'"):
        BayesianPlanner(space, objective, acquisition="lcb")
    with pytest.raises(ValueError, match="beta must be a non-negative number"):
        BayesianPlanner(space, objective, beta=-1)


def test_auto_refit_fits_while_data_are_few_then_when_they_have_grown_by_a_tenth(space, objective):
    planner = BayesianPlanner(space, objective, seed=0, refit_every="auto", acquisition="ucb", **FAST)
    measured(planner, 20)
    assert planner.last_decision["refit"]  # 19 observations: every fit is a refit
    refits = []
    for _ in range(4):
        measured(planner, 1)
        refits.append(planner.last_decision["refit"])
    assert refits == [True, False, True, False]  # 20 (still few), 21 (< 22), 22 (= 1.1 * 20), 23
    restored = BayesianPlanner(space, objective, seed=0, refit_every="auto", acquisition="ucb", **FAST)
    restored.load_state_dict(planner.state_dict())
    pd.testing.assert_frame_equal(planner.suggest(1), restored.suggest(1))
    with pytest.raises(ValueError, match="refit_every must be a whole number >= 1 or 'auto', got 'sometimes'"):
        BayesianPlanner(space, objective, refit_every="sometimes")


def test_pgood_keeps_collecting_good_rows_after_the_best_is_found():
    """Active search: among a pool with a broad good region, the picks stay in it rather than wander off."""
    space = Space([Real("x", 0, 1), Real("y", 0, 1)])
    grid = np.linspace(0, 1, 21)
    pool = pd.DataFrame([(a, b) for a in grid for b in grid], columns=["x", "y"])
    f = lambda r: -((r["x"] - 0.7) ** 2 + (r["y"] - 0.3) ** 2)  # noqa: E731
    good = set(pool.index[pool.apply(f, axis=1) >= pool.apply(f, axis=1).quantile(0.95)])
    planner = BayesianPlanner(space, Objective("f", "maximize"), seed=0, acquisition="pgood", initial_design="random", **FAST)
    measured_rows: list[int] = []
    for _ in range(25):
        (c,) = planner.ask(1, choices=pool.drop(index=measured_rows))
        measured_rows.append(int(pool.index[(pool["x"] == c.params["x"]) & (pool["y"] == c.params["y"])][0]))
        planner.tell(Observation(c.uid, c.params, {"f": f(c.params)}))
    found = len(good.intersection(measured_rows))
    assert "top_level" in planner.last_decision
    assert found >= 12  # of the 23 good rows; random picks would find about 1.4 in 25
