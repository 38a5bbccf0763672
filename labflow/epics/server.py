"""A simulated lab served as a real EPICS Channel Access IOC (caproto), on loopback by default.

For each station of a (simulated) lab config, with ``prefix`` e.g. ``LF:station1:``::

    {prefix}{parameter}        setpoint (float, with units and ctrl limits); put-completion
                               returns when the simulated station has applied it
    {prefix}{parameter}_RBV    readback
    {prefix}synthesize         put 1: make a sample; completes when the synthesis is done
    {prefix}measure            put 1: measure; completes when the measurement is done
    {prefix}{output}           the last reading (float, with units)
    {prefix}error              "" or the last failure's message (e.g. a simulated fault)

The IOC wraps the same simulated devices as the local lab (:mod:`labflow.sim.devices`), so an
EPICS lab gives the same readings as the simulated one for the same seed. Channel Access
addresses come from the usual environment variables (``EPICS_CA_SERVER_PORT``...);
``interfaces`` (default ``127.0.0.1``) chooses where to listen.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labflow.errors import Problem, RecipeError

__all__ = ["IOCConfig", "build_ioc_groups", "run_ioc", "run_ioc_from_config", "station_group_class"]

log = logging.getLogger(__name__)


async def _await_status(status: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, status.wait, timeout)


def station_group_class(station: Any, *, timeout: float = 3600.0) -> type[PVGroup]:
    """A caproto :class:`PVGroup` class serving one simulated ``station`` (synthesis + instrument)."""
    syn, ins = station.synthesis, station.instrument
    attrs: dict[str, Any] = {}

    def param_put(name: str):
        async def put(group, instance, value):
            sig = getattr(syn, name)
            try:
                await _await_status(sig.set(sig.validate(value)), timeout)
            except Exception as exc:
                await group.error.write(f"{syn.name}.{name}: {exc}"[:255])
                raise
            await getattr(group, f"{name}_RBV").write(sig.get())
            return value

        return put

    for i in syn.inputs:
        sig = getattr(syn, i.name)
        limits = {}
        if i.low is not None and i.high is not None:
            limits = {"lower_ctrl_limit": float(i.low), "upper_ctrl_limit": float(i.high)}
        attrs[i.name] = pvproperty(value=float(sig.get()), name=i.name, dtype=float, units=i.unit or "", precision=6,
                                   put=param_put(i.name), **limits)
        attrs[f"{i.name}_RBV"] = pvproperty(value=float(sig.get()), name=f"{i.name}_RBV", dtype=float, units=i.unit or "",
                                            precision=6, read_only=True, **limits)

    async def synthesize(group, instance, value):
        await group.error.write("")
        try:
            await _await_status(syn.trigger(), timeout)
        except Exception as exc:  # reported in the error PV; the put itself completes
            await group.error.write(f"{syn.name}: {getattr(exc, 'message', exc)}"[:255])
        return 0

    async def measure(group, instance, value):
        await group.error.write("")
        try:
            await _await_status(ins.trigger(), timeout)
        except Exception as exc:
            await group.error.write(f"{ins.name}: {getattr(exc, 'message', exc)}"[:255])
            return 0
        for o in ins.outputs:
            await getattr(group, o.name).write(float(getattr(ins, o.name).get()))
        return 0

    attrs["synthesize"] = pvproperty(value=0, name="synthesize", dtype=int, put=synthesize)
    attrs["measure"] = pvproperty(value=0, name="measure", dtype=int, put=measure)
    for o in ins.outputs:
        attrs[o.name] = pvproperty(value=float("nan"), name=o.name, dtype=float, units=o.unit or "", precision=6, read_only=True)
    attrs["error"] = pvproperty(value="", name="error", dtype=ChannelType.CHAR, max_length=256, report_as_string=True, read_only=True)
    return type(f"{station.name.capitalize()}IOC", (PVGroup,), attrs)


class IOCConfig(BaseModel):
    """An EPICS instrument PC: serve the stations of ``lab`` under ``prefix`` + station name + ``:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    prefix: str = Field("LF:", pattern=r"^[A-Za-z0-9_:.\-]{1,40}$")
    lab: str
    seed: int = Field(0, ge=0)
    time_scale: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    interfaces: list[str] = Field(default_factory=lambda: ["127.0.0.1"])


def build_ioc_groups(lab: Any, prefix: str = "LF:") -> tuple[dict[str, Any], list[PVGroup]]:
    """The PV database for every station of ``lab``, and its groups."""
    pvdb: dict[str, Any] = {}
    groups = []
    for st in lab.stations:
        group = station_group_class(st)(prefix=f"{prefix}{st.name}:")
        groups.append(group)
        pvdb.update(group.pvdb)
    return pvdb, groups


def run_ioc(lab: Any, *, prefix: str = "LF:", interfaces: list[str] | None = None, ready_file: Path | None = None) -> None:
    """Serve ``lab`` as an IOC until interrupted (blocking)."""
    from caproto.asyncio.server import run

    pvdb, _ = build_ioc_groups(lab, prefix)

    async def ready(async_lib):  # caproto's startup hook: the server is listening
        if ready_file is not None:
            tmp = Path(ready_file).with_suffix(".tmp")
            tmp.write_text(prefix)
            os.replace(tmp, ready_file)

    log.info("serving %d PVs under %s on %s", len(pvdb), prefix, interfaces or ["127.0.0.1"])
    run(pvdb, interfaces=interfaces or ["127.0.0.1"], startup_hook=ready)


def run_ioc_from_config(path: str | Path, *, ready_file: Path | None = None) -> None:
    """``labflow ioc CONFIG``: read an IOC config, build its simulated lab, serve it."""
    from labflow.lab import load_lab_config
    from labflow.remote.lab import _resolve

    p = Path(path)
    try:
        cfg = IOCConfig.model_validate(yaml.safe_load(p.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise RecipeError(f"invalid IOC config {p}", problems=[Problem(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]) from None
    lab = load_lab_config(_resolve(cfg.lab, p.resolve().parent)).build(seed=cfg.seed, time_scale=cfg.time_scale)
    try:
        run_ioc(lab, prefix=cfg.prefix, interfaces=cfg.interfaces, ready_file=ready_file)
    finally:
        lab.close()
