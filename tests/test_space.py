"""Search spaces: units, bounds, encoding to the unit cube and back."""

import numpy as np
import pandas as pd
import pytest

from labflow import Categorical, Integer, Real, Space
from labflow.errors import SpaceError, UnitError


def test_real_bounds_take_quantities_in_any_convertible_unit():
    p = Real("time", "1 min", "2 h", unit="min")
    assert (p.low, p.high) == (1.0, 120.0)


def test_reversed_bounds_are_rejected_with_a_hint():
    with pytest.raises(SpaceError, match="must be below"):
        Real("temperature", 300, 100, unit="degC")


def test_a_bound_of_the_wrong_dimension_is_rejected():
    with pytest.raises(SpaceError, match=r"\[length\]"):
        Real("temperature", "100 m", 300, unit="degC")


def test_unknown_units_are_rejected():
    with pytest.raises(UnitError, match="unknown unit"):
        Real("temperature", 100, 300, unit="degCC")


def test_encode_decode_round_trip_for_a_mixed_space():
    space = Space([
        Real("temperature", 100, 300, unit="degC"),
        Real("rate", 0.1, 10, unit="mL/min", log=True),
        Integer("layers", 1, 5),
        Categorical("solvent", ["water", "ethanol", "toluene"]),
    ])
    assert space.dim == 6
    points = pd.DataFrame({"temperature": [100.0, 250.0], "rate": [1.0, 10.0], "layers": [1, 4], "solvent": ["toluene", "water"]})
    X = space.encode(points)
    assert X.shape == (2, 6) and X.min() >= 0 and X.max() <= 1
    assert X[0, 1] == pytest.approx(0.5)  # 1 mL/min is the log-midpoint of [0.1, 10]
    back = space.decode(X)
    pd.testing.assert_frame_equal(back, points, check_dtype=False)


def test_points_outside_the_space_are_named():
    space = Space([Real("temperature", 100, 300, unit="degC")])
    with pytest.raises(SpaceError, match="temperature = 350"):
        space.encode([{"temperature": 350.0}])
    with pytest.raises(SpaceError, match="missing parameter"):
        space.encode([{"time": 3}])


def test_quantities_are_converted_to_declared_units():
    from labflow.units import Quantity

    space = Space([Real("temperature", 100, 300, unit="degC")])
    X = space.encode([{"temperature": Quantity(473.15, "K")}])
    assert X[0, 0] == pytest.approx(0.5)


def test_sampling_is_seeded_and_in_bounds():
    space = Space([Real("x", -1, 1), Integer("n", 0, 3), Categorical("c", ["a", "b"])])
    a, b = space.sample(50, seed=7), space.sample(50, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert a["x"].between(-1, 1).all() and set(a["n"]) <= {0, 1, 2, 3} and set(a["c"]) <= {"a", "b"}


def test_to_quantities_carries_units_for_devices():
    space = Space([Real("temperature", 100, 300, unit="degC"), Categorical("c", ["a", "b"])])
    q = space.to_quantities({"temperature": 150.0, "c": "a"})
    assert q["temperature"].to("K").magnitude == pytest.approx(423.15)
    assert q["c"] == "a"


def test_space_serialization_round_trips():
    space = Space([Real("t", 1, 60, unit="min", log=True), Integer("n", 1, 4), Categorical("c", ["a", "b"])])
    assert Space.from_dict(space.to_dict()) == space


def test_snap_rounds_integers_and_one_hot():
    space = Space([Integer("n", 0, 4), Categorical("c", ["a", "b"])])
    X = space.snap(np.array([[0.3, 0.2, 0.7]]))
    assert X.tolist() == [[0.25, 0.0, 1.0]]
