"""Pareto fronts and hypervolumes: moved to the core module :mod:`labflow.pareto` (the store and
the reports use them too); this path stays as a re-export."""

from labflow.pareto import hypervolume, infer_reference_point, pareto_mask

__all__ = ["hypervolume", "infer_reference_point", "pareto_mask"]
