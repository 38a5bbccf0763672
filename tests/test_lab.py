"""Lab configs: YAML in, every problem listed, stations built with distinct names and seeds."""

from pathlib import Path

import pytest
from bluesky import RunEngine

from labflow.errors import Problem, RecipeError
from labflow.lab import Lab, LabConfig, SimulatedLabConfig, lab_kinds, load_lab_config, parse_lab_config
from labflow.plans import extract_outcomes, run_experiment

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("sim_*.yaml"))


def test_the_shipped_configs_are_there():
    assert {p.name for p in CONFIGS} >= {"sim_materials.yaml", "sim_branin.yaml", "sim_hartmann6.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load_and_build(path):
    config = load_lab_config(path)
    assert isinstance(config, LabConfig) and config.kind == "simulated"
    with config.build(seed=0) as lab:
        assert isinstance(lab, Lab) and len(lab.stations) == config.stations
        names = [n for s in lab.stations for n in (s.synthesis.name, s.instrument.name)]
        assert len(set(names)) == len(names)
        assert len({s.seed for s in lab.stations}) == len(lab.stations)
        assert set(lab.parameter_limits()) == set(lab.stations[0].synthesis.parameter_names)
        assert set(lab.outputs()) == set(lab.stations[0].instrument.output_names)
        assert lab.choices() is None


def test_the_materials_lab_speaks_device_units():
    config = load_lab_config(Path(__file__).parent.parent / "configs" / "sim_materials.yaml")
    assert config.durations.synthesize == 1200.0 and config.durations.measure == 300.0  # seconds
    assert config.landscape.noise_std == {"product_yield": 0.5}
    lab = config.build(seed=1)
    limits = lab.parameter_limits()
    assert (limits["temperature"].unit, limits["temperature"].low, limits["temperature"].high) == ("K", 323.15, 673.15)
    assert limits["time"].unit == "s" and limits["dopant_fraction"].unit == ""
    assert lab.outputs()["product_yield"].unit == "percent"
    station = lab.stations[0]
    assert (station.name, station.synthesis.name, station.instrument.name) == ("station1", "station1_synthesis", "station1_instrument")
    assert station.reading_key("product_yield") == "station1_instrument_product_yield"
    # 5 s set + 30 min synthesis (from the `time` parameter) + 5 min measurement
    params = {"temperature": "150 degC", "time": "30 min", "dopant_fraction": 0.3}
    assert station.expected_duration(params) == pytest.approx(5 + 1800 + 300)
    lab.close()
    lab.close()  # closing twice is harmless


BAD = """\
name: broken
kind: simulated
stations: 0
landscape: {name: foo, noise_std: {y: 1}}
durations: {set: 5 m, synthesize: 20 min, measure: 5 minn}
time_scale: -1
failure_rate: 1.5
colour: red
"""


def test_a_config_with_several_bad_fields_lists_every_problem(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BAD)
    with pytest.raises(RecipeError) as info:
        load_lab_config(path)
    err = info.value
    assert err.source == str(path) and str(path) in str(err)
    paths = {p.path for p in err.problems}
    assert paths == {"stations", "landscape.name", "durations.set", "durations.measure", "time_scale", "failure_rate", "colour"}
    by_path = {p.path: p.message for p in err.problems}
    assert by_path["landscape.name"] == (
        "unknown landscape 'foo'; expected one of ['branin', 'hartmann6', 'materials', 'materials_mf', 'perovskite', 'thin_film']"
    )
    assert by_path["durations.measure"].startswith("unknown unit 'minn'")
    assert "[length]" in by_path["durations.set"] and "[time]" in by_path["durations.set"]
    assert by_path["colour"] == "unknown field"
    assert isinstance(err, ValueError)


def test_noise_for_outputs_is_checked_against_the_landscape():
    with pytest.raises(RecipeError) as info:
        parse_lab_config(
            {"name": "x", "kind": "simulated", "landscape": {"name": "materials", "noise_std": {"product_yield": "1 K", "purity": 1}}}
        )
    paths = {p.path for p in info.value.problems}
    assert paths == {"landscape.noise_std.product_yield", "landscape.noise_std.purity"}


def test_unknown_or_missing_kind():
    with pytest.raises(RecipeError) as info:
        parse_lab_config({"name": "x", "kind": "nonesuch"})
    assert info.value.problems == [Problem("kind", f"unknown lab kind 'nonesuch'; expected one of {lab_kinds()}")]
    with pytest.raises(RecipeError) as info:
        parse_lab_config({"name": "x"})
    assert info.value.problems[0].path == "kind"


def test_not_yaml_or_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_lab_config(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(RecipeError, match="expected a mapping"):
        load_lab_config(path)
    with pytest.raises(RecipeError, match="cannot read"):
        load_lab_config(tmp_path / "missing.yaml")


def test_configs_are_frozen_and_strict():
    config = parse_lab_config({"name": "x", "kind": "simulated", "landscape": {"name": "branin"}})
    assert isinstance(config, SimulatedLabConfig) and config.stations == 1 and config.time_scale == 0
    with pytest.raises(Exception):
        config.stations = 3


def test_the_same_seed_builds_the_same_lab():
    config = parse_lab_config(
        {"name": "x", "kind": "simulated", "stations": 2, "landscape": {"name": "branin", "noise_std": {"y": 1.0}}}
    )
    RE = RunEngine({}, context_managers=[])
    events = []
    RE.subscribe(lambda name, doc: events.append(doc), "event")

    def readings(seed):
        events.clear()
        with config.build(seed=seed) as lab:
            for station in lab.stations:
                RE(run_experiment(station, {"x1": 1.0, "x2": 2.0}, {"seed": seed}))
            return [extract_outcomes(s, e, ["y"])["y"] for s, e in zip(lab.stations, events)]

    first, again, other = readings(5), readings(5), readings(6)
    assert first == again and first != other
    assert first[0] != first[1]  # stations draw from distinct seeds


def test_time_scale_can_be_overridden_at_build():
    config = parse_lab_config(
        {"name": "x", "kind": "simulated", "landscape": {"name": "branin"}, "durations": {"measure": "1 h"}, "time_scale": 1}
    )
    with config.build(seed=0, time_scale=0) as lab:
        station = lab.stations[0]
        station.synthesis.trigger()
        assert station.instrument.trigger().done
