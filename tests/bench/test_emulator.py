"""The emulator reports how well it predicts unseen data, and refuses to be trusted below R^2 0.7."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from labflow.sim.datasets import load_dataset

pytest.importorskip("botorch")  # the emulator is a BoTorch GP (imported here, at collection)
from labflow.sim.emulator import EmulatorLandscape, EmulatorQualityError


def smooth_dataset(tmp_path, noise: float, replicates: bool = True):
    """30 points of y = sin(3a) + b on [0, 1]^2, each measured twice when ``replicates``."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(30, 2))
    lines = ["a,b,y"]
    for a, b in X:
        for _ in range(2 if replicates else 1):
            lines.append(f"{a:.6f},{b:.6f},{np.sin(3 * a) + b + rng.normal(0, noise):.6f}")
    (tmp_path / "smooth.csv").write_text("\n".join(lines))
    (tmp_path / "smooth.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "smooth",
                "file": "smooth.csv",
                "inputs": [{"column": "a", "name": "a"}, {"column": "b", "name": "b"}],
                "objective": {"column": "y", "name": "y", "direction": "maximize"},
            }
        )
    )
    return load_dataset(tmp_path / "smooth.yaml")


def test_a_good_emulator_reports_its_cross_validated_r2_and_noise(tmp_path):
    ds = smooth_dataset(tmp_path, noise=0.05)
    emu = EmulatorLandscape(ds, seed=0, folds=3)
    assert 0.7 <= emu.cv_r2 <= 1.0 and emu.trusted
    assert emu.noise_source == "replicates" and emu.noise_std == pytest.approx(0.05, rel=0.5)
    y = emu.evaluate({"a": 0.5, "b": 0.5})["y"]
    assert y == pytest.approx(np.sin(1.5) + 0.5, abs=0.2)
    assert emu.report()["cv_r2"] == emu.cv_r2


def test_a_poor_emulator_is_refused_unless_forced(tmp_path):
    ds = smooth_dataset(tmp_path, noise=3.0, replicates=False)  # the signal drowns in noise
    with pytest.raises(EmulatorQualityError, match="cross-validated R\\^2") as err:
        EmulatorLandscape(ds, seed=0, folds=3)
    assert "PoolLandscape" in str(err.value)
    emu = EmulatorLandscape(ds, seed=0, folds=3, force=True)
    assert emu.cv_r2 < 0.7 and not emu.trusted and emu.noise_source == "residuals"


@pytest.mark.needs_data
def test_the_perovskite_pool_is_too_rough_to_emulate(data_dir):
    ds = load_dataset("perovskite", data_dir=data_dir)
    with pytest.raises(EmulatorQualityError) as err:
        EmulatorLandscape(ds, seed=0, folds=3)
    assert "perovskite" in str(err.value)  # benchmark it as a pool instead
