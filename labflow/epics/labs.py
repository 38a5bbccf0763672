"""Old path of the ``epics`` lab kind, kept for existing callers: it lives in :mod:`labflow.epics.lab`."""

from typing import Any

from labflow.epics import lab as _new
from labflow.epics.lab import *  # noqa: F403 - the re-export is the point
from labflow.epics.lab import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    """Every other name of :mod:`labflow.epics.lab` (the same objects)."""
    return getattr(_new, name)
