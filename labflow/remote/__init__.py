"""Instruments on other machines: a ZeroMQ device server, its client, keys and document streams.

* :mod:`labflow.remote.protocol` -- the versioned wire schema (msgpack or JSON, never pickle);
* :mod:`labflow.remote.server` -- :class:`~labflow.remote.server.DeviceServer` (``labflow serve``);
* :mod:`labflow.remote.client` -- :class:`~labflow.remote.client.RemoteClient`, heartbeats, resends;
* :mod:`labflow.remote.keys` -- CURVE key pairs and allow lists (``labflow keys``);
* :mod:`labflow.remote.streams` -- bluesky documents over ZeroMQ, and a remote HDF5 writer;
* :mod:`labflow.remote.devices` -- the client-side ophyd devices (proxies of served devices);
* :mod:`labflow.remote.lab` -- the ``remote`` lab kind and the instrument-PC config.

The layout every transport shares: ``devices``, ``lab`` and (when it has one) ``server``.
The old paths :mod:`labflow.devices.remote` and :mod:`labflow.remote.labs` re-export these.
Submodules are imported on use, so ``import labflow.remote`` stays light.
"""

from labflow.remote.protocol import PROTOCOL_VERSION, RemoteError, RemoteTimeoutError

__all__ = ["PROTOCOL_VERSION", "RemoteError", "RemoteTimeoutError"]
