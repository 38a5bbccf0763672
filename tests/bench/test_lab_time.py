"""The headline lab-time table: labflow on P instruments around the clock vs a conventional lab in working hours."""

from __future__ import annotations

import math

import pytest

from labflow.bench.metrics import (
    MedianCount,
    WorkingHours,
    calendar_makespan,
    conventional_lab_table,
    format_duration,
    markdown_table,
)

H = 3600.0
OFFICE = WorkingHours(hours_per_day=8, days_per_week=5)  # the default: 8 h a day, Monday to Friday


# -- the working-hours calendar, by hand ------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "t_exp_h", "done_h", "why"),
    [
        (8, 1, 8, "eight 1-h experiments fill day 0"),
        (9, 1, 25, "the 9th waits for Tuesday's opening (24 h) and ends 1 h later"),
        (40, 1, 4 * 24 + 8, "a full week: Friday closes at 104 h"),
        (41, 1, 7 * 24 + 1, "the 41st waits over the weekend until the next Monday (168 h)"),
        (3, 3, 24 + 3, "two 3-h runs fit in a day (6 h); the 3rd would end at 9 h > 8 h, so it waits"),
        (5, 8, 4 * 24 + 8, "one 8-h run a day, Monday to Friday"),
        (6, 8, 7 * 24 + 8, "the 6th runs the next Monday"),
        (1, 10, 10, "longer than a working day: starts at the opening, runs on past closing"),
        (2, 10, 24 + 10, "...and the next one waits for the following opening"),
        (0, 1, 0, "nothing to do"),
    ],
)
def test_the_working_hours_calendar_by_hand(n, t_exp_h, done_h, why):
    assert calendar_makespan(n, t_exp_h * H, OFFICE) == pytest.approx(done_h * H), why


def test_around_the_clock_is_back_to_back_and_24_hour_days_join_up():
    assert calendar_makespan(100, H, WorkingHours(24, 7)) == 100 * H
    assert calendar_makespan(120, H, WorkingHours(24, 5)) == 120 * H  # Monday 0 h to Friday 24 h without a break
    assert calendar_makespan(121, H, WorkingHours(24, 5)) == (7 * 24 + 1) * H  # then the weekend
    assert calendar_makespan(3, 60.0, OFFICE) == 180.0  # short experiments inside one morning


@pytest.mark.parametrize(
    ("hours", "days", "message"),
    [(0, 5, "hours_per_day must be in \\(0, 24\\], got 0"), (25, 5, "got 25"), (8, 0, "days_per_week must be a whole number from 1 to 7, got 0"),
     (8, 5.5, "got 5.5")],
)
def test_impossible_working_hours_are_refused_by_name(hours, days, message):
    with pytest.raises(ValueError, match=message):
        WorkingHours(hours, days)


def test_a_calendar_needs_a_whole_number_of_experiments_and_a_duration():
    with pytest.raises(ValueError, match="n must be a whole number"):
        calendar_makespan(2.5, H)
    with pytest.raises(ValueError, match="t_exp must be a positive duration"):
        calendar_makespan(3, 0.0)


# -- the factors ---------------------------------------------------------------------------------
def test_the_factors_by_hand_and_their_product_is_the_total():
    # labflow: 20 experiments on one instrument, 24 on four (the asynchronous penalty); the
    # conventional design needs 200, i.e. 25 working days of eight 1-h experiments = 5 weeks.
    rows = conventional_lab_table({1: MedianCount(20), 4: MedianCount(24)}, MedianCount(200), t_plan=0.0,
                                  t_exps=[H], instruments=[4])
    (row,) = rows
    assert row["T_conventional_s"] == (4 * 7 * 24 + 4 * 24 + 8) * H  # Friday of the 5th week, 776 h
    assert row["T_method_s"] == 6 * H  # 24 experiments, 4 at a time
    assert row["algorithmic"] == pytest.approx(200 / 20)
    assert row["parallel"] == pytest.approx(20 / 6)  # 20 h of work on one instrument in 6 h on four
    assert row["parallel_ideal"] == pytest.approx(4.0) and row["async_penalty"] == pytest.approx(20 / 24)
    assert row["hours"] == pytest.approx(776 / 200)
    assert row["overhead"] == 1.0
    assert row["speedup"] == pytest.approx(776 / 6)
    assert row["algorithmic"] * row["parallel"] * row["hours"] * row["overhead"] == pytest.approx(row["speedup"], rel=1e-12)


@pytest.mark.parametrize("t_plan", [0.0, 0.4, 30.0])
def test_the_factors_multiply_exactly_to_the_total_everywhere(t_plan):
    # medians of an even number of seeds end in .5: the product must still be exact
    rows = conventional_lab_table({1: MedianCount(33), 4: MedianCount(41.5), 16: MedianCount(70)}, MedianCount(187.5),
                                  t_plan=t_plan, t_orch=2.0)
    assert len(rows) == 3 * 4  # P in {1, 4, 16} x t_exp in {1 min, 10 min, 1 h, 8 h}
    for r in rows:
        product = r["algorithmic"] * r["parallel"] * r["hours"] * r["overhead"]
        assert product == pytest.approx(r["speedup"], rel=1e-12), (r["P"], r["t_exp"])
        assert r["parallel"] == pytest.approx(r["parallel_ideal"] * r["async_penalty"], rel=1e-12)
        assert r["overhead"] <= 1.0 and r["hours"] >= 1.0
    one_minute = [r for r in rows if r["t_exp_s"] == 60.0]
    if t_plan == 30.0:  # planning for 30 s per one-minute experiment: overhead is felt
        assert all(r["overhead"] < 0.7 for r in one_minute)


def test_censored_medians_make_every_figure_they_reach_a_bound():
    # the conventional design never reached the target within its 250 experiments: at least 251
    rows = conventional_lab_table({1: MedianCount(30), 4: MedianCount(36)}, MedianCount(251, exact=False), t_plan=0.0,
                                  t_exps=[H], instruments=[1, 4])
    for r in rows:
        assert (r["speedup_bound"], r["algorithmic_bound"], r["T_conventional_bound"]) == ("lower", "lower", "lower")
        assert r["hours_bound"] == "undefined"  # the calendar's ratio need not grow with n
        assert r["parallel_bound"] == "exact" and r["overhead_bound"] == "exact"
    # labflow did not reach it with four instruments: its makespan is a lower bound, the speed-up an upper one
    (r4,) = conventional_lab_table({1: MedianCount(30), 4: MedianCount(251, exact=False)}, MedianCount(200), t_plan=0.0,
                                   t_exps=[H], instruments=[4])
    assert (r4["speedup_bound"], r4["parallel_bound"], r4["async_penalty_bound"]) == ("upper", "upper", "upper")
    assert r4["algorithmic_bound"] == "exact" and r4["T_method_bound"] == "lower"
    table = markdown_table([r4], ["P", "n_method", "T_method", "speedup", "algorithmic", "parallel", "hours", "overhead"])
    # 251 runs 4 at a time: 63 h; 200 conventional runs: 776 h, so speed-up 776/63, parallel 30/63, hours 776/200
    assert table.splitlines()[2] == "| 4 | >=251 | >=2.62 d | <=12.32 | 6.67 | <=0.48 | 3.88 | ?1 |"


def test_the_table_needs_the_one_instrument_runs():
    with pytest.raises(ValueError, match="needs the one-instrument median \\(P = 1\\)"):
        conventional_lab_table({4: MedianCount(30)}, MedianCount(100), t_plan=0.0)
    with pytest.raises(ValueError, match="finite number of experiments >= 1, got inf"):
        MedianCount(math.inf)


def test_durations_read_like_a_lab_notebook():
    assert [format_duration(x) for x in (60, 600, 3600, 8 * 3600, 1.5 * 86400, 30, math.inf)] == [
        "1 min", "10 min", "1 h", "8 h", "1.5 d", "30 s", "inf"]
