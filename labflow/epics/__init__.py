"""EPICS: a simulated instrument served as a real Channel Access IOC (caproto), and labflow
devices that drive it through ophyd's EPICS signals -- the path real beamline and lab
hardware takes. The layout every transport shares:

* :mod:`labflow.epics.devices` -- the ophyd devices (EPICS signals of a station and an instrument);
* :mod:`labflow.epics.lab` -- the ``epics`` lab kind;
* :mod:`labflow.epics.server` -- the IOC that serves a simulated lab's instruments (``labflow ioc``).

The old paths :mod:`labflow.epics.labs` and :mod:`labflow.epics.ioc` re-export these."""
