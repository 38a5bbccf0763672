"""Benchmarks: measure how much faster a planner finds good materials than the references.

:mod:`labflow.bench.metrics` holds the definitions of ``docs/benchmarks.md`` as pure
functions (first-passage counts, the exact random reference, acceleration and enhancement
factors, lab-time speed-ups, tables); :mod:`labflow.bench.plots` draws the curves.
"""

from labflow.bench.metrics import (
    AccelerationFactor,
    Target,
    acceleration_factor,
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
    random_reference,
    standard_targets,
    summarize,
    summarize_traces,
)

__all__ = [
    "AccelerationFactor",
    "Target",
    "acceleration_factor",
    "ceiling",
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
    "standard_targets",
    "summarize",
    "summarize_traces",
]
