"""Moved to :mod:`labflow.cli.remote`; this path stays as a re-export."""

from labflow.cli.remote import register

__all__ = ['register']
