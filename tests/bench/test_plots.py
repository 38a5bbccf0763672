"""The fraction-found figure is written as a real PNG."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import yaml

from labflow.bench.plots import plot_fraction_found
from labflow.sim.datasets import load_dataset


def toy_dataset(tmp_path, n=60):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, n)
    (tmp_path / "toy.csv").write_text("x,y\n" + "\n".join(f"{a:.5f},{np.sin(6 * a):.5f}" for a in x))
    (tmp_path / "toy.yaml").write_text(
        yaml.safe_dump(
            {"name": "toy", "file": "toy.csv", "inputs": [{"column": "x", "name": "x"}], "objective": {"column": "y", "name": "y", "direction": "maximize"}}
        )
    )
    return load_dataset(tmp_path / "toy.yaml")


def test_fraction_found_plot_is_written_and_not_blank(tmp_path):
    ds = toy_dataset(tmp_path)
    rng = np.random.default_rng(1)
    traces = {
        "random": [rng.permutation(ds.n).tolist() for _ in range(10)],
        "greedy": [list(ds.ranking()[:30]) for _ in range(10)],
    }
    path = plot_fraction_found(traces, ds, tmp_path / "figs" / "toy.png")
    assert path.is_file() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20  # lines, band, text: not a blank canvas
