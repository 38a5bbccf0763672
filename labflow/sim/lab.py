"""The sim transport's lab kind: a real dataset as a simulated lab (``kind: dataset`` in a lab config).

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

The ``simulated`` kind (stations answering from an analytic landscape) stays in
:mod:`labflow.lab` beside the base classes: :class:`labflow.lab.SimulatedLabConfig` is public
there and is the registry's default kind, so moving it here would make ``labflow.lab`` and
this module import each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from labflow.lab import Duration, DurationsConfig, Lab, LabConfig, Station, register_lab_kind
from labflow.sim.base import Input, Output
from labflow.sim.devices import SampleHandoff, make_sim_instrument, make_sim_station

__all__ = ["DatasetLabConfig"]


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
