"""Landscapes: known values and optima of the benchmarks, and a plausible materials model."""

import math

import numpy as np
import pytest

from labflow.errors import RecipeError
from labflow.sim import LANDSCAPES, Branin, Hartmann6, MaterialsLandscape, make_landscape
from labflow.units import Quantity


@pytest.mark.parametrize("x1, x2", Branin.minimizers)
def test_branin_has_three_global_minima(x1, x2):
    assert Branin().evaluate({"x1": x1, "x2": x2})["y"] == pytest.approx(0.397887, abs=1e-5)


def test_branin_known_values_and_optimum():
    b = Branin()
    # at the origin: (0 - 6)^2 + 10 (1 - 1/(8 pi)) cos 0 + 10 = 56 - 10/(8 pi)
    assert b.evaluate({"x1": 0.0, "x2": 0.0})["y"] == pytest.approx(56 - 10 / (8 * math.pi))
    assert b.optimum() == {"y": pytest.approx(0.397887)}
    assert b.output("y").direction == "minimize"
    rng = np.random.default_rng(0)
    for x1, x2 in zip(rng.uniform(-5, 10, 200), rng.uniform(0, 15, 200)):
        assert b.evaluate({"x1": x1, "x2": x2})["y"] >= 0.397887 - 1e-6


def test_hartmann6_optimum():
    h = Hartmann6()
    assert h.evaluate(h.optimum_inputs())["y"] == pytest.approx(-3.32237, abs=1e-4)
    assert h.optimum() == {"y": -3.32237}
    rng = np.random.default_rng(1)
    values = [h.evaluate(dict(zip([f"x{j}" for j in range(1, 7)], x)))["y"] for x in rng.random((300, 6))]
    assert min(values) > -3.32237


def test_materials_landscape_speaks_device_units():
    m = MaterialsLandscape()
    assert {i.name: i.unit for i in m.inputs} == {"temperature": "K", "time": "s", "dopant_fraction": ""}
    assert (m.input("temperature").low, m.input("temperature").high) == (323.15, 673.15)
    assert (m.input("time").low, m.input("time").high) == (30.0, 7200.0)
    assert m.output("product_yield").unit == "percent" and m.output("product_yield").direction == "maximize"


def test_materials_optimum_lies_inside_the_recipe_box_but_not_at_its_centre():
    m = MaterialsLandscape()
    best = m.optimum()["product_yield"]
    where = m.optimum_inputs()
    t_c = Quantity(where["temperature"], "K").to("degC").magnitude
    minutes = where["time"] / 60
    assert 120 < t_c < 280 and 3 < minutes < 55 and 0.1 < where["dopant_fraction"] < 0.9
    assert m.evaluate(where)["product_yield"] == pytest.approx(best)
    centre = {"temperature": 473.15, "time": 30.5 * 60, "dopant_fraction": 0.5}
    assert m.evaluate(centre)["product_yield"] < best - 20
    assert m.optimum() is not None and m._optimum is not None  # cached after the first call


def test_materials_kinetics_saturate_then_decompose():
    m = MaterialsLandscape()
    at = lambda T, minutes: m.evaluate({"temperature": T, "time": minutes * 60, "dopant_fraction": 0.35})[  # noqa: E731
        "product_yield"
    ]
    # at 170 degC the yield rises, peaks, then falls as the product decomposes
    rising = [at(443.15, t) for t in (1, 5, 10)]
    assert rising == sorted(rising)
    assert at(443.15, 120) < at(443.15, 20)
    # hotter is faster early on, but decomposes more over long times
    assert at(503.15, 2) > at(443.15, 2)
    assert at(503.15, 60) < at(443.15, 60)


def test_materials_optimal_temperature_shifts_with_composition():
    m = MaterialsLandscape()
    T = np.linspace(373.15, 573.15, 201)[:, None]
    t = np.geomspace(60, 3600, 120)[None, :]
    best_T = [T[np.unravel_index(np.argmax(m.response(T, t, x)), (201, 120))[0], 0] for x in (0.0, 0.5, 1.0)]
    assert best_T == sorted(best_T) and best_T[-1] - best_T[0] > 20


def test_materials_response_is_finite_everywhere_in_the_device_box():
    m = MaterialsLandscape()
    T, t, x = np.meshgrid(np.linspace(323.15, 673.15, 30), np.geomspace(30, 7200, 30), np.linspace(0, 1, 11))
    Y = m.response(T, t, x)
    assert np.all(np.isfinite(Y)) and Y.min() >= 0 and Y.max() <= 100


def test_make_landscape_by_name_with_options():
    assert set(LANDSCAPES) == {"branin", "hartmann6", "materials", "perovskite", "thin_film", "materials_mf"}
    assert isinstance(make_landscape("branin"), Branin)
    variant = make_landscape("materials", x_peak=0.6)
    assert variant.optimum_inputs()["dopant_fraction"] > 0.45
    with pytest.raises(RecipeError, match="unknown landscape 'foo'"):
        make_landscape("foo")
    with pytest.raises(RecipeError, match="bad options"):
        make_landscape("branin", x_peak=1)
    assert math.isfinite(make_landscape("hartmann6").evaluate({f"x{j}": 0.5 for j in range(1, 7)})["y"])
