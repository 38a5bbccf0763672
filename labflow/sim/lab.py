"""The sim transport's lab kinds: ``simulated`` (stations answering from an analytic landscape)
and ``dataset`` (a real dataset as a simulated lab).

``kind: simulated`` (:class:`SimulatedLabConfig`; see :mod:`labflow.lab` for an example) builds
identical stations, or *station sets* with their own landscape options, from a
:class:`LandscapeConfig`.

``kind: dataset`` (:class:`DatasetLabConfig`):

``mode: pool`` answers each proposed point with the measured value of the nearest
not-yet-measured pool point (each measured once; planners may score the pool directly
through ``Lab.choices()``); ``mode: emulator`` answers any point from a model fitted to the
data (refused below a cross-validated R^2 of 0.7 unless ``force: true``).

    name: crossed-barrel-pool
    kind: dataset
    dataset: crossed_barrel        # a shipped description, or a path to your own YAML
    mode: pool
    stations: 4
    durations: {set: 10 s, synthesize: 1 h, measure: 10 min}

Both models stay importable from :mod:`labflow.lab` (resolved there on first use).
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from labflow.errors import RecipeError
from labflow.lab import _KEY, _SEP, Duration, DurationsConfig, Lab, LabConfig, Station, _Model, _quantity, register_lab_kind
from labflow.sim.base import Input, Output
from labflow.sim.devices import SampleHandoff, make_sim_instrument, make_sim_station
from labflow.sim.landscapes import LANDSCAPES, make_landscape

__all__ = ["DatasetLabConfig", "LandscapeConfig", "SimulatedLabConfig", "StationSetConfig"]


class LandscapeConfig(_Model):
    """Which landscape answers, its options, and the instruments' noise per output."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    noise_std: dict[str, Any] = Field(default_factory=dict)
    """Output name -> standard deviation: a number in the output's unit, or pint text."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in LANDSCAPES:
            close = difflib.get_close_matches(v, list(LANDSCAPES), n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown landscape {v!r}; expected one of {sorted(LANDSCAPES)}{tip}")
        return v

    @field_validator("options")
    @classmethod
    def _options_fit(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("name")
        if name is not None and v:
            try:
                make_landscape(name, **v)
            except RecipeError as exc:
                raise ValueError(exc.message) from None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"landscape {name!r} rejects these options: {exc}") from None
        return v

    @field_validator("noise_std")
    @classmethod
    def _noise(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, float]:
        name = info.data.get("name")
        if name is None:  # the name is wrong: reported there
            return v
        outputs = {o.name: o for o in LANDSCAPES[name].outputs}
        problems, out = [], {}
        for key, raw in v.items():
            if key not in outputs:
                problems.append(f"{key}{_KEY}unknown output {key!r} of landscape {name!r}; expected one of {sorted(outputs)}")
                continue
            try:
                std = _quantity(raw, outputs[key].unit or "dimensionless", f"noise level in {outputs[key].unit or 'output units'}")
            except ValueError as exc:
                problems.append(f"{key}{_KEY}{exc}")
                continue
            if not (math.isfinite(std) and std >= 0):
                problems.append(f"{key}{_KEY}a noise standard deviation must be >= 0, got {raw!r}")
                continue
            out[key] = std
        if problems:  # one problem per key; _problems() splits them onto their own paths
            raise ValueError(_SEP.join(problems))
        return out


class StationSetConfig(_Model):
    """A group of identical simulated stations, named ``<name>1``, ``<name>2``, ...

    ``options`` are merged over the lab's ``landscape.options`` (e.g. ``{fidelity: simulation}``);
    ``noise_std``, ``durations`` and ``failure_rate``, when given, replace the lab's for this set.
    """

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    stations: int = Field(1, ge=1, le=256)
    options: dict[str, Any] = Field(default_factory=dict)
    noise_std: dict[str, Any] | None = None
    durations: DurationsConfig | None = None
    failure_rate: float | None = Field(None, ge=0.0, le=1.0)

    def station_names(self) -> list[str]:
        return [f"{self.name}{i}" for i in range(1, self.stations + 1)]


@register_lab_kind
class SimulatedLabConfig(LabConfig):
    """A simulated lab: ``stations`` identical stations answering from a landscape.

    ``time_scale``: wall-clock seconds per simulated second (0 = instant); ``failure_rate``:
    probability that a measurement fails; ``timeout``: seconds each device operation may
    take (``None``: its scaled duration + ``labflow.devices.DEFAULT_TIMEOUT``).
    """

    kind: Literal["simulated"] = "simulated"
    stations: int = Field(1, ge=1, le=256)
    landscape: LandscapeConfig
    durations: DurationsConfig = Field(default_factory=DurationsConfig)
    time_scale: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    timeout: Duration | None = None
    station_sets: list[StationSetConfig] = Field(default_factory=list)
    """Groups of stations with their own landscape options (e.g. a simulation and an experiment);
    ``stations`` is then their total (leave it out)."""

    @model_validator(mode="after")
    def _sets(self) -> SimulatedLabConfig:
        if not self.station_sets:
            return self
        problems = []
        total = sum(st.stations for st in self.station_sets)
        if "stations" in self.model_fields_set and self.stations != total:
            problems.append(f"stations{_KEY}with station_sets, stations is their total ({total}): leave it out")
        names = [s.name for s in self.station_sets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"station_sets{_KEY}set names used more than once: {dupes}")
        outputs = {o.name: o for o in LANDSCAPES[self.landscape.name].outputs}
        for i, st in enumerate(self.station_sets):
            try:
                make_landscape(self.landscape.name, **{**self.landscape.options, **st.options})
            except (RecipeError, TypeError, ValueError) as exc:
                problems.append(f"station_sets.{i}.options{_KEY}{getattr(exc, 'message', exc)}")
            for key, raw in (st.noise_std or {}).items():
                if key not in outputs:
                    problems.append(f"station_sets.{i}.noise_std.{key}{_KEY}unknown output {key!r}; expected one of {sorted(outputs)}")
                    continue
                try:
                    std = _quantity(raw, outputs[key].unit or "dimensionless", "noise level")
                except ValueError as exc:
                    problems.append(f"station_sets.{i}.noise_std.{key}{_KEY}{exc}")
                    continue
                if not (math.isfinite(std) and std >= 0):
                    problems.append(f"station_sets.{i}.noise_std.{key}{_KEY}a noise standard deviation must be >= 0, got {raw!r}")
        if problems:
            raise ValueError(_SEP.join(problems))
        object.__setattr__(self, "stations", total)  # the number of stations, as without sets
        return self

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        landscape = make_landscape(self.landscape.name, **self.landscape.options)
        return {i.name: i for i in landscape.inputs}, {o.name: o for o in landscape.outputs}

    def station_groups(self) -> dict[str, list[str]]:
        """Set name -> its stations' names (``{"station": [...]}`` without station sets)."""
        if not self.station_sets:
            return {"station": [f"station{i}" for i in range(1, self.stations + 1)]}
        return {s.name: s.station_names() for s in self.station_sets}

    def _noise(self, station_set: StationSetConfig | None) -> dict[str, float]:
        if station_set is None or station_set.noise_std is None:
            return dict(self.landscape.noise_std)
        outputs = {o.name: o for o in LANDSCAPES[self.landscape.name].outputs}
        return {k: _quantity(v, outputs[k].unit or "dimensionless", "noise level") for k, v in station_set.noise_std.items()}

    def build(self, seed: int, time_scale: float | None = None) -> Lab:
        """Build the stations: ``station{i}_synthesis`` and ``station{i}_instrument``.

        Each instrument gets its own seed, derived from ``seed`` (``numpy.random.SeedSequence``).
        ``time_scale`` overrides the config's (e.g. 0 in tests).
        """
        scale = self.time_scale if time_scale is None else float(time_scale)
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        landscape = make_landscape(self.landscape.name, **self.landscape.options)
        # (set, name) for every station; without station sets: station1..N as always
        plan: list[tuple[StationSetConfig | None, str]] = (
            [(st, name) for st in self.station_sets for name in st.station_names()]
            if self.station_sets
            else [(None, f"station{i}") for i in range(1, self.stations + 1)]
        )
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(len(plan))]
        stations = []
        for (st, name), station_seed in zip(plan, seeds):
            handoff = SampleHandoff()
            own = landscape if st is None or not st.options else make_landscape(self.landscape.name, **{**self.landscape.options, **st.options})
            durations = (st.durations if st is not None and st.durations is not None else self.durations).model()
            common = dict(durations=durations, time_scale=scale, timeout=self.timeout)
            synthesis = make_sim_station(f"{name}_synthesis", own, handoff, **common)
            instrument = make_sim_instrument(
                f"{name}_instrument",
                own,
                handoff,
                noise_std=self._noise(st),
                seed=station_seed,
                failure_rate=self.failure_rate if st is None or st.failure_rate is None else st.failure_rate,
                **common,
            )
            stations.append(Station(name, synthesis, instrument, seed=station_seed))
        groups = {st.name: st.station_names() for st in self.station_sets}
        return Lab(self.name, stations, landscape=landscape, config=self, groups=groups)



@register_lab_kind
class DatasetLabConfig(LabConfig):
    """A lab whose instruments answer from a real dataset, as a pool or through an emulator."""

    kind: Literal["dataset"] = "dataset"
    dataset: str = Field(description="a shipped dataset name (e.g. crossed_barrel) or a description YAML path")
    mode: Literal["pool", "emulator"] = "pool"
    data_dir: str | None = Field(None, description="folder with the CSV (default: $LABFLOW_DATA, else the copies shipped in labflow/datasets)")
    stations: int = Field(1, ge=1, le=256)
    durations: DurationsConfig = Field(default_factory=DurationsConfig)
    time_scale: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    noise: bool = Field(True, description="emulator mode: add the estimated measurement noise")
    force: bool = Field(False, description="emulator mode: use the emulator even below R^2 0.7")
    timeout: Duration | None = None

    def landscape(self, seed: int = 0):  # noqa: ANN201 - PoolLandscape | EmulatorLandscape
        from labflow.sim.datasets import load_dataset

        ds = load_dataset(self.dataset, data_dir=Path(self.data_dir) if self.data_dir else None)
        if self.mode == "pool":
            from labflow.sim.pool import PoolLandscape

            return PoolLandscape(ds)
        from labflow.sim.emulator import EmulatorLandscape

        return EmulatorLandscape(ds, seed=seed, force=self.force)

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        from labflow.sim.datasets import load_dataset
        from labflow.sim.pool import PoolLandscape

        ds = load_dataset(self.dataset, data_dir=Path(self.data_dir) if self.data_dir else None)
        land = PoolLandscape(ds)  # inputs and outputs only; cheap, fits no model
        return {i.name: i for i in land.inputs}, {o.name: o for o in land.outputs}

    def build(self, seed: int, time_scale: float | None = None) -> Lab:
        scale = self.time_scale if time_scale is None else float(time_scale)
        landscape = self.landscape(seed)
        noise = {}
        if self.mode == "emulator" and self.noise:
            noise = {landscape.outputs[0].name: float(landscape.noise_std)}
        durations = self.durations.model()
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(self.stations)]
        stations = []
        for i, station_seed in enumerate(seeds, start=1):
            name = f"station{i}"
            handoff = SampleHandoff()
            common = dict(durations=durations, time_scale=scale, timeout=self.timeout)
            synthesis = make_sim_station(f"{name}_synthesis", landscape, handoff, **common)
            instrument = make_sim_instrument(
                f"{name}_instrument", landscape, handoff, noise_std=noise, seed=station_seed,
                failure_rate=self.failure_rate, **common,
            )
            stations.append(Station(name, synthesis, instrument, seed=station_seed))
        return Lab(self.name, stations, landscape=landscape, config=self)
