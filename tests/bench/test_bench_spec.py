"""What a benchmark runs: the method on every number of instruments, the baselines as asked."""

from __future__ import annotations

import pytest

from labflow.bench.runner import BenchSpec


def test_baselines_may_run_fewer_seeds_and_only_on_one_instrument():
    spec = BenchSpec(datasets=["autoam"], planners=["bayesian", "sobol"], seeds=3, instruments=[1, 4],
                     baseline_seeds=2, baseline_instruments=[1])
    assert spec.jobs() == [
        ("autoam", "bayesian", 0, 1), ("autoam", "bayesian", 1, 1), ("autoam", "bayesian", 2, 1),
        ("autoam", "sobol", 0, 1), ("autoam", "sobol", 1, 1),
        ("autoam", "bayesian", 0, 4), ("autoam", "bayesian", 1, 4), ("autoam", "bayesian", 2, 4),
    ]


def test_by_default_every_planner_runs_alike():
    spec = BenchSpec(datasets=["p3ht"], planners=["bayesian", "random"], seeds=2, instruments=[1, 16])
    assert len(spec.jobs()) == 2 * 2 * 2


@pytest.mark.parametrize("bad, message", [
    ({"baseline_seeds": 0}, "baseline_seeds must be a whole number >= 1, got 0"),
    ({"baseline_instruments": [4]}, r"baseline_instruments must be some of instruments \[1\], got \[4\]"),
])
def test_impossible_baseline_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        BenchSpec(datasets=["p3ht"], planners=["bayesian", "random"], **bad)
