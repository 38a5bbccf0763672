"""bluesky documents over ZeroMQ, safely serialized (msgpack, never pickle).

bluesky's own 0MQ publisher pickles documents by default, and unpickling is code execution
for whoever can reach the socket. Here a :class:`DocumentPublisher` is just another
RunEngine subscriber that sends each ``(name, doc)`` as two frames -- a topic and a msgpack
map ``{"v", "seq", "name", "doc"}`` -- on an XPUB socket. Consumers in other processes (a live
monitor, a remote HDF5 writer, a databroker/Tiled ingester) subscribe with a
:class:`DocumentSubscriber`; ``seq`` numbers let them notice a gap (PUB/SUB drops messages
for a consumer that falls more than ``hwm`` messages behind).

:func:`record_stream` is the remote HDF5 writer: it feeds every document to a
:class:`labflow.store.provenance.ProvenanceWriter`, so the ``/documents`` and ``/runs`` of
the file it writes are identical to the orchestrator's local file.

Start consumers first, then call :meth:`DocumentPublisher.wait_for_subscribers` before the
campaign (ZeroMQ's "slow joiner": a subscriber misses what was sent before it connected).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import zmq

from labflow.remote.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError, decode, to_wire

__all__ = ["END", "DocumentPublisher", "DocumentSubscriber", "record_stream"]

TOPIC = b"labflow.documents"
END = "labflow.end"
"""The ``name`` of the last message a publisher sends when it closes."""


class DocumentPublisher:
    """A bluesky document callback that publishes documents on ``endpoint`` (bound, XPUB).

    Thread-safe: the stations' RunEngines may call it from several threads.
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:0", *, hwm: int = 100_000, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.linger = 2000
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._sock.bind(endpoint)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.max_message_bytes = int(max_message_bytes)
        self._lock = threading.Lock()
        self._seq = 0
        self.subscribers = 0
        self.sent = 0
        self._closed = False

    def _poll_subscriptions(self, timeout_ms: int = 0) -> None:
        while self._sock.poll(timeout_ms, zmq.POLLIN):
            msg = self._sock.recv()
            if msg[:1] == b"\x01":
                self.subscribers += 1
            elif msg[:1] == b"\x00":
                self.subscribers -= 1
            timeout_ms = 0

    def wait_for_subscribers(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``n`` consumers have subscribed; False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.subscribers < n and time.monotonic() < deadline:
                self._poll_subscriptions(50)
            return self.subscribers >= n

    def publish(self, name: str, doc: Mapping[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            self._poll_subscriptions(0)
            payload = msgpack.packb({"v": PROTOCOL_VERSION, "seq": self._seq, "name": name, "doc": to_wire(doc)}, use_bin_type=True)
            if len(payload) > self.max_message_bytes:
                raise ValueError(f"{name} document of {len(payload)} bytes exceeds the stream's cap of {self.max_message_bytes} bytes")
            self._sock.send_multipart([TOPIC, payload])
            self._seq += 1
            self.sent += 1

    __call__ = publish

    def close(self) -> None:
        """Send the end marker and close. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            payload = msgpack.packb({"v": PROTOCOL_VERSION, "seq": self._seq, "name": END, "doc": {}}, use_bin_type=True)
            self._sock.send_multipart([TOPIC, payload])
            self._closed = True
            self._sock.close()
            self._ctx.term()

    def __enter__(self) -> DocumentPublisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DocumentSubscriber:
    """Receives ``(name, doc)`` from a :class:`DocumentPublisher` (connects, SUB)."""

    def __init__(self, endpoint: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.linger = 0
        self._sock.setsockopt(zmq.MAXMSGSIZE, int(max_message_bytes))
        self._sock.setsockopt(zmq.RCVHWM, 100_000)
        self._sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
        self._sock.connect(endpoint)
        self.max_message_bytes = int(max_message_bytes)
        self.endpoint = endpoint
        self.expected_seq: int | None = None
        self.gaps = 0
        self.rejected = 0

    def receive(self, timeout: float) -> tuple[str, dict] | None:
        """The next ``(name, doc)``, or None after ``timeout`` seconds. Malformed messages are
        counted in :attr:`rejected` and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            frames = self._sock.recv_multipart()
            try:
                if len(frames) != 2 or frames[0] != TOPIC:
                    raise ProtocolError("SchemaError", "expected [topic, payload]")
                msg, _ = decode(frames[1], max_bytes=self.max_message_bytes)
                if not (isinstance(msg, dict) and msg.get("v") == PROTOCOL_VERSION and isinstance(msg.get("name"), str)
                        and isinstance(msg.get("doc"), dict) and isinstance(msg.get("seq"), int)):
                    raise ProtocolError("SchemaError", "not a document message")
            except ProtocolError:
                self.rejected += 1
                continue
            if self.expected_seq is not None and msg["seq"] != self.expected_seq:
                self.gaps += 1
            self.expected_seq = msg["seq"] + 1
            return msg["name"], msg["doc"]

    def close(self) -> None:
        self._sock.close(0)
        self._ctx.term()


def record_stream(
    endpoint: str,
    out: str | Path,
    *,
    campaign: str,
    space: Any,
    objectives: Sequence[Any],
    stop: threading.Event | None = None,
    idle: float | None = None,
    on_ready: Callable[[], None] | None = None,
    **writer_kwargs: Any,
) -> int:
    """Write the documents published at ``endpoint`` into a new provenance file ``out``.

    Runs until the publisher's end marker, ``stop`` is set, or ``idle`` seconds pass without a
    document. Returns how many documents were written.
    """
    from labflow.store.provenance import ProvenanceWriter

    sub = DocumentSubscriber(endpoint)
    n = 0
    last = time.monotonic()
    try:
        with ProvenanceWriter(out, campaign=campaign, space=space, objectives=objectives, **writer_kwargs) as writer:
            if on_ready is not None:
                on_ready()
            while not (stop is not None and stop.is_set()):
                got = sub.receive(0.1)
                if got is None:
                    if idle is not None and time.monotonic() - last > idle:
                        break
                    continue
                last = time.monotonic()
                name, doc = got
                if name == END:
                    break
                writer(name, doc)
                n += 1
    finally:
        sub.close()
    return n
