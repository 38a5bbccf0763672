"""Old path of the ``remote`` lab kind and the instrument-PC config, kept for existing callers:
they live in :mod:`labflow.remote.lab`."""

from typing import Any

from labflow.remote import lab as _lab
from labflow.remote.lab import *  # noqa: F403 - the re-export is the point
from labflow.remote.lab import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    """Every other name of :mod:`labflow.remote.lab` (the same objects), e.g. ``RemoteRole``."""
    return getattr(_lab, name)
