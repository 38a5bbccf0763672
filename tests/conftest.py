"""Shared fixtures: a private Prefect home with telemetry off, a real ephemeral Prefect server,
and paths to the shipped recipes/configs and the shared datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Prefect reads its settings at import time: set them before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="labflow-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
# Prefect gives its ephemeral server 20 s to start; a loaded 2-core CI machine can need more.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session")
def prefect_server():
    """A real, temporary Prefect server (SQLite) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The Liang et al. datasets: ``$LABFLOW_DATA`` when set, else the copies shipped in ``labflow/datasets``."""
    from labflow.sim.datasets import default_data_dir

    d = default_data_dir()
    if not d.is_dir():
        raise FileNotFoundError(f"LABFLOW_DATA={os.environ.get('LABFLOW_DATA')!r} is not a folder; unset it to use the shipped datasets")
    return d


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The reference copy in ``../shared/data/liang2021`` (with the README's checksum table); skips when absent."""
    d = ROOT.parent / "shared" / "data" / "liang2021"
    if not (d / "README.md").is_file():
        pytest.skip(f"the reference copy {d.name}/ is absent from ../shared (only the shipped copy is checked)")
    return d


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (kill matrices, real worker fleets, soak runs) are skipped unless asked
    for: ``pytest -m slow`` or ``LABFLOW_SLOW=1``. The default suite stays within CI's time."""
    if os.environ.get("LABFLOW_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or LABFLOW_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
