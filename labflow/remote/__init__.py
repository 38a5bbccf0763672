"""Instruments on other machines: a ZeroMQ device server, its client, keys and document streams.

* :mod:`labflow.remote.protocol` -- the versioned wire schema (msgpack or JSON, never pickle);
* :mod:`labflow.remote.server` -- :class:`~labflow.remote.server.DeviceServer` (``labflow serve``);
* :mod:`labflow.remote.client` -- :class:`~labflow.remote.client.RemoteClient`, heartbeats, resends;
* :mod:`labflow.remote.keys` -- CURVE key pairs and allow lists (``labflow keys``);
* :mod:`labflow.remote.streams` -- bluesky documents over ZeroMQ, and a remote HDF5 writer;
* :mod:`labflow.remote.labs` -- the ``remote`` lab kind and the instrument-PC config.

The client-side ophyd devices are in :mod:`labflow.devices.remote`. Submodules are imported
on use, so ``import labflow.remote`` stays light.
"""

from labflow.remote.protocol import PROTOCOL_VERSION, RemoteError, RemoteTimeoutError

__all__ = ["PROTOCOL_VERSION", "RemoteError", "RemoteTimeoutError"]
