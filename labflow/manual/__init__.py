"""Manual stations: people as a transport. Each experiment on a manual station becomes a work order
that a person reports later. The layout every transport shares: :mod:`labflow.manual.devices` (the
ophyd devices that issue work orders and wait for their results) and :mod:`labflow.manual.lab` (the
``manual`` lab kind); no server -- the campaign itself is the people's desk
(:mod:`labflow.campaign.work_orders` ledgers orders and checks reports).

Submodules are imported on use (the names below resolve lazily), so importing the package does not
register the lab kind ahead of the registry's own order.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ManualInstrument": "labflow.manual.devices",
    "ManualStation": "labflow.manual.devices",
    "ManualSynthesis": "labflow.manual.devices",
    "WorkOrderTimeout": "labflow.manual.devices",
    "make_manual_station": "labflow.manual.devices",
    "ManualLab": "labflow.manual.lab",
    "ManualLabConfig": "labflow.manual.lab",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'labflow.manual' has no attribute {name!r}")
