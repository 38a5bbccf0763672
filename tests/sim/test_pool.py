"""The pool lab: nearest unmeasured point, each point measured once, safe across threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import yaml

from labflow.planners import RandomPlanner
from labflow.sim.datasets import load_dataset
from labflow.sim.pool import PoolExhaustedError, PoolLandscape


def write_pool(tmp_path, rows: str, inputs, direction: str = "maximize"):
    (tmp_path / "pool.csv").write_bytes(rows.strip("\n").replace("\n", "\r\n").encode())
    (tmp_path / "pool.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "file": "pool.csv",
                "inputs": inputs,
                "objective": {"column": "y", "name": "y", "direction": direction},
            }
        )
    )
    return load_dataset(tmp_path / "pool.yaml")


@pytest.fixture
def line(tmp_path):
    """Five points on x in [0, 10] with y = x."""
    return write_pool(tmp_path, "x,y\n0,0\n2.5,2.5\n5,5\n7.5,7.5\n10,10", [{"column": "x", "name": "x", "unit": "mm"}])


def test_a_proposal_gets_the_nearest_unmeasured_point(line):
    lab = PoolLandscape(line)
    assert lab.evaluate({"x": 6.0}) == {"y": 5.0}
    assert lab.evaluate({"x": 6.0}) == {"y": 7.5}  # 5 is taken; 7.5 is the nearest left
    assert lab.evaluate({"x": 5.0}) == {"y": 2.5}
    assert lab.trace == [2, 3, 1]
    assert [round(a.distance, 3) for a in lab.log] == [0.1, 0.15, 0.25]  # in the unit cube (span 10 mm)


def test_ties_go_to_the_lowest_pool_index(line):
    lab = PoolLandscape(line, measured=[2])  # x = 5 already measured
    assert lab.evaluate({"x": 5.0}) == {"y": 2.5}  # 2.5 and 7.5 are equally near


def test_an_exact_pool_point_gets_that_point(line):
    lab = PoolLandscape(line)
    assert lab.measure({"x": 7.5}) == (3, 7.5)
    assert lab.log[-1].distance == 0.0


def test_choices_are_the_unmeasured_points_without_their_values(line):
    lab = PoolLandscape(line)
    lab.evaluate({"x": 0.0})
    free = lab.choices()
    assert list(free.columns) == ["x"]
    assert free.index.tolist() == [1, 2, 3, 4]
    assert lab.n_remaining == 4 and lab.n_measured == 1


def test_near_duplicate_proposals_never_get_the_same_point_and_the_pool_runs_dry(line):
    lab = PoolLandscape(line)
    answers = [lab.evaluate({"x": 5.0 + 1e-9 * i})["y"] for i in range(5)]
    assert sorted(answers) == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert sorted(lab.trace) == [0, 1, 2, 3, 4]
    with pytest.raises(PoolExhaustedError, match="all 5 points have been measured"):
        lab.evaluate({"x": 5.0})
    lab.reset()
    assert lab.evaluate({"x": 5.0}) == {"y": 5.0}


def test_two_threads_sharing_the_pool_never_receive_the_same_point(tmp_path):
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, size=(200, 2))
    rows = "a,b,y\n" + "\n".join(f"{a:.6f},{b:.6f},{a + b:.6f}" for a, b in xs)
    ds = write_pool(tmp_path, rows, [{"column": "a", "name": "a"}, {"column": "b", "name": "b"}])
    lab = PoolLandscape(ds)
    got: dict[int, list[int]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def station(k: int) -> None:
        start.wait()
        for _ in range(100):
            got[k].append(lab.measure({"a": 0.5, "b": 0.5})[0])  # both ask for the same point each time

    threads = [threading.Thread(target=station, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(got[0]) == len(got[1]) == 100
    assert sorted(got[0] + got[1]) == list(range(200))  # every point exactly once
    assert sorted(lab.trace) == list(range(200))


def test_categoricals_match_exactly_before_distance_counts(tmp_path):
    rows = "solvent,T,y\nwater,20,1\nethanol,21,2\nwater,80,3"
    ds = write_pool(tmp_path, rows, [{"column": "solvent", "name": "solvent", "type": "categorical"}, {"column": "T", "name": "T", "unit": "degC"}])
    lab = PoolLandscape(ds)
    assert ds.space["solvent"].choices == ("ethanol", "water")
    assert lab.evaluate({"solvent": "water", "T": 21}) == {"y": 1.0}  # not ethanol at 21, which is nearer in T
    assert lab.evaluate({"solvent": "water", "T": 21}) == {"y": 3.0}
    assert lab.evaluate({"solvent": "water", "T": 21}) == {"y": 2.0}  # no water left: the nearest other
    assert lab.log[-1].mismatches == 1


def test_inputs_and_outputs_describe_the_pool(line):
    lab = PoolLandscape(line)
    (x,) = lab.inputs
    assert (x.name, x.low, x.high, x.unit) == ("x", 0.0, 10.0, "mm")
    assert lab.outputs[0].name == "y" and lab.outputs[0].direction == "maximize"
    assert lab.optimum() == {"y": 10.0}


@pytest.mark.needs_data
def test_a_planner_scoring_pool_choices_walks_the_crossed_barrel_pool(data_dir):
    ds = load_dataset("crossed_barrel", data_dir=data_dir)
    lab = PoolLandscape(ds)
    planner = RandomPlanner(ds.space, ds.objective, seed=3)
    for _ in range(5):
        (cand,) = planner.ask(1, choices=lab.choices())
        lab.evaluate(cand.params)
        assert lab.log[-1].distance == 0.0  # the planner proposed a pool point and got exactly it
    assert len(set(lab.trace)) == 5
    assert lab.input("n_columns").integer
