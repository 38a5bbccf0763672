"""Multi-fidelity: a cheap, biased simulation and the expensive experiment that counts."""

from __future__ import annotations

import pandas as pd
import pytest

from labflow.errors import SpaceError
from labflow.objectives import Objective
from labflow.planners import Fidelity, MultiFidelityPlanner, make_planner
from labflow.space import Real, Space

LIGHT = {"num_restarts": 1, "raw_samples": 32, "mc_samples": 32, "maxiter": 30}
FIDELITIES = [Fidelity("simulation", cost=1.0), Fidelity("experiment", cost=10.0)]


@pytest.fixture
def space() -> Space:
    return Space([Real("x1", 0, 1), Real("x2", 0, 1)])


def measure(df: pd.DataFrame) -> pd.DataFrame:
    """The experiment peaks at (0.7, 0.3); the simulation is the same shape with a tilt."""
    truth = -((df["x1"] - 0.7) ** 2 + (df["x2"] - 0.3) ** 2)
    out = df.copy()
    out["y"] = truth.where(df["fidelity"] == "experiment", truth + 0.1 * (df["x1"] - 0.5))
    return out


def test_suggestions_say_which_fidelity_to_run(space):
    planner = make_planner("multifidelity", space, [Objective("y")], seed=0, fidelities=FIDELITIES, **LIGHT)
    first = planner.suggest(4)
    assert list(first.columns) == ["x1", "x2", "fidelity"]
    assert first["fidelity"].tolist() == ["simulation", "experiment", "simulation", "experiment"]  # initial design: in turn
    planner.observe(measure(first))
    nxt = planner.suggest(2)
    assert planner.last_generator == "CostWeightedLogEI"
    assert set(nxt["fidelity"]) <= {"simulation", "experiment"}
    assert planner.total_cost() == 2 * 1.0 + 2 * 10.0


def test_cheap_fidelity_is_used_while_it_is_informative(space):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, **LIGHT)
    for _ in range(8):
        planner.observe(measure(planner.suggest(1)))
    chosen = planner.data()["fidelity"].iloc[4:]
    assert (chosen == "simulation").sum() >= 4  # ten times cheaper, and it points the right way
    assert planner.best().params["fidelity"] == "experiment"  # best() speaks of the target only
    rec = planner.recommend()
    assert set(rec) == {"x1", "x2"}
    assert abs(rec["x1"] - 0.7) < 0.25 and abs(rec["x2"] - 0.3) < 0.25


def test_knowledge_gradient_is_available(space):
    planner = MultiFidelityPlanner(
        space, Objective("y"), seed=0, fidelities=FIDELITIES, acquisition="kg", num_fantasies=4, num_restarts=1, raw_samples=16, maxiter=10
    )
    planner.observe(measure(planner.suggest(4)))
    planner.suggest(1)
    assert planner.last_generator == "qMFKG"
    assert set(planner.last_decision["value_per_fidelity"][0]) == {"simulation", "experiment"}


def test_pool_without_a_fidelity_column_is_offered_at_every_fidelity(space):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, **LIGHT)
    pool = space.sample(10, seed=1)
    picks = planner.ask(3, choices=pool)
    assert {c.params["fidelity"] for c in picks} <= {"simulation", "experiment"}
    assert all(c.params["x1"] in set(pool["x1"]) for c in picks)


def test_bad_fidelity_settings_are_refused(space):
    with pytest.raises(SpaceError, match="at least two"):
        MultiFidelityPlanner(space, Objective("y"), fidelities=[Fidelity("only", 1.0)])
    with pytest.raises(SpaceError, match="positive"):
        Fidelity("free", 0.0)
    with pytest.raises(SpaceError, match="one objective"):
        MultiFidelityPlanner(space, [Objective("y"), Objective("z")], fidelities=FIDELITIES)


def test_the_handover_rule_moves_to_the_target_once_the_cheap_fidelity_has_spoken(space):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, acquisition="handover", **LIGHT)
    rng = pd.DataFrame({"x1": [0.1, 0.9, 0.5, 0.2, 0.8], "x2": [0.9, 0.1, 0.5, 0.3, 0.7]})
    sims = pd.concat([rng, pd.DataFrame({"x1": [0.7] * 3, "x2": [0.3] * 3})], ignore_index=True).assign(fidelity="simulation")
    exps = rng.iloc[:2].assign(fidelity="experiment")
    planner.observe(measure(pd.concat([sims, exps], ignore_index=True)))
    model = planner._fit()["objective"]  # noqa: SLF001
    measured_cheaply = planner.information_per_cost(model, [0.7, 0.3])
    unexplored = planner.information_per_cost(model, [0.1, 0.1])
    # at (0.7, 0.3) the simulation has said what it can: per unit cost the experiment now tells more
    assert measured_cheaply["experiment"] > measured_cheaply["simulation"]
    assert unexplored["simulation"] > measured_cheaply["simulation"]
    nxt = planner.suggest(2)
    assert planner.last_generator == "TargetLogEI+InfoPerCost" and set(nxt["fidelity"]) <= {"simulation", "experiment"}
    assert len(planner.last_decision["information_per_cost"]) == 2


@pytest.mark.parametrize("acquisition", ["cwei", "handover"])
def test_a_campaign_can_ask_for_the_fidelity_of_its_free_station(space, acquisition):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, acquisition=acquisition, **LIGHT)
    first = planner.ask(3, fidelity="experiment")  # the initial design would take the fidelities in turn
    assert [c.params["fidelity"] for c in first] == ["experiment"] * 3
    planner.observe(measure(pd.DataFrame([c.params for c in first])))
    planner.observe(measure(planner.suggest(3)))
    waiting = planner.ask(1, fidelity="experiment")  # queued for the busy experiment station
    cheap = planner.ask(2, pending=waiting, fidelity="simulation")  # for the two free simulation stations
    assert [c.params["fidelity"] for c in cheap] == ["simulation", "simulation"]
    assert planner.last_generator != "fallback" and planner.last_decision["fidelity_given"] == "simulation"
    pool = planner.ask(2, choices=space.sample(10, seed=1), fidelity="simulation")
    assert [c.params["fidelity"] for c in pool] == ["simulation", "simulation"]


def test_a_fidelity_the_planner_does_not_know_is_refused(space):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, **LIGHT)
    with pytest.raises(SpaceError, match="'dft' is not one of"):
        planner.ask(1, fidelity="dft")


def test_a_fallback_for_a_free_station_keeps_to_its_fidelity(space, monkeypatch):
    from labflow.planners.bayesian import BayesianPlanner

    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, acquisition="handover", **LIGHT)
    planner.observe(measure(planner.suggest(6)))

    def broken(self):
        raise RuntimeError("the GP refused to fit")

    monkeypatch.setattr(BayesianPlanner, "_fit", broken)
    got = planner.ask(2, fidelity="experiment")  # the fallback would take the cheapest fidelity
    assert planner.last_generator == "fallback"
    assert [c.params["fidelity"] for c in got] == ["experiment", "experiment"]


def test_idle_stations_worth_needs_the_handover_rule(space):
    with pytest.raises(ValueError, match="needs acquisition='handover'"):
        MultiFidelityPlanner(space, Objective("y"), fidelities=FIDELITIES, acquisition="cwei", idle_stations="worth")


def test_idle_stations_worth_proposes_for_a_free_station_only_where_its_fidelity_is_worth_the_cost(space):
    planner = MultiFidelityPlanner(space, Objective("y"), seed=0, fidelities=FIDELITIES, acquisition="handover",
                                   idle_stations="worth", n_initial=4, **LIGHT)
    planner.observe(measure(planner.suggest(4)))
    for _ in range(6):
        asked = planner.ask(1, fidelity="simulation")
        info = planner.last_decision["information_per_cost"][0]
        prefers_simulation = max(info, key=info.get) == "simulation"
        assert bool(asked) == prefers_simulation, info
        assert planner.last_decision.get("declined_for_idle_station", 0) == (0 if asked else 1)
        nxt = planner.suggest(1)  # the planner's own choice moves the campaign on
        planner.observe(measure(nxt))
