"""EPICS: a simulated instrument served as a real Channel Access IOC (caproto), and labflow
devices that drive it through ophyd's EPICS signals -- the path real beamline and lab
hardware takes. See :mod:`labflow.epics.ioc`, :mod:`labflow.epics.devices`, :mod:`labflow.epics.labs`."""
