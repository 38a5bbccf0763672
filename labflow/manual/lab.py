"""The ``manual`` lab kind: stations whose work a person does, each experiment a work order.

A lab with no robot at all declares what its people take and report::

    name: bench-lab
    kind: manual
    timeout: 3 d                   # how long a work order may stay open (pint text)
    stations:
      - {name: bench}              # one open work order at a time per station
      - {name: collaborator, timeout: 14 d}
    parameters:
      - {name: temperature, unit: degC, low: 20, high: 300}
      - {name: solvent, choices: [water, ethanol]}
    outputs:
      - {name: product_yield, unit: percent, low: 0, high: 100}

A lab whose robots do some of the work and people the rest puts its automated lab (any kind, inline)
under ``automated``; the manual stations then take its parameters and report its outputs::

    name: robot-and-bench
    kind: manual
    timeout: 2 d
    stations: [{name: bench}]
    automated: {name: sim, kind: simulated, stations: 1, landscape: {name: branin}}

Importing this module registers the kind (:func:`labflow.lab.register_lab_kind`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labflow.errors import RecipeError
from labflow.lab import Duration, Lab, LabConfig, _KEY, _SEP, parse_lab_config, register_lab_kind
from labflow.sim.base import Input, Output
from labflow.units import parse_unit

__all__ = ["ManualLab", "ManualLabConfig", "ManualOutputConfig", "ManualParameterConfig", "ManualStationConfig"]

RESERVED_OUTPUTS = ("failed", "work_order", "reported_by", "reported_at")
"""Output names a manual station cannot take: a report's ``failed`` and the provenance readings."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _unit(v: str) -> str:
    try:
        parse_unit(v)
    except Exception as exc:  # noqa: BLE001 - pint's many error types: one message
        raise ValueError(f"unknown unit {v!r}: {getattr(exc, 'message', exc)}") from None
    return v


class ManualParameterConfig(_Model):
    """A parameter the person is asked to use: a number in ``unit`` within [``low``, ``high``], or one of ``choices``."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: list[str] | None = None
    integer: bool = False

    _v_unit = field_validator("unit")(_unit)

    @model_validator(mode="after")
    def _bounds(self) -> ManualParameterConfig:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter gives a non-empty list of choices and no low/high")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"parameter {self.name!r}: give low and high (in {self.unit or 'its unit'}), or choices")
        if not self.low <= self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low:g} is above high {self.high:g}")
        return self

    def to_input(self) -> Input:
        return Input(self.name, self.low, self.high, "" if self.choices else self.unit,
                     tuple(self.choices) if self.choices else None, self.integer)


class ManualOutputConfig(_Model):
    """A quantity the person reports, in ``unit``; a report outside [``low``, ``high``] (the physically
    possible range, e.g. a yield in 0..100 %) is refused."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    unit: str = ""
    low: float | None = None
    high: float | None = None
    direction: Literal["maximize", "minimize"] = "maximize"

    _v_unit = field_validator("unit")(_unit)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_OUTPUTS:
            raise ValueError(f"{v!r} is a reserved name on a manual station (reserved: {list(RESERVED_OUTPUTS)})")
        return v

    def to_output(self) -> Output:
        return Output(self.name, self.unit, self.direction, self.low, self.high)


class ManualStationConfig(_Model):
    """One manual station (one open work order at a time); ``timeout`` overrides the lab's."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    timeout: Duration | None = None


class ManualLab(Lab):
    """A built manual lab; it also closes the automated lab it holds (its connections, its devices)."""

    def __init__(self, *args: Any, automated: Lab | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automated = automated

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.automated is not None:
                self.automated.close()
        finally:
            own = [s for s in self.stations if self.automated is None or s not in self.automated.stations]
            for s in own:
                for dev in (s.synthesis, s.instrument):
                    dev.stop()
                    dev.destroy()


@register_lab_kind
class ManualLabConfig(LabConfig):
    """Stations whose work people do (module docstring): each experiment becomes a work order that a
    person reports later (``labflow report-result``, the dashboard); one not reported within
    ``timeout`` (per station, or the lab's) is recorded as a failure. ``automated``: a lab config of
    another kind whose stations work beside the manual ones (its parameters and outputs are theirs)."""

    kind: Literal["manual"] = "manual"
    timeout: Duration = Field(7 * 86400.0, description="how long a work order may stay open, e.g. '3 d'")
    stations: list[ManualStationConfig] = Field(min_length=1, max_length=256)
    parameters: list[ManualParameterConfig] = Field(default_factory=list)
    outputs: list[ManualOutputConfig] = Field(default_factory=list)
    automated: Any = None

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("a work order's timeout must be longer than 0 s")
        return v

    @field_validator("automated", mode="before")
    @classmethod
    def _automated(cls, v: Any) -> Any:
        if v is None or isinstance(v, LabConfig):
            return v
        try:
            lab = parse_lab_config(v, source="automated")
        except RecipeError as exc:
            raise ValueError(_SEP.join(f"{p.path}{_KEY}{p.message}" for p in exc.problems) or exc.message) from None
        if isinstance(lab, ManualLabConfig):
            raise ValueError(f"kind{_KEY}the automated lab must be of another kind than 'manual'")
        return lab

    @model_validator(mode="after")
    def _complete(self) -> ManualLabConfig:
        problems = []
        names = [s.name for s in self.stations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"stations{_KEY}station names used more than once: {dupes}")
        for i, s in enumerate(self.stations):
            if s.timeout is not None and not s.timeout > 0:
                problems.append(f"stations.{i}.timeout{_KEY}a work order's timeout must be longer than 0 s")
        if self.automated is not None:
            for field_name in ("parameters", "outputs"):
                if getattr(self, field_name):
                    problems.append(f"{field_name}{_KEY}taken from the automated lab: leave it out")
        else:
            if not self.parameters:
                problems.append(f"parameters{_KEY}a manual lab declares the parameters its people take, e.g. "
                                "[{name: temperature, unit: degC, low: 20, high: 300}]")
            if not self.outputs:
                problems.append(f"outputs{_KEY}a manual lab declares what its people report, e.g. [{{name: product_yield, unit: percent}}]")
        for what, items in (("parameters", self.parameters), ("outputs", self.outputs)):
            seen = [p.name for p in items]
            twice = sorted({n for n in seen if seen.count(n) > 1})
            if twice:
                problems.append(f"{what}{_KEY}names used more than once: {twice}")
        if problems:
            raise ValueError(_SEP.join(problems))
        return self

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        if self.automated is not None:
            return self.automated.limits()
        return {p.name: p.to_input() for p in self.parameters}, {o.name: o.to_output() for o in self.outputs}

    def build(self, seed: int = 0, time_scale: float | None = None) -> Lab:
        """The manual stations (and the automated lab's, built with ``seed`` and ``time_scale``)."""
        from labflow.manual.devices import make_manual_station

        automated = self.automated.build(seed=seed, time_scale=time_scale) if self.automated is not None else None
        try:
            if automated is not None:
                taken = [s.name for s in self.stations if s.name in {a.name for a in automated.stations}]
                if taken:
                    raise RecipeError(f"lab {self.name!r}: manual station names {taken} are taken by the automated lab's stations",
                                      hint="rename the manual stations")
                inputs, outputs = automated.parameter_limits(), automated.outputs()
            else:
                inputs, outputs = self.limits()
            manual = [make_manual_station(s.name, list(inputs.values()), list(outputs.values()),
                                          timeout_s=s.timeout if s.timeout is not None else self.timeout) for s in self.stations]
        except BaseException:
            if automated is not None:
                automated.close()
            raise
        if automated is None:
            return ManualLab(self.name, manual, config=self)
        return ManualLab(self.name, [*automated.stations, *manual], landscape=automated.landscape, config=self,
                         groups={**automated.groups, "manual": [s.name for s in manual]}, automated=automated)
