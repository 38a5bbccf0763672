"""Benchmark metrics against hand-computed cases (definitions: docs/reference/benchmark-definitions.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labflow.bench.metrics import (
    acceleration_factor,
    async_timeline,
    combine_bounds,
    invert_bound,
    ceiling,
    enhancement_factor,
    enhancement_summary,
    first_passage,
    first_passage_counts,
    fraction_found,
    geometric_mean,
    geometric_mean_af,
    good_set,
    lab_time_table,
    makespan,
    markdown_table,
    median_censored,
    n_good,
    overhead_break_even,
    random_reference,
    random_reference_median,
    random_reference_pmf,
    standard_targets,
    summarize_traces,
    time_to_target,
)


# -- good set ------------------------------------------------------------------------
def test_good_set_is_the_top_ceil_q_n_by_direction():
    values = [3.0, 9.0, 1.0, 7.0, 5.0]
    assert good_set(values, q=0.4).tolist() == [1, 3]  # ceil(0.4*5) = 2, largest first
    assert good_set(values, q=0.4, direction="minimize").tolist() == [2, 0]
    assert good_set([1.0, 2.0, 2.0], q=0.34).tolist() == [1, 2]  # ceil(1.02) = 2; a tie keeps pool order


def test_good_set_size_is_safe_from_float_round_off():
    assert [n_good(n) for n in (178, 164, 94, 600, 100)] == [9, 9, 5, 30, 5]  # the README's M
    assert n_good(100, 0.05) == 5 and n_good(180, 0.05) == 9 and n_good(2000, 0.01) == 20


def test_standard_targets():
    values = np.arange(180.0)  # M = 9; the best point is index 179
    t = standard_targets(values)
    assert (t["first"].k, t["first"].m) == (1, 9)
    assert (t["80%"].k, t["80%"].m) == (8, 9)  # ceil(0.8 * 9) = 8
    assert (t["best"].k, t["best"].members) == (1, (179,))


# -- first passage ---------------------------------------------------------------------
def test_first_passage_counts_experiments_until_k_good():
    trace = [4, 0, 7, 7, 2, 9]
    assert first_passage(trace, members={7, 9}, k=1) == 3
    assert first_passage(trace, members={7, 9}, k=2) == 6  # the repeated 7 counts once
    assert first_passage(trace, members={7, 9}, k=2, budget=5) is None  # censored
    assert first_passage_counts([trace, [9, 7]], {7, 9}, k=2).tolist() == [6.0, 2.0]
    assert first_passage_counts([[1, 2]], {7}, k=1).tolist() == [math.inf]


# -- the random reference ------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "m", "k", "expected"),
    [(178, 9, 1, 17.9), (178, 9, 8, 143.2), (164, 9, 8, 132.0), (94, 5, 4, 63.33), (600, 30, 24, 465.29), (100, 5, 4, 67.33)],
)
def test_random_reference_matches_the_readme_table(n, m, k, expected):
    assert random_reference(n, m, k) == pytest.approx(expected, abs=0.01)


def test_random_reference_is_the_mean_of_the_exact_law():
    pmf = random_reference_pmf(100, 5, 4)
    n = np.arange(1, 101)
    assert pmf.sum() == pytest.approx(1.0)
    assert (n * pmf).sum() == pytest.approx(random_reference(100, 5, 4))
    assert random_reference_median(21, 1, 1) == 11  # one marked item among 21: uniform position


@pytest.mark.parametrize(("k", "tol"), [(1, 0.04), (4, 0.02)])
def test_random_reference_agrees_with_a_seeded_monte_carlo(k, tol):
    n, m = 100, 5
    rng = np.random.default_rng(2021)
    traces = [rng.permutation(n) for _ in range(4000)]  # random sampling without replacement
    good = range(m)  # which points are good does not matter to random sampling
    counts = first_passage_counts(traces, good, k)
    assert counts.mean() == pytest.approx(random_reference(n, m, k), rel=tol)


@pytest.mark.parametrize(
    ("n", "m", "k", "median"),
    [
        (3, 1, 1, 2),  # the one good item is 1st, 2nd or 3rd with probability 1/3 each: CDF(2) = 2/3
        (4, 2, 1, 1),  # P(first draw is good) = 2/4: CDF(1) = 1/2 already
        (4, 2, 2, 3),  # both good by draw n: P(2) = 1/6, P(3) = 2/6, P(4) = 3/6: CDF(3) = 1/2
        (5, 1, 1, 3),  # uniform position among 5
        (21, 1, 1, 11),
    ],
)
def test_random_reference_median_by_hand(n, m, k, median):
    assert random_reference_median(n, m, k) == median


def test_random_reference_median_is_the_median_of_the_negative_hypergeometric_law():
    for n, m, k in [(178, 9, 1), (178, 9, 8), (600, 30, 24), (94, 5, 4), (100, 5, 1)]:
        cdf = np.cumsum(random_reference_pmf(n, m, k))  # the law written out, C(j-1, k-1) C(n-j, m-k) / C(n, m)
        med = int(random_reference_median(n, m, k))
        assert cdf[med - 1] >= 0.5 > cdf[med - 2]  # the smallest count whose CDF reaches 1/2
    # and it is not the mean: for the first good of 9 among 178 the mean is 17.9 draws, the median 13
    assert (random_reference(178, 9, 1), random_reference_median(178, 9, 1)) == (pytest.approx(17.9), 13)


@pytest.mark.parametrize(("n", "m", "k"), [(100, 5, 1), (100, 5, 4), (40, 2, 2)])
def test_random_reference_median_agrees_with_a_seeded_monte_carlo(n, m, k):
    rng = np.random.default_rng(1234)
    counts = first_passage_counts([rng.permutation(n) for _ in range(4001)], range(m), k)
    exact = random_reference_median(n, m, k)
    assert abs(np.median(counts) - exact) <= 1  # sampling error of a median of 4001 draws
    assert np.mean(counts <= exact) >= 0.5 - 0.02 and np.mean(counts <= exact - 1) < 0.5 + 0.02


def test_random_sampling_scores_about_one_against_the_median_reference():
    # The old table divided the reference's mean by a median: random scored 1.3-1.4 against itself on "first".
    values = np.arange(178.0)  # a P3HT-sized pool, 9 good
    rng = np.random.default_rng(7)
    runs = [list(rng.permutation(178)) for _ in range(2001)]
    rows = summarize_traces({"random": runs}, values, targets=("first", "80%"), n_boot=200)
    for row in rows:
        assert row["af_vs_random"] == pytest.approx(1.0, abs=0.08)  # one draw either side of a median of 13
    old = summarize_traces({"random": runs}, values, targets=("first",), n_boot=200, reference_stat="mean")
    assert old[0]["af_vs_random"] > 1.25


def test_ceiling_is_what_an_oracle_reaches():
    n, m = 600, 30
    assert ceiling(n, m) == pytest.approx(601 / 31)
    oracle = list(range(n))  # measures the good points 0..29 first
    for k in (1, 24, 30):
        counts = first_passage_counts([oracle], range(m), k)
        assert counts[0] == k
        assert random_reference(n, m, k) / counts[0] == pytest.approx(ceiling(n, m))


# -- acceleration factor ------------------------------------------------------------------
def test_acceleration_factor_on_constructed_traces():
    # N = 20, one good point (index 7): random needs (20+1)/(1+1) = 10.5 draws on average
    traces = [[7], [0, 7], [0, 1, 7], [0, 1, 2, 7], [0, 1, 2, 3, 7]]  # found at 1, 2, 3, 4, 5
    counts = first_passage_counts(traces, {7})
    af = acceleration_factor(counts, random_reference(20, 1), n_boot=500, seed=0)
    assert af.method_median == 3
    assert af.value == pytest.approx(10.5 / 3)
    assert af.bound == "exact"
    assert af.ci_low <= af.value <= af.ci_high
    assert af.value <= ceiling(20, 1)


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(7)
    counts = rng.integers(20, 60, size=50).astype(float)
    reference = rng.integers(100, 200, size=50).astype(float)  # e.g. Sobol runs
    a = acceleration_factor(counts, reference, n_boot=1000, seed=1)
    b = acceleration_factor(counts, reference, n_boot=1000, seed=1)
    assert a == b
    assert a.ci_low < a.value < a.ci_high
    assert a.value == pytest.approx(np.median(reference) / np.median(counts))


def test_censored_runs_make_the_af_a_bound_and_say_which():
    budget = 10
    mostly_censored = np.array([3.0, np.inf, np.inf])  # the median run did not reach the target
    af = acceleration_factor(mostly_censored, 15.0, method_budgets=budget, n_boot=200)
    assert af.bound == "upper" and af.method_median == budget + 1  # AF <= 15/11
    assert af.value == pytest.approx(15 / 11)
    assert str(af).startswith("<= ")
    ref_censored = np.array([np.inf, np.inf, 4.0])
    af = acceleration_factor(np.array([2.0, 2.0, 2.0]), ref_censored, reference_budgets=budget, n_boot=200)
    assert af.bound == "lower" and af.value == pytest.approx(11 / 2)
    a_few_censored = np.array([3.0, 4.0, 5.0, np.inf])
    assert median_censored(a_few_censored, budget) == (4.5, True)  # the median does not depend on the censored run


def test_censored_runs_need_their_budget():
    with pytest.raises(ValueError, match="budgets"):
        acceleration_factor(np.array([np.inf, 3.0]), 10.0)


# -- enhancement factor and fraction found -----------------------------------------------
def test_enhancement_factor_of_an_oracle_is_one_over_q_then_falls_to_one():
    n, m = 100, 5
    oracle = [list(range(n))]  # good points 0..4 come first
    ef = enhancement_factor(oracle, range(m), n)
    assert ef[:m] == pytest.approx(np.full(m, n / m))  # 20 = 1/q
    assert ef[-1] == pytest.approx(1.0)
    summary = enhancement_summary(ef, dim=4)
    assert summary["ef_max"] == pytest.approx(20.0) and summary["ef_max_at"] == 1
    assert summary["ef_10d"] == pytest.approx((5 / 5) / (40 / 100))  # n = 40: all found, 40 % of the pool spent
    assert enhancement_summary(ef[:30], dim=4)["ef_10d"] is None  # past the end of the runs


def test_enhancement_factor_of_random_sampling_is_about_one():
    rng = np.random.default_rng(0)
    traces = [rng.permutation(100) for _ in range(2000)]
    ef = enhancement_factor(traces, range(5), 100)
    assert ef[19:].mean() == pytest.approx(1.0, abs=0.05)


def test_fraction_found_holds_its_last_value_after_a_short_run():
    curves = fraction_found([[0, 9, 1], [9]], members={0, 1}, n_max=4)
    assert curves.tolist() == [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]


# -- summary rows ------------------------------------------------------------------------------
def test_summary_rows_and_markdown_table():
    values = np.arange(40.0)  # maximize: good = the top ceil(0.05*40) = 2 = {39, 38}
    oracle_ish = [[39, 38, *range(38)], [0, 39, 38, *range(1, 38)]]
    random_runs = [list(np.random.default_rng(s).permutation(40)) for s in range(5)]
    rows = summarize_traces({"smart": oracle_ish, "random": random_runs}, values, dataset="toy", dim=2, n_boot=200)
    assert len(rows) == 6  # 2 planners x 3 targets
    row = next(r for r in rows if r["planner"] == "smart" and r["target"] == "80%")
    assert {"dataset", "planner", "target", "median_n", "af_vs_random", "af_ci", "ceiling", "reached_fraction", "seeds"} <= set(row)
    assert (row["k"], row["M"], row["N"]) == (2, 2, 40)
    assert row["median_n"] == 2.5 and row["reached_fraction"] == 1.0 and row["seeds"] == 2
    assert row["random_reference"] == row["random_reference_median"] == random_reference_median(40, 2, 2)  # medians with medians
    assert row["random_reference_mean"] == pytest.approx(random_reference(40, 2, 2))  # reported beside it
    assert row["af_vs_random"] == pytest.approx(random_reference_median(40, 2, 2) / 2.5)
    assert row["ceiling"] == pytest.approx(41 / 3)
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| dataset | planner | target | median_n")
    assert len(table.splitlines()) == 2 + 6


def test_summary_marks_censored_medians_and_af_bounds():
    values = np.arange(40.0)
    never = [list(range(10)) for _ in range(3)]  # budget 10, never meets a good point
    (row,) = summarize_traces({"stuck": never}, values, targets=("first",), n_boot=100)
    assert row["reached_fraction"] == 0.0 and row["af_bound"] == "upper" and not row["median_exact"]
    table = markdown_table([row])
    assert ">10" in table and "<=" in table


def test_every_column_of_a_censored_figure_is_marked_as_a_bound():
    values = np.arange(40.0)  # good = {39, 38}
    smart = [[39, 38, *range(10)] for _ in range(3)]  # finds both at once
    slow = [[39, *range(10)] for _ in range(3)]  # finds the first, never the second: censored at 11
    sobol = [list(range(12)) for _ in range(3)]  # the reference design never finds a good point
    rows = summarize_traces({"smart": smart, "slow": slow, "sobol": sobol}, values, targets=("80%",), reference_planner="sobol", n_boot=100)
    by = {r["planner"]: r for r in rows}
    assert by["smart"]["af_bound"] == "exact" and by["smart"]["af_vs_sobol_bound"] == "lower"  # the reference is censored
    assert by["slow"]["af_bound"] == "upper" and by["slow"]["af_vs_sobol_bound"] == "undefined"  # both are
    table = markdown_table(rows, ["planner", "median_n", "iqr", "af_vs_random", "af_ci", "af_vs_sobol", "af_vs_sobol_ci"])
    smart_line = next(line for line in table.splitlines() if "| smart |" in line)
    slow_line = next(line for line in table.splitlines() if "| slow |" in line)
    assert smart_line.count(">=") == 2  # af_vs_sobol and its interval
    assert slow_line.count("<=") == 2 and slow_line.count("?") == 2  # af_vs_random + its CI; af_vs_sobol + its CI
    assert "| >11 | [>11, >11] |" in slow_line  # a censored median and IQR print as more than the budget
    geo = {(g["planner"], g["target"]): g for g in geometric_mean_af(rows, "80%")}
    assert geo[("slow", "80%")]["gmean_af_vs_random_bound"] == "upper"
    assert geo[("smart", "80%")]["gmean_af_vs_sobol_bound"] == "lower"
    # the Sobol runs are censored too: their own AF vs random is an upper bound, and so is its mean
    assert markdown_table(list(geo.values()), ["planner", "gmean_af_vs_random", "gmean_af_vs_sobol"]).count("<=") == 2


def test_bounds_combine_like_a_monotone_function_of_its_inputs():
    assert combine_bounds(["exact", "exact"]) == "exact"
    assert combine_bounds(["exact", "lower", "lower"]) == "lower"
    assert combine_bounds(["upper", "lower"]) == "undefined"
    assert invert_bound("upper") == "lower" and invert_bound("exact") == "exact"
    with pytest.raises(ValueError, match="bound must be one of"):
        combine_bounds(["roughly"])


def test_geometric_mean_of_af_across_datasets():
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    rows = [
        {"dataset": "a", "planner": "gp", "target": "80%", "af_vs_random": 2.0, "ceiling": 10.0, "af_bound": "exact"},
        {"dataset": "b", "planner": "gp", "target": "80%", "af_vs_random": 8.0, "ceiling": 10.0, "af_bound": "upper"},
        {"dataset": "a", "planner": "gp", "target": "first", "af_vs_random": 100.0, "ceiling": 10.0, "af_bound": "exact"},
    ]
    (agg,) = geometric_mean_af(rows, "80%")
    assert agg["gmean_af_vs_random"] == pytest.approx(4.0) and agg["datasets"] == 2
    assert agg["gmean_af_vs_random_bound"] == "upper"  # one cell is an upper bound, so is the mean
    assert agg["bounds"] == ["b/80% (upper)"]


def test_the_default_planner_is_chosen_by_the_geometric_mean_over_both_targets():
    rows = [
        {"dataset": d, "planner": "gp", "target": t, "af_vs_random": af, "ceiling": 20.0, "af_bound": "exact"}
        for d, t, af in [("a", "first", 1.0), ("a", "80%", 4.0), ("b", "first", 2.0), ("b", "80%", 8.0)]
    ]
    by_target = {r["target"]: r for r in geometric_mean_af(rows)}
    assert set(by_target) == {"first", "80%", "first+80%"}
    assert by_target["first"]["gmean_af_vs_random"] == pytest.approx(2**0.5)
    assert by_target["80%"]["gmean_af_vs_random"] == pytest.approx(32**0.5)
    assert by_target["first+80%"]["gmean_af_vs_random"] == pytest.approx((1 * 4 * 2 * 8) ** 0.25)  # over all 4 cells
    assert by_target["first+80%"]["cells"] == 4 and by_target["first+80%"]["gmean_af_vs_random_bound"] == "exact"


# -- lab time ------------------------------------------------------------------------------
def test_async_timeline_by_hand():
    # one instrument: plan 1 s, orchestrate 0.5 s, measure 10 s, one after the other
    assert async_timeline(3, 1, t_exp=10, t_plan=1, t_orch=0.5).tolist() == [11.5, 23.0, 34.5]
    # two instruments share one planner: the second waits for the first suggestion
    assert async_timeline(3, 2, t_exp=10, t_plan=1, t_orch=0.5).tolist() == [11.5, 12.5, 23.0]
    assert makespan(3, 2, t_exp=10, t_plan=1, t_orch=0.5) == 23.0
    assert makespan(None, 2, t_exp=10) == math.inf  # a censored target never completes
    # latency that grows with the data
    assert async_timeline(2, 1, t_exp=0, t_plan=lambda i: i + 1).tolist() == [1.0, 3.0]


def test_time_to_target_reads_recorded_completion_times():
    trace = [5, 1, 9, 2]
    times = [40.0, 10.0, 20.0, 30.0]  # completion order: 1, 9, 2, 5
    assert time_to_target(trace, times, members={9, 5}, k=1) == 20.0
    assert time_to_target(trace, times, members={9, 5}, k=2) == 40.0
    assert time_to_target(trace, times, members={7}) == math.inf


def test_speedup_equals_the_algorithmic_factor_without_overhead():
    rows = lab_time_table({1: 30, 4: 40}, {1: 300, 4: 300}, t_plan_method=0.0, t_exps=[60.0], instruments=[1, 4])
    by_p = {r["P"]: r for r in rows}
    assert by_p[1]["speedup"] == pytest.approx(10.0) and by_p[1]["algorithmic"] == pytest.approx(10.0)
    assert by_p[4]["algorithmic"] == pytest.approx(7.5)  # measured with 4 instruments, not 30/4
    assert by_p[4]["automation"] == pytest.approx(30 / 10)  # 30 runs in sequence vs 40 on 4 instruments


def test_planning_overhead_break_even():
    t = overhead_break_even(t_plan=3.0)
    assert t == pytest.approx(57.0)  # 3 / (3 + 57) = 5 %
    assert overhead_break_even(3.0, t_orch=1.0, include_orchestration=True) == pytest.approx(76.0)
    slow = lab_time_table({1: 30}, {1: 300}, t_plan_method=30.0, t_exps=[60.0, 8 * 3600.0], instruments=[1])
    assert slow[0]["speedup"] < slow[1]["speedup"] < 10.0  # overhead matters less as experiments lengthen
