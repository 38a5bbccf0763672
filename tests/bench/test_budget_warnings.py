"""A benchmark run with too small a budget says so: a censored AF is a bound, printed with a
warning (and one that is above its ceiling says the figure cannot be trusted)."""

from __future__ import annotations

import numpy as np

from labflow.bench.metrics import budget_warnings, summarize
from labflow.sim.datasets import load_dataset


def test_a_bench_with_a_budget_of_6_warns_that_its_afs_are_bounds(data_dir):
    ds = load_dataset("perovskite", data_dir=data_dir)
    rng = np.random.default_rng(16)
    n = len(ds.y)
    traces = {"random": [list(rng.permutation(n)[:6]) for _ in range(3)], "bayesian": [list(rng.permutation(n)[:6]) for _ in range(3)]}
    rows = summarize(traces, ds, targets=("80%",))
    censored = [r for r in rows if r["af_bound"] != "exact"]
    assert censored, "6 random draws should not reach the top 5 % of the perovskite pool in half the seeds"
    warnings = budget_warnings(rows)
    assert len(warnings) == len(censored)
    assert all("is a bound, not a measurement" in w and "within the budget of 6 experiments" in w and w.endswith("raise --budget")
               for w in warnings)


def test_an_af_above_its_ceiling_says_the_budget_was_too_small():
    row = {"dataset": "crossed_barrel", "planner": "bayesian", "target": "first", "af_vs_random": 41.0, "af_bound": "lower",
           "ceiling": 27.1, "reached_fraction": 1.0, "budget": 10}
    (line,) = budget_warnings([row])
    assert line == ("crossed_barrel / bayesian / target first: AF >=41.00 is a bound, not a measurement (100% of the runs reached "
                    "the target within the budget of 10 experiments); it is above the ceiling 27.10, the largest AF possible: "
                    "the budget was too small; raise --budget")
    assert budget_warnings([{**row, "af_bound": "exact"}]) == []
