"""The simulated lab: landscapes (the physics) and simulated devices (noise, durations, faults).

Simulation is a backend, not a special case: simulated stations and instruments are
ordinary ophyd devices of the roles in :mod:`labflow.devices`. The layout every transport
shares: :mod:`labflow.sim.devices` (the devices) and :mod:`labflow.sim.lab` (the ``dataset`` lab
kind; the ``simulated`` kind is :class:`labflow.lab.SimulatedLabConfig`). The simulated
instruments run in the campaign's process, so the sim transport has no ``server``.
"""

from labflow.sim.base import Input, Landscape, Output
from labflow.sim.devices import (
    DurationModel,
    SampleFault,
    SampleHandoff,
    SimInstrument,
    SimSample,
    SimSynthesisStation,
    make_sim_instrument,
    make_sim_station,
)
from labflow.sim.landscapes import (
    LANDSCAPES,
    Branin,
    Hartmann6,
    MaterialsLandscape,
    MultiFidelityMaterialsLandscape,
    PerovskiteLandscape,
    ThinFilmLandscape,
    make_landscape,
)

__all__ = [
    "LANDSCAPES",
    "Branin",
    "DurationModel",
    "Hartmann6",
    "Input",
    "Landscape",
    "MaterialsLandscape",
    "MultiFidelityMaterialsLandscape",
    "Output",
    "PerovskiteLandscape",
    "SampleFault",
    "SampleHandoff",
    "SimInstrument",
    "SimSample",
    "SimSynthesisStation",
    "ThinFilmLandscape",
    "make_landscape",
    "make_sim_instrument",
    "make_sim_station",
]
