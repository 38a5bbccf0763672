"""Old path of the ``dataset`` lab kind, kept for existing callers: it lives in :mod:`labflow.sim.lab`."""

from labflow.sim.lab import DatasetLabConfig

__all__ = ["DatasetLabConfig"]
