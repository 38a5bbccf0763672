"""Old path of the sim transport's lab kinds, kept for existing callers: they live in :mod:`labflow.sim.lab`."""

from labflow.sim.lab import DatasetLabConfig, LandscapeConfig, SimulatedLabConfig, StationSetConfig

__all__ = ["DatasetLabConfig", "LandscapeConfig", "SimulatedLabConfig", "StationSetConfig"]
