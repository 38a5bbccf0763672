"""Old path of the remote transport's devices, kept for existing callers: they live in
:mod:`labflow.remote.devices` (each transport package holds its ``devices``, ``lab`` and ``server``)."""

from labflow.remote.devices import (
    CommandLog,
    RemoteInstrument,
    RemoteOperationStatus,
    RemoteOperationTimeoutError,
    RemoteParameterSignal,
    RemoteSynthesisStation,
    ServerLostSuspender,
    make_remote_device,
)

__all__ = [
    "CommandLog",
    "RemoteInstrument",
    "RemoteOperationStatus",
    "RemoteOperationTimeoutError",
    "RemoteParameterSignal",
    "RemoteSynthesisStation",
    "ServerLostSuspender",
    "make_remote_device",
]
