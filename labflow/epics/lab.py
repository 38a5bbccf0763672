"""The epics transport's lab kind, ``epics``: stations whose roles are PVs on an EPICS IOC
(:mod:`labflow.epics.server`, ``labflow ioc``)::

    name: epics-materials
    kind: epics
    stations:
      - {name: station1, prefix: "LF:station1:"}
    parameters: [temperature, time, dopant_fraction]
    outputs: [{name: product_yield, direction: maximize}]
    timeout: 2 min

Units and limits come from the IOC (Channel Access metadata), so recipes written for the
simulated lab validate and run unchanged. Importing this module registers the kind; nothing
touches Channel Access until a lab is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labflow.errors import DeviceError, Problem, RecipeError
from labflow.lab import Duration, Lab, LabConfig, Station, register_lab_kind
from labflow.sim.base import Input, Output

__all__ = ["EpicsLabConfig", "EpicsStation"]


@dataclass
class EpicsStation(Station):
    """A :class:`~labflow.lab.Station` on an IOC: ``suspenders()`` gives an
    :class:`~labflow.epics.devices.IocLostSuspender`, so the station's RunEngine suspends while
    the IOC is lost and replays the run once its PVs reconnect (as a lost device server does)."""

    connection: Any = None
    resume_sleep: float = 0.0

    def suspenders(self) -> list:
        from labflow.epics.devices import IocLostSuspender

        return [IocLostSuspender(self.connection, sleep=self.resume_sleep)] if self.connection is not None else []


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EpicsStationConfig(_Model):
    name: str = Field(min_length=1)
    prefix: str = Field(pattern=r"^[A-Za-z0-9_:.\-]{1,60}$")


class EpicsOutputConfig(_Model):
    name: str
    direction: Literal["maximize", "minimize"] = "maximize"


@register_lab_kind
class EpicsLabConfig(LabConfig):
    """Stations on an EPICS IOC: one synthesis station and one instrument per ``prefix``."""

    kind: Literal["epics"] = "epics"
    stations: list[EpicsStationConfig] = Field(min_length=1, max_length=256)
    parameters: list[str] = Field(min_length=1)
    outputs: list[EpicsOutputConfig] = Field(min_length=1)
    timeout: Duration | None = None
    connection_timeout: Duration = 5.0

    def build(self, seed: int = 0, time_scale: float | None = None) -> Lab:
        """Connect to the PVs (bounded by ``connection_timeout``). ``seed``/``time_scale`` belong to the IOC."""
        from labflow.epics.devices import IocConnection, make_epics_instrument, make_epics_station

        stations: list[Station] = []
        made: list[Any] = []
        try:
            for s in self.stations:
                syn = make_epics_station(s.prefix, f"{s.name}_synthesis", self.parameters, timeout=self.timeout)
                made.append(syn)
                ins = make_epics_instrument(s.prefix, f"{s.name}_instrument", [Output(o.name, "", o.direction) for o in self.outputs],
                                            timeout=self.timeout)
                made.append(ins)
                for dev in (syn, ins):
                    try:
                        dev.wait_for_connection(timeout=self.connection_timeout)
                    except TimeoutError as exc:
                        raise DeviceError(f"{dev.name}: PVs under {s.prefix!r} did not connect within {self.connection_timeout:g} s: {exc}",
                                          hint="is the IOC running (`labflow ioc CONFIG`), and do EPICS_CA_ADDR_LIST / EPICS_CA_SERVER_PORT reach it?") from None
                # units and limits as the IOC reports them
                syn.inputs = tuple(_input(p, syn) for p in self.parameters)
                ins.outputs = tuple(Output(o.name, next(iter(getattr(ins, o.name).describe().values())).get("units", "") or "", o.direction)
                                    for o in self.outputs)
                stations.append(EpicsStation(s.name, syn, ins, connection=IocConnection(s.name, (syn, ins))))
        except BaseException:
            for dev in made:
                dev.destroy()
            raise
        return Lab(self.name, stations, config=self)

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        try:
            lab = self.build()
        except DeviceError as exc:
            raise RecipeError(f"cannot ask the IOC of lab {self.name!r} for its limits: {exc.message}", hint=exc.hint,
                              problems=[Problem("stations", exc.message)]) from None
        try:
            return lab.parameter_limits(), lab.outputs()
        finally:
            lab.close()


def _input(name: str, syn: Any) -> Input:
    d = next(iter(getattr(syn, name).describe().values()))
    lo, hi = d.get("lower_ctrl_limit"), d.get("upper_ctrl_limit")
    if lo == hi == 0:
        lo = hi = None
    return Input(name, lo, hi, d.get("units", "") or "")
