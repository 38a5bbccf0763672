"""Manual stations: people as a transport. Each experiment on a manual station becomes a work order
that a person reports later; the layout of the other transports: :mod:`labflow.manual.devices` (the
ophyd devices that issue work orders and wait for their results) and :mod:`labflow.manual.lab`
(the ``manual`` lab kind). The campaign's side -- ledgering orders, checking reports -- is
:mod:`labflow.campaign.work_orders`.
"""

from labflow.manual.devices import ManualInstrument, ManualStation, ManualSynthesis, WorkOrderTimeout, make_manual_station
from labflow.manual.lab import ManualLab, ManualLabConfig

__all__ = ["ManualInstrument", "ManualLab", "ManualLabConfig", "ManualStation", "ManualSynthesis", "WorkOrderTimeout", "make_manual_station"]
