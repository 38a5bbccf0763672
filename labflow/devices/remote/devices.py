"""Old path of the remote transport's devices, kept for existing callers: see :mod:`labflow.remote.devices`."""

from labflow.remote.devices import *  # noqa: F403 - the re-export is the point
from labflow.remote.devices import __all__  # noqa: F401
