"""Client-side ophyd devices that proxy devices served by a labflow device server.

A :class:`RemoteSynthesisStation` and a :class:`RemoteInstrument` are the same roles as the
local ones (:mod:`labflow.devices.base`): one settable parameter signal per parameter, with
the *server's* units and hard limits in ``describe()``; ``trigger()`` and ``set()`` return a
Status that completes when the remote operation completes; ``read()`` returns the server's
readings with their timestamps (and converts them if the server reports other units). So
bluesky plans and the campaign loop use them unchanged.

Every operation is bounded: a Status fails with :class:`RemoteOperationTimeoutError`, naming
the device, the signal and the endpoint, when its timeout passes.

Suspension and replay. When a server is lost, the station's suspender
(:class:`ServerLostSuspender`) pauses the run; bluesky then stops the signals it set, calls
``pause()`` on the devices, and after resuming *replays* the plan's messages since its last
checkpoint. A :class:`CommandLog` (one per station, reset when a run opens) recognises the
replayed commands and gives them the request ids they had the first time, so the server,
which deduplicates by id, applies each command once.
"""

from labflow.devices.remote.devices import (
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
