"""Old path of the EPICS IOC (the epics transport's server), kept for existing callers: it lives in
:mod:`labflow.epics.server`."""

from typing import Any

from labflow.epics import server as _new
from labflow.epics.server import *  # noqa: F403 - the re-export is the point
from labflow.epics.server import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    """Every other name of :mod:`labflow.epics.server` (the same objects)."""
    return getattr(_new, name)
