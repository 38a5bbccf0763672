"""Reliability tests: the long kill matrices are marked ``slow`` and skipped unless asked for
(``pytest -m slow tests/reliability`` or ``LABFLOW_SLOW=1``); the default run keeps every named
crash point once and a few seeded random kills."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LABFLOW_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or LABFLOW_SLOW=1")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)
