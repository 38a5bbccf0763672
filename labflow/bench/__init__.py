"""Benchmarks: measure how much faster a planner finds good materials than the references.

:mod:`labflow.bench.metrics` holds the definitions of ``docs/reference/benchmark-definitions.md`` as pure
functions (first-passage counts, the exact random reference, acceleration and enhancement
factors, the lab-time table against a conventional lab in working hours, tables); :mod:`labflow.bench.plots` draws the curves.
"""

from labflow.bench.metrics import (
    AccelerationFactor,
    MedianCount,
    Target,
    WorkingHours,
    acceleration_factor,
    calendar_makespan,
    ceiling,
    conventional_lab_table,
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
    random_reference,
    random_reference_median,
    standard_targets,
    summarize,
    summarize_traces,
)

__all__ = [
    "AccelerationFactor",
    "MedianCount",
    "Target",
    "WorkingHours",
    "acceleration_factor",
    "calendar_makespan",
    "ceiling",
    "conventional_lab_table",
    "enhancement_factor",
    "enhancement_summary",
    "first_passage",
    "first_passage_counts",
    "fraction_found",
    "geometric_mean",
    "geometric_mean_af",
    "good_set",
    "lab_time_table",
    "makespan",
    "markdown_table",
    "random_reference",
    "random_reference_median",
    "standard_targets",
    "summarize",
    "summarize_traces",
]
