"""Test helpers that labflow's own tests use and users' tests may use too.

``check_planner(factory)`` is the conformance suite for planners: run it on your own planner
to prove it fits the campaign loop.
"""

from labflow.testing.crash import CRASH_POINTS, crash_env, crashpoint
from labflow.testing.planners import PLANNER_CHECKS, check_planner, planner_checks

__all__ = ["check_planner", "planner_checks", "PLANNER_CHECKS", "crashpoint", "crash_env", "CRASH_POINTS",
           "inject_fault", "full_disk", "FaultyFile", "GloveboxOxygen", "oxygen_interlock", "verify_campaign"]


def __getattr__(name: str):  # fault injection imports devices: loaded on first use
    if name in ("inject_fault", "full_disk", "FaultyFile", "GloveboxOxygen", "oxygen_interlock", "FaultInjector"):
        from labflow.testing import faults

        return getattr(faults, name)
    if name == "verify_campaign":
        from labflow.testing.crash import verify_campaign

        return verify_campaign
    raise AttributeError(name)

from labflow.testing.devices import DEVICE_CHECKS, check_device, device_checks  # noqa: E402

__all__ += ["check_device", "device_checks", "DEVICE_CHECKS"]
