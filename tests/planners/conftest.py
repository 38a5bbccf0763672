"""Fixtures shared by the planner tests: small spaces and torch pinned to one thread (fast, reproducible)."""

from __future__ import annotations

import pytest
import torch

from labflow.objectives import Objective
from labflow.space import Categorical, Integer, Real, Space


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Small GPs are faster on one thread, and two test workers then do not fight over cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def space() -> Space:
    return Space([Real("temperature", 20, 200, "degC"), Real("time", 1, 60, "min"), Real("ratio", 0.1, 10, log=True)])


@pytest.fixture
def mixed_space() -> Space:
    return Space(
        [
            Real("temperature", 20, 200, "degC"),
            Integer("layers", 1, 5),
            Categorical("solvent", ("water", "ethanol", "toluene")),
        ]
    )


@pytest.fixture
def objective() -> Objective:
    return Objective("yield_", "maximize", "percent")
