"""A planner's state: what a campaign records beside each decision, and the hash that says two planners agree."""

from __future__ import annotations

import pickle

from labflow.objectives import Objective
from labflow.planners import RandomPlanner
from labflow.records import Observation
from labflow.space import Real, Space


def _planner_after(values: list[float]) -> RandomPlanner:
    planner = RandomPlanner(Space([Real("x", 0, 1), Real("y", 0, 1)]), Objective("f"), seed=4)
    for v in values:
        (c,) = planner.ask(1)
        planner.tell(Observation(c.uid, c.params, {"f": v}))
    return planner


def test_equal_histories_hash_alike_however_the_planner_was_made():
    planner = _planner_after([1.0, 2.0, 3.0])
    restored = RandomPlanner(planner.space, planner.objectives, seed=0)
    restored.load_state_dict(planner.state_dict())
    assert restored.state_hash() == planner.state_hash() == planner.clone().state_hash()
    assert pickle.loads(pickle.dumps(planner)).state_hash() == planner.state_hash()


def test_the_hash_follows_every_new_observation_and_every_outcome():
    planner = _planner_after([1.0, 2.0])
    before = planner.state_hash()
    (c,) = planner.ask(1)
    planner.tell(Observation(c.uid, c.params, {"f": 5.0}))
    assert planner.state_hash() != before
    # the same uids and points with one other outcome: another state, another hash
    other = RandomPlanner(planner.space, planner.objectives, seed=0)
    state = planner.state_dict()
    state["observations"][0]["outcomes"] = {"f": -1.0}
    other.load_state_dict(state)
    assert other.state_hash() != planner.state_hash()


def test_the_summary_recorded_beside_each_decision_leaves_out_the_observations():
    planner = _planner_after([1.0, 2.0, 3.0])
    summary = planner.state_summary()
    assert "observations" not in summary
    assert summary == {k: v for k, v in planner.state_dict().items() if k != "observations"}
    assert len(planner.state_dict()["observations"]) == 3  # the full state still has them
