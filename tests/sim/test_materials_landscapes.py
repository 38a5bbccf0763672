"""The landscapes behind the materials recipes: each makes its recipe's features matter."""

import numpy as np
import pytest

from labflow.lab import parse_lab_config
from labflow.sim import MultiFidelityMaterialsLandscape, PerovskiteLandscape, SampleFault, ThinFilmLandscape
from labflow.sim.landscapes import MaterialsLandscape


def point(cs, ma, fa, solvent="DMSO", T=403.15):
    return {"cs_fraction": cs, "ma_fraction": ma, "fa_fraction": fa, "solvent": solvent, "anneal_temperature": T}


def test_perovskite_optimum_and_the_solvent_moves_the_best_composition():
    p = PerovskiteLandscape()
    best = p.optimum_inputs()
    assert p.optimum()["efficiency"] == pytest.approx(24.0, abs=0.05) and best["solvent"] == "DMSO"
    assert best["cs_fraction"] + best["ma_fraction"] + best["fa_fraction"] == pytest.approx(1.0)
    # the DMSO optimum is a poor composition for GBL, and the other way round
    gbl = point(0.08, 0.40, 0.52, "GBL", 423.15)
    assert p.evaluate(point(best["cs_fraction"], best["ma_fraction"], best["fa_fraction"], "GBL", 423.15))["efficiency"] < \
        p.evaluate(gbl)["efficiency"]


def test_perovskite_films_fail_where_the_phase_does_not_form():
    p = PerovskiteLandscape()
    assert "did not form" in p.sample_fault(point(0.5, 0.5, 0.0, "DMF"))
    assert p.sample_fault(point(0.08, 0.11, 0.81)) is None
    assert "decomposed" in p.sample_fault(point(0.0, 0.5, 0.5, "DMF", 463.15))
    assert p.evaluate(point(1.0, 1.0, 1.0)) == p.evaluate(point(1 / 3, 1 / 3, 1 / 3))  # compositions are normalized


def test_thin_film_trades_conductivity_for_transparency_and_thick_hot_films_crack():
    t = ThinFilmLandscape()
    base = {"dopant_fraction": 0.05, "anneal_temperature": 673.15, "layers": 4, "atmosphere": "argon"}
    more = t.evaluate({**base, "layers": 8})
    less = t.evaluate(base)
    assert more["conductivity"] > less["conductivity"] and more["transparency"] < less["transparency"]
    doped = t.evaluate({**base, "dopant_fraction": 0.12})
    assert doped["conductivity"] > less["conductivity"] and doped["transparency"] < less["transparency"]
    assert t.sample_fault({**base, "layers": 12, "anneal_temperature": 873.15}).startswith("film cracked")
    assert t.sample_fault(base) is None


def test_the_simulation_is_a_biased_but_correlated_fidelity():
    exp, sim = MultiFidelityMaterialsLandscape(), MultiFidelityMaterialsLandscape(fidelity="simulation")
    assert exp.optimum() == pytest.approx(MaterialsLandscape().optimum())
    T, t, x = np.meshgrid(np.linspace(373.15, 573.15, 15), np.geomspace(60, 3600, 15), np.linspace(0, 1, 6))
    a, b = exp.response(T, t, x).ravel(), sim.response(T, t, x).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.85 and np.abs(a - b).max() > 5  # correlated, not equal
    assert exp.evaluate(sim.optimum_inputs())["product_yield"] < 0.95 * exp.optimum()["product_yield"]


def test_the_simulated_lab_offers_integer_and_categorical_inputs_and_reports_sample_faults():
    config = parse_lab_config({"name": "tf", "kind": "simulated", "stations": 1, "landscape": {"name": "thin_film"}})
    lab = config.build(seed=0)
    try:
        st = lab.stations[0]
        assert st.synthesis.atmosphere.describe()[st.synthesis.atmosphere.name]["enum_strs"] == ["air", "argon", "forming_gas"]
        assert st.synthesis.layers.integer
        for name, value in {"dopant_fraction": 0.05, "anneal_temperature": 873.15, "layers": 12, "atmosphere": "air"}.items():
            getattr(st.synthesis, name).set(value).wait(5)
        st.synthesis.trigger().wait(5)
        status = st.instrument.trigger()
        with pytest.raises(Exception):
            status.wait(5)
        exc = status.exception()
        assert isinstance(exc, SampleFault) and exc.sample_fault and "cracked" in exc.message
    finally:
        lab.close()


def test_station_sets_build_stations_with_their_own_landscape():
    config = parse_lab_config({"name": "mf", "kind": "simulated", "landscape": {"name": "materials_mf"}, "station_sets": [
        {"name": "simulation", "stations": 2, "options": {"fidelity": "simulation"}, "durations": {"synthesize": "2 min", "synthesize_from": None}},
        {"name": "experiment"}]})
    lab = config.build(seed=3)
    try:
        assert [s.name for s in lab.stations] == ["simulation1", "simulation2", "experiment1"]
        assert lab.resolve_stations(["simulation"]) == ["simulation1", "simulation2"]
        fidelities = [s.instrument.landscape.fidelity for s in lab.stations]
        assert fidelities == ["simulation", "simulation", "experiment"]
        assert lab.stations[0].expected_duration({"temperature": 400.0, "time": 3000.0, "dopant_fraction": 0.3}) == pytest.approx(120.0)
        assert lab.stations[2].expected_duration({"temperature": 400.0, "time": 3000.0, "dopant_fraction": 0.3}) == pytest.approx(3000.0)
    finally:
        lab.close()
