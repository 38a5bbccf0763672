"""The client side of a device server: one connection per endpoint, shared by its devices.

Theory of operation
-------------------
A :class:`RemoteClient` owns one DEALER socket, driven by one I/O thread. Callers (device
proxies, on any thread) hand requests to the thread through an inproc pipe; every request
is kept in a pending table by id until its reply arrives, so that it can be resent.

Heartbeats: the thread sends ``ping`` every ``heartbeat`` seconds. When nothing has come
back for ``missed`` heartbeats the server is declared lost: :attr:`RemoteClient.lost` (an
ophyd Signal) goes to 1 -- a bluesky suspender watches it -- and the socket is recreated
(the Lazy Pirate pattern), so no stale frame waits in a dead pipe. When a reply arrives again,
``lost`` goes back to 0 and every pending request is resent *with its id*: the server runs a
command it never saw, joins one still running, and answers one it already finished from its
idempotency cache. A command is therefore never applied twice.

Every call is bounded: :meth:`RemoteClient.call` raises :class:`RemoteTimeoutError` naming
the endpoint, the device and the method when no reply comes within its timeout.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import zmq
from ophyd import Signal

from labflow.remote.keys import ClientSecurity
from labflow.remote.protocol import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    RemoteError,
    RemoteTimeoutError,
    decode,
    encode,
    make_request,
    new_id,
)

__all__ = ["RemoteClient", "Reply"]

log = logging.getLogger("labflow.remote.client")

Reply = Mapping[str, Any]
Callback = Callable[[Reply | None, BaseException | None], None]


class _Pending:
    __slots__ = ("frame", "callbacks", "sent", "method", "device")

    def __init__(self, frame: bytes, method: str, device: str | None) -> None:
        self.frame = frame
        self.callbacks: list[Callback] = []
        self.sent = False
        self.method, self.device = method, device


class RemoteClient:
    """A connection to one device server.

    Parameters
    ----------
    endpoint:
        The server's address, e.g. ``tcp://127.0.0.1:5701``.
    heartbeat:
        Seconds between pings.
    missed:
        Heartbeats without any reply before the server is declared lost.
    request_timeout:
        Default seconds a quick call (hello, read, describe) may take.
    security:
        Client keys (CURVE); ``None`` for plain text.
    max_message_bytes:
        Largest reply accepted.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        heartbeat: float = 1.0,
        missed: int = 3,
        request_timeout: float = 5.0,
        security: ClientSecurity | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        name: str | None = None,
    ) -> None:
        if heartbeat <= 0 or missed < 1 or request_timeout <= 0:
            raise ValueError("heartbeat and request_timeout must be > 0 s, missed >= 1")
        self.endpoint = endpoint
        self.heartbeat = float(heartbeat)
        self.missed = int(missed)
        self.request_timeout = float(request_timeout)
        self.security = security
        self.max_message_bytes = int(max_message_bytes)
        self.name = name or endpoint
        self.lost = Signal(name=f"{_safe(self.name)}_lost", value=0)
        """1 while the server is lost (missed heartbeats), else 0: what the suspender watches."""
        self.server_id: str | None = None
        self.hello: dict[str, Any] | None = None
        self.events: collections.deque = collections.deque(maxlen=1000)
        """``(monotonic time, "lost" | "recovered" | "restarted")`` transitions, for tests and logs."""
        self.sockets_made = 0
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._ctx = zmq.Context()
        addr = f"inproc://labflow-client-{id(self)}-{new_id()}"
        self._pipe_in = self._ctx.socket(zmq.PULL)
        self._pipe_in.bind(addr)
        self._pipe_out = self._ctx.socket(zmq.PUSH)
        self._pipe_out.connect(addr)
        self._closing = threading.Event()
        self._thread_error: BaseException | None = None
        self._last_rx = time.monotonic()
        self._sock: zmq.Socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"labflow-client-{self.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"RemoteClient({self.endpoint!r}, lost={bool(self.lost.get())})"

    # -- public API --------------------------------------------------------------------
    def submit(
        self,
        method: str,
        device: str | None = None,
        args: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Send a request without waiting; ``callback(reply, error)`` runs on the I/O thread.

        ``id`` makes a resend: a request with the id of one still pending joins it.
        Returns the request id.
        """
        if self._closing.is_set():
            raise RemoteError(f"{self.endpoint}: the connection is closed", code="Internal", endpoint=self.endpoint, device=device)
        rid = id or new_id()
        frame = encode(make_request(method, device, args, id=rid))
        with self._lock:
            p = self._pending.get(rid)
            if p is None:
                p = self._pending[rid] = _Pending(frame, method, device)
            if callback is not None:
                p.callbacks.append(callback)
            try:
                self._pipe_out.send(rid.encode(), zmq.NOBLOCK)
            except zmq.ZMQError:  # the I/O thread is not draining its pipe: the heartbeat tick resends
                pass
        if not self._thread.is_alive():
            self.cancel(rid)
            raise RemoteError(f"{self.endpoint}: the connection's I/O thread has stopped ({self._thread_error!r})",
                              code="Internal", endpoint=self.endpoint, device=device)
        return rid

    def cancel(self, rid: str) -> None:
        """Forget a pending request (its callbacks will not run)."""
        with self._lock:
            self._pending.pop(rid, None)

    def call(
        self,
        method: str,
        device: str | None = None,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        id: str | None = None,
    ) -> Any:
        """Send a request and wait for its result. Raises :class:`RemoteError` (the server's
        structured error) or :class:`RemoteTimeoutError` naming endpoint, device and method."""
        timeout = self.request_timeout if timeout is None else float(timeout)
        done = threading.Event()
        box: list = []

        def cb(reply: Reply | None, error: BaseException | None) -> None:
            box.append((reply, error))
            done.set()

        rid = self.submit(method, device, args, id=id, callback=cb)
        if not done.wait(timeout):
            self.cancel(rid)
            where = f"{self.endpoint} {device}" if device else self.endpoint
            raise RemoteTimeoutError(
                f"{where}: {method} got no reply within {timeout:g} s" + (" (server lost)" if self.lost.get() else ""),
                hint="is the device server running (`labflow serve CONFIG`), reachable, and holding the right keys?",
                code="Timeout",
                endpoint=self.endpoint,
                device=device,
            )
        reply, error = box[0]
        if error is not None:
            raise error
        return self.result(reply, method=method, device=device)

    def result(self, reply: Reply | None, *, method: str = "", device: str | None = None) -> Any:
        """The result of a reply, or its error raised as :class:`RemoteError`."""
        if reply is None:
            raise RemoteError(f"{self.endpoint} {device or ''}: {method}: no reply", endpoint=self.endpoint, device=device)
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        where = f"{self.endpoint} {device}" if device else self.endpoint
        raise RemoteError(
            f"{where}: {method}: {err.get('code', 'Internal')}: {err.get('message', '')}",
            err.get("hint"),
            code=str(err.get("code", "Internal")),
            endpoint=self.endpoint,
            device=device,
        )

    def connect(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the server who it is (``hello``): its devices, heartbeat, protocol. Bounded by ``timeout``."""
        self.hello = self.call("hello", timeout=timeout)
        self.server_id = self.hello.get("server_id")
        return self.hello

    def wait_until(self, lost: bool, timeout: float) -> bool:
        """Wait until the server is (or is no longer) lost; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if bool(self.lost.get()) == lost:
                return True
            time.sleep(0.01)
        return bool(self.lost.get()) == lost

    @property
    def n_pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Stop the I/O thread and close the socket. Safe to call twice."""
        if self._closing.is_set():
            return
        self._closing.set()
        with self._lock:
            try:
                self._pipe_out.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:  # the thread polls _closing at least every heartbeat/4 anyway
                pass
        self._thread.join(10)
        with self._lock:
            self._pipe_out.close(0)
        if self._thread.is_alive():  # never block on term() with a socket still open
            log.warning("%s: the I/O thread did not stop within 10 s; leaving its context", self.endpoint)
            return
        self._ctx.term()

    # -- the I/O thread -------------------------------------------------------------------
    def _new_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.setsockopt(zmq.IMMEDIATE, 1)  # send fails (and is retried) rather than queue on a dead pipe
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(self.heartbeat * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.missed * self.heartbeat * 1000))
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(100, int(self.heartbeat * 1000)))
        if self.security is not None:
            self.security.apply(sock)
        sock.connect(self.endpoint)
        self.sockets_made += 1
        return sock

    def _send(self, frame: bytes) -> bool:
        assert self._sock is not None
        try:
            self._sock.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _flush_unsent(self, everything: bool = False) -> None:
        with self._lock:
            items = list(self._pending.values())
        for p in items:
            if everything or not p.sent:
                p.sent = self._send(p.frame)

    def _run(self) -> None:
        try:
            self._run_loop()
        except BaseException as exc:  # pragma: no cover - reported to callers by submit()
            self._thread_error = exc
            log.exception("%s: the I/O thread stopped", self.endpoint)

    def _run_loop(self) -> None:
        self._sock = self._new_socket()
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._pipe_in, zmq.POLLIN)
        next_ping = time.monotonic()
        ping_frame = lambda: encode(make_request("ping"))  # noqa: E731
        lost = False
        self._last_rx = time.monotonic()
        try:
            while not self._closing.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_ping:
                        self._send(ping_frame())
                        next_ping = now + self.heartbeat
                        self._flush_unsent()
                    with self._lock:
                        unsent = any(not p.sent for p in self._pending.values())
                    if unsent and not lost:  # not connected yet (IMMEDIATE): retry soon
                        self._flush_unsent()
                        timeout_ms = 5
                    else:
                        timeout_ms = max(1, int(1000 * min(next_ping - now, self.heartbeat / 4)))
                    events = dict(poller.poll(timeout_ms))
                    if self._pipe_in in events:
                        ids = []
                        while True:
                            try:
                                ids.append(self._pipe_in.recv(zmq.NOBLOCK))
                            except zmq.Again:
                                break
                        for raw in ids:
                            if not raw:
                                continue
                            with self._lock:
                                p = self._pending.get(raw.decode())
                            if p is not None:
                                p.sent = self._send(p.frame)
                    if self._sock in events:
                        while True:
                            try:
                                frame = self._sock.recv(zmq.NOBLOCK)
                            except zmq.Again:
                                break
                            self._last_rx = time.monotonic()
                            if lost:
                                lost = False
                                self._recovered()
                            self._on_reply(frame)
                    silent = time.monotonic() - self._last_rx
                    if not lost and silent > self.missed * self.heartbeat:
                        lost = True
                        self.events.append((time.monotonic(), "lost"))
                        log.warning("%s: no reply for %.2f s (%d heartbeats): server lost", self.endpoint, silent, self.missed)
                        self.lost.put(1)
                        # Lazy Pirate: a fresh socket, so nothing stale waits in a dead pipe
                        poller.unregister(self._sock)
                        self._sock.close(0)
                        self._sock = self._new_socket()
                        poller.register(self._sock, zmq.POLLIN)
                        with self._lock:
                            for p in self._pending.values():
                                p.sent = False
                except Exception as exc:  # noqa: BLE001 - one bad turn must not end the connection
                    log.exception("%s: error in the I/O loop: %s", self.endpoint, exc)
                    time.sleep(0.01)
        finally:
            if self._sock is not None:
                self._sock.close(0)
            self._pipe_in.close(0)

    def _recovered(self) -> None:
        self.events.append((time.monotonic(), "recovered"))
        log.warning("%s: server is back; resending %d pending request(s)", self.endpoint, self.n_pending)
        self._flush_unsent(everything=True)
        self.lost.put(0)

    def _on_reply(self, frame: bytes) -> None:
        try:
            reply, _ = decode(frame, max_bytes=self.max_message_bytes)
        except ProtocolError as exc:
            log.warning("%s: undecodable reply dropped: %s", self.endpoint, exc)
            return
        if not isinstance(reply, dict):
            return
        rid = reply.get("id")
        result = reply.get("result")
        if isinstance(result, dict) and "server_id" in result and reply.get("ok"):
            sid = result["server_id"]
            if self.server_id is not None and sid != self.server_id:
                self.events.append((time.monotonic(), "restarted"))
                self._flush_unsent(everything=True)  # a new server process: it lost what was in flight
            self.server_id = sid
        if not isinstance(rid, str):
            return
        with self._lock:
            p = self._pending.pop(rid, None)
        if p is None:
            return
        for cb in p.callbacks:
            try:
                cb(reply, None)
            except Exception:  # a callback's bug must not kill the connection
                log.exception("%s: reply callback failed", self.endpoint)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "server"
