"""The ``remote`` lab kind (stations on device servers) and the instrument-PC config (what a
device server serves).

A remote lab places each role of each station on a device server::

    name: remote-materials
    kind: remote
    stations:
      - name: station1
        synthesis:  {endpoint: tcp://127.0.0.1:5701, device: station1_synthesis}
        instrument: {endpoint: tcp://127.0.0.1:5701, device: station1_instrument}
    heartbeat: 1 s            # detection of a lost server: missed_heartbeats x heartbeat
    timeout: 2 min            # each set/synthesize/measure

Its parameters, units and limits come from the servers (``hello``), so a recipe written for
the simulated lab validates and runs unchanged against it. Importing this module registers
the kind with :func:`labflow.lab.register_lab_kind`; nothing here imports ZeroMQ until a lab
is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labflow.errors import DeviceError, Problem, RecipeError
from labflow.lab import Duration, Lab, LabConfig, Station, _problems, register_lab_kind
from labflow.sim.base import Input, Output

__all__ = [
    "InstrumentPCConfig",
    "RemoteLab",
    "RemoteLabConfig",
    "RemoteStation",
    "build_server",
    "load_instrument_pc_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _endpoint(v: str) -> str:
    if not isinstance(v, str) or not v.startswith(("tcp://", "ipc://", "inproc://")):
        raise ValueError(f"expected a ZeroMQ endpoint such as 'tcp://127.0.0.1:5701', got {v!r}")
    return v


class RemoteRole(_Model):
    """One role on a device server: its ``endpoint``, the ``device`` name there, and (with
    security) the server's public key file."""

    endpoint: str
    device: str = Field(min_length=1)
    name: str | None = None
    """Name of the proxy here (and of its reading keys); default: the server's device name."""
    server_key: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        return _endpoint(v)


class RemoteStationConfig(_Model):
    name: str = Field(min_length=1)
    synthesis: RemoteRole
    instrument: RemoteRole


@dataclass
class RemoteStation(Station):
    """A :class:`~labflow.lab.Station` whose devices are on device servers.

    ``suspenders()`` gives one :class:`~labflow.remote.devices.ServerLostSuspender` per
    server the station uses: the station's RunEngine suspends while a server is lost.
    """

    clients: list = field(default_factory=list)
    log: Any = None
    resume_sleep: float = 0.0

    def suspenders(self) -> list:
        from labflow.remote.devices import ServerLostSuspender

        return [ServerLostSuspender(c, self.log, sleep=self.resume_sleep) for c in self.clients]


class RemoteLab(Lab):
    """A :class:`~labflow.lab.Lab` that also closes its server connections."""

    def __init__(self, *args: Any, clients: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients = dict(clients)

    def close(self) -> None:
        if self._closed:
            return
        try:
            super().close()
        finally:
            for c in self.clients.values():
                c.close()


@register_lab_kind
class RemoteLabConfig(LabConfig):
    """Stations whose roles are served by labflow device servers (``labflow serve``).

    ``heartbeat`` x ``missed_heartbeats``: how soon a dead server is noticed (the station's
    runs suspend, and resume when it is back). ``timeout``: seconds each operation may take
    (``None``: :data:`labflow.devices.DEFAULT_TIMEOUT`). ``request_timeout``: seconds a quick
    call (hello, read) may take. ``client_key``: this orchestrator's ``.key_secret`` file
    when the servers have security on (each role then names its ``server_key``).
    """

    kind: Literal["remote"] = "remote"
    stations: list[RemoteStationConfig] = Field(min_length=1, max_length=256)
    heartbeat: Duration = 1.0
    missed_heartbeats: int = Field(3, ge=1, le=100)
    request_timeout: Duration = 5.0
    connect_timeout: Duration = 10.0
    timeout: Duration | None = None
    resume_sleep: Duration = 0.0
    client_key: str | None = None

    @field_validator("stations")
    @classmethod
    def _unique(cls, v: list[RemoteStationConfig]) -> list[RemoteStationConfig]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"station names used more than once: {dupes}")
        return v

    def _clients(self) -> dict[str, Any]:
        from labflow.remote.client import RemoteClient
        from labflow.remote.keys import ClientSecurity

        clients: dict[str, Any] = {}
        for s in self.stations:
            for role in (s.synthesis, s.instrument):
                if role.endpoint in clients:
                    continue
                security = None
                if role.server_key is not None:
                    if self.client_key is None:
                        raise RecipeError("invalid remote lab", problems=[Problem("client_key", "a role names a server_key, so the lab needs this orchestrator's client_key")])
                    security = ClientSecurity(Path(self.client_key), Path(role.server_key))
                clients[role.endpoint] = RemoteClient(
                    role.endpoint, heartbeat=self.heartbeat, missed=self.missed_heartbeats,
                    request_timeout=self.request_timeout, security=security,
                )
        return clients

    def build(self, seed: int = 0, time_scale: float | None = None) -> Lab:
        """Connect to every server (``hello``, bounded by ``connect_timeout``) and build the proxies.

        ``seed`` and ``time_scale`` belong to the servers (their configs); they are ignored here.
        """
        from labflow.remote.devices import CommandLog, make_remote_device

        clients = self._clients()
        try:
            hellos = {}
            for ep, c in clients.items():
                hellos[ep] = c.connect(timeout=self.connect_timeout)
            stations = []
            for s in self.stations:
                log = CommandLog()
                devs = []
                for role in (s.synthesis, s.instrument):
                    client = clients[role.endpoint]
                    desc = hellos[role.endpoint].get("devices", {}).get(role.device)
                    if desc is None:
                        raise DeviceError(f"{role.endpoint}: serves no device {role.device!r}; it serves {sorted(hellos[role.endpoint].get('devices', {}))}",
                                          hint="fix the device name in the lab config, or serve it in the instrument-PC config")
                    devs.append(make_remote_device(client, role.device, name=role.name, description=desc, log=log,
                                                   timeout=self.timeout, request_timeout=self.request_timeout))
                used = list(dict.fromkeys([clients[s.synthesis.endpoint], clients[s.instrument.endpoint]]))
                stations.append(RemoteStation(s.name, devs[0], devs[1], clients=used, log=log, resume_sleep=self.resume_sleep))
            return RemoteLab(self.name, stations, config=self, clients=clients)
        except BaseException:
            for c in clients.values():
                c.close()
            raise

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        """Parameters and outputs as the servers describe them; a :class:`RecipeError` when a
        server does not answer."""
        try:
            lab = self.build()
        except DeviceError as exc:
            raise RecipeError(
                f"cannot ask the device servers of lab {self.name!r} for their limits: {exc.message}",
                hint="start each instrument PC's server first: `labflow serve configs/instrument_pc_materials.yaml`",
                problems=[Problem("stations", exc.message)],
            ) from None
        try:
            return lab.parameter_limits(), lab.outputs()
        finally:
            lab.close()


# -- the server side -----------------------------------------------------------------------
class ServeLab(_Model):
    """Serve the devices of a (simulated) lab config: all of them, or those of ``stations``."""

    lab: str
    seed: int = Field(0, ge=0)
    time_scale: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    stations: list[str] | None = None


class Driver(_Model):
    """A real driver: ``factory`` (``"package.module:callable"``) called with ``name`` and ``options``,
    returning an ophyd device."""

    name: str = Field(min_length=1)
    factory: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)


class ServerSecurityConfig(_Model):
    secret_key: str
    allowed_clients: str


class InstrumentPCConfig(_Model):
    """What one instrument PC's device server serves, and how (``labflow serve CONFIG``)."""

    name: str = Field(min_length=1)
    endpoint: str = "tcp://127.0.0.1:5701"
    heartbeat: Duration = 1.0
    max_message_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    serve: ServeLab | None = None
    drivers: list[Driver] = Field(default_factory=list)
    journal: str | None = None
    restore_setpoints: bool = True
    cache_size: int = Field(4096, ge=16, le=1_000_000)
    security: ServerSecurityConfig | None = None
    allow_remote: bool = False

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        return _endpoint(v)


def load_instrument_pc_config(path: str | Path) -> tuple[InstrumentPCConfig, Path]:
    """Read and validate an instrument-PC config; returns it and its folder (relative paths
    in it are resolved from there). Raises :class:`RecipeError` listing every problem."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"cannot read instrument-PC config {p}: {exc.strerror or exc}", source=str(p)) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"instrument-PC config {p} is not valid YAML", problems=[Problem("<root>", str(exc))], source=str(p)) from None
    try:
        return InstrumentPCConfig.model_validate(data), p.resolve().parent
    except ValidationError as exc:
        problems = _problems(exc)
        raise RecipeError(f"invalid instrument-PC config {p}: {len(problems)} problem(s)", problems=problems, source=str(p)) from None


def _resolve(ref: str, base: Path) -> Path:
    """The lab config ``serve.lab`` names: found as a recipe's lab is (:func:`labflow.lab.find_lab_config`,
    from the instrument-PC config's folder), or a path relative to the working directory."""
    from labflow.lab import LabNotFoundError, find_lab_config

    try:
        return find_lab_config(ref, base)
    except LabNotFoundError:
        if Path(ref).is_file():
            return Path(ref)
        raise


def build_server(config: InstrumentPCConfig, base: Path | None = None, *, endpoint: str | None = None, journal: str | Path | None = None) -> Any:
    """A :class:`~labflow.remote.server.DeviceServer` for ``config`` (not started).

    ``endpoint`` and ``journal`` override the config's (tests pick free ports and temp files).
    """
    from labflow.lab import load_lab_config
    from labflow.remote.keys import ServerSecurity
    from labflow.remote.server import DeviceServer

    base = base or Path.cwd()
    devices: dict[str, Any] = {}
    owners: list[Any] = []
    if config.serve is not None:
        lab_cfg = load_lab_config(_resolve(config.serve.lab, base))
        lab = lab_cfg.build(seed=config.serve.seed, time_scale=config.serve.time_scale)
        owners.append(lab)
        wanted = set(config.serve.stations) if config.serve.stations is not None else None
        for st in lab.stations:
            if wanted is None or st.name in wanted:
                devices[st.synthesis.name] = st.synthesis
                devices[st.instrument.name] = st.instrument
        if wanted is not None and not wanted <= {s.name for s in lab.stations}:
            raise RecipeError("invalid instrument-PC config", problems=[Problem("serve.stations", f"unknown stations {sorted(wanted - {s.name for s in lab.stations})}")])
    for d in config.drivers:
        module, attr = d.factory.split(":")
        factory = getattr(importlib.import_module(module), attr)
        devices[d.name] = factory(name=d.name, **d.options)
    security = None
    if config.security is not None:
        security = ServerSecurity(base / config.security.secret_key, base / config.security.allowed_clients)
    j = journal if journal is not None else (base / config.journal if config.journal else None)
    server = DeviceServer(
        devices,
        endpoint=endpoint or config.endpoint,
        name=config.name,
        heartbeat=config.heartbeat,
        max_message_bytes=config.max_message_bytes,
        security=security,
        journal=j,
        cache_size=config.cache_size,
        restore_setpoints=config.restore_setpoints,
        allow_remote=config.allow_remote,
    )
    server.owners = owners  # keep the labs alive with the server
    return server
