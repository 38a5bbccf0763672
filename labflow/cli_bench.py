"""Moved to :mod:`labflow.cli.bench`; this path stays as a re-export."""

from labflow.cli.bench import bench, register

__all__ = ['bench', 'register']
