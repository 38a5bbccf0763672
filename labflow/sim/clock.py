"""Moved: the virtual-time executor is :mod:`labflow.executors.virtual`; this path stays as a re-export."""

from labflow.executors.virtual import VirtualTimeExecutor

__all__ = ["VirtualTimeExecutor"]
