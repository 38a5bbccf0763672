"""Moved to :mod:`labflow.cli.report`; this path stays as a re-export."""

from labflow.cli.report import register

__all__ = ['register']
