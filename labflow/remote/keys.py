"""CURVE key pairs and the allow list of client keys (ZeroMQ's ironhouse pattern).

A device server with security on holds its own secret key and a folder of *allowed client
public keys*; every connection is encrypted with CURVE and checked by a ZAP authenticator,
so a client whose key is not in the folder gets no reply and no handler runs. A client holds
its own secret key and the server's public key.

Files are pyzmq's certificate files: ``NAME.key`` (public, safe to copy) and
``NAME.key_secret`` (secret, mode 0600). :func:`generate_keypair` writes both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from labflow.errors import LabflowError

__all__ = ["ClientSecurity", "KeyError_", "ServerSecurity", "generate_keypair", "load_public_key", "load_secret_key"]


class KeyError_(LabflowError, ValueError):
    """A CURVE key file is missing or unreadable."""


def generate_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, 0600) into ``directory``.

    Refuses to overwrite existing files. Returns ``(public_path, secret_path)``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not name or "/" in name or name.startswith("."):
        raise KeyError_(f"invalid key name {name!r}", hint="use a plain name such as 'furnace-pc' or 'orchestrator'")
    public, secret = d / f"{name}.key", d / f"{name}.key_secret"
    for p in (public, secret):
        if p.exists():
            raise KeyError_(f"{p} already exists", hint="choose another name, or delete the old pair on purpose")
    pub, sec = zmq.auth.create_certificates(str(d), name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def load_public_key(path: str | Path) -> bytes:
    p = Path(path)
    try:
        public, _ = zmq.auth.load_certificate(str(p))
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read a CURVE public key from {p}: {exc}", hint="generate one with `labflow keys`") from None
    return public


def load_secret_key(path: str | Path) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``.key_secret`` file."""
    p = Path(path)
    try:
        public, secret = zmq.auth.load_certificate(str(p))
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read a CURVE secret key from {p}: {exc}", hint="generate one with `labflow keys`") from None
    if not secret:
        raise KeyError_(f"{p} holds no secret key", hint="give the NAME.key_secret file, not NAME.key")
    return public, secret


@dataclass(frozen=True)
class ServerSecurity:
    """Server side: its secret key file and the folder of allowed client public keys."""

    secret_key: Path
    allowed_clients: Path

    def apply(self, socket: zmq.Socket) -> None:
        public, secret = load_secret_key(self.secret_key)
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        socket.curve_server = True

    def start_authenticator(self, context: zmq.Context):
        """A running ZAP authenticator allowing exactly the keys in ``allowed_clients``."""
        from zmq.auth.thread import ThreadAuthenticator

        if not Path(self.allowed_clients).is_dir():
            raise KeyError_(f"allowed-clients folder {self.allowed_clients} does not exist",
                            hint="copy each orchestrator's NAME.key (public) into it")
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.allowed_clients))
        return auth


@dataclass(frozen=True)
class ClientSecurity:
    """Client side: its own secret key file and the server's public key file."""

    secret_key: Path
    server_key: Path

    def apply(self, socket: zmq.Socket) -> None:
        public, secret = load_secret_key(self.secret_key)
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        socket.curve_serverkey = load_public_key(self.server_key)
