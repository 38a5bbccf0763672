"""Moved to :mod:`labflow.cli.run`; this path stays as a re-export."""

from labflow.cli.run import EXIT_INTERRUPTED, register

__all__ = ['EXIT_INTERRUPTED', 'register']
