"""Every transport shares one layout: ``devices`` (its ophyd devices), ``lab`` (its lab kind) and,
where it serves instruments from another process, ``server``. The old import paths stay as
re-exports of the same objects."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from labflow.lab import LabConfig, lab_kinds, parse_lab_config

TRANSPORTS = {
    # package: (has a server, the lab kinds its lab module registers)
    "labflow.sim": (False, ["dataset", "simulated"]),
    "labflow.remote": (True, ["remote"]),
    "labflow.epics": (True, ["epics"]),
    "labflow.manual": (False, ["manual"]),  # people: no server, the campaign is their desk
}


@pytest.mark.parametrize("package", sorted(TRANSPORTS))
def test_every_transport_has_devices_lab_and_server_modules(package):
    has_server, _ = TRANSPORTS[package]
    for name in ("devices", "lab"):
        assert importlib.util.find_spec(f"{package}.{name}") is not None, f"{package} has no {name} module"
    assert (importlib.util.find_spec(f"{package}.server") is not None) == has_server


@pytest.mark.parametrize("package", sorted(TRANSPORTS))
def test_each_transport_lab_module_defines_its_registered_kinds(package):
    _, kinds = TRANSPORTS[package]
    lab = importlib.import_module(f"{package}.lab")
    defined = {
        obj.model_fields["kind"].default: obj
        for obj in vars(lab).values()
        if isinstance(obj, type) and issubclass(obj, LabConfig) and obj is not LabConfig and obj.__module__ == lab.__name__
    }
    assert sorted(defined) == kinds
    assert set(kinds) <= set(lab_kinds())
    from labflow.lab import _KINDS

    for kind, model in defined.items():
        assert _KINDS[kind] is model


def test_builtin_kind_modules_are_the_transports_lab_modules():
    import labflow.lab as lab

    source = importlib.util.find_spec("labflow.lab").loader.get_source("labflow.lab")
    line = next(ln for ln in source.splitlines() if ln.startswith("_BUILTIN_KIND_MODULES"))
    assert all(f'"{p}.lab"' in line for p in TRANSPORTS), line
    lab.lab_kinds()  # the registry imports them
    assert parse_lab_config({"name": "x", "kind": "remote", "stations": [
        {"name": "s1", "synthesis": {"endpoint": "tcp://127.0.0.1:5701", "device": "a"},
         "instrument": {"endpoint": "tcp://127.0.0.1:5701", "device": "b"}}]}).__class__.__module__ == "labflow.remote.lab"


OLD_PATHS = [
    # old module, new module, names that must be the very same objects
    ("labflow.devices.remote", "labflow.remote.devices", ["CommandLog", "RemoteInstrument", "RemoteSynthesisStation", "ServerLostSuspender", "make_remote_device"]),
    ("labflow.devices.remote.devices", "labflow.remote.devices", ["CommandLog", "RemoteOperationTimeoutError", "make_remote_device"]),
    ("labflow.remote.labs", "labflow.remote.lab", ["RemoteLabConfig", "InstrumentPCConfig", "build_server", "load_instrument_pc_config", "RemoteRole", "_resolve"]),
    ("labflow.epics.labs", "labflow.epics.lab", ["EpicsLabConfig", "EpicsStationConfig", "_input"]),
    ("labflow.epics.ioc", "labflow.epics.server", ["IOCConfig", "build_ioc_groups", "run_ioc", "run_ioc_from_config", "station_group_class", "log"]),
    ("labflow.sim.dataset_lab", "labflow.sim.lab", ["DatasetLabConfig"]),
]


def test_the_simulated_kind_lives_in_the_sim_package_and_is_still_importable_from_labflow_lab():
    import labflow.lab
    import labflow.sim.lab

    for name in ("SimulatedLabConfig", "LandscapeConfig", "StationSetConfig"):
        assert getattr(labflow.lab, name) is getattr(labflow.sim.lab, name), name
    assert parse_lab_config({"name": "x", "kind": "simulated", "landscape": {"name": "materials"}}).__class__.__module__ == "labflow.sim.lab"
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        labflow.lab.Nothing  # noqa: B018


@pytest.mark.parametrize(("old", "new", "names"), OLD_PATHS, ids=[o for o, _, _ in OLD_PATHS])
def test_old_import_paths_give_the_same_objects(old, new, names):
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_mod, name) is getattr(new_mod, name), f"{old}.{name}"
    assert sorted(old_mod.__all__) == sorted(new_mod.__all__)


def test_labflow_itself_uses_only_the_new_paths():
    from pathlib import Path

    import labflow

    root = Path(labflow.__file__).parent
    shims = {root / "devices" / "remote" / "__init__.py", root / "devices" / "remote" / "devices.py", root / "remote" / "labs.py",
             root / "epics" / "labs.py", root / "epics" / "ioc.py", root / "sim" / "dataset_lab.py"}
    old = ("labflow.devices.remote import", "labflow.devices.remote.devices import", "labflow.remote.labs import",
           "labflow.epics.labs import", "labflow.epics.ioc import", "labflow.sim.dataset_lab import")
    offenders = [f"{p.relative_to(root)}: {o}" for p in root.rglob("*.py") if p not in shims
                 for o in old if o in p.read_text(encoding="utf-8")]
    assert not offenders
