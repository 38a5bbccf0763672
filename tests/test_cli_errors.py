"""Ordinary mistakes end in a message, not a traceback: ``error: what, where`` and ``hint: what to
do``, with a documented exit code (docs/reference/cli.md); ``labflow --debug`` shows the traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.cli.common import EXIT_ERROR, EXIT_INVALID

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
runner = CliRunner()


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output, output


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory) -> Path:
    """A small finished campaign (virtual time, 3 experiments) with its ledger beside it."""
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    out = tmp_path_factory.mktemp("runs")
    return run_recipe(load_recipe(QUICKSTART), out, budget=3, executor="virtual", handle_signals=False).path


def test_a_binary_file_given_as_the_recipe(tmp_path):
    binary = tmp_path / "campaign.h5"
    binary.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    result = runner.invoke(app, ["validate", str(binary)])
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert f"error: recipe {binary}: not a text file (byte 0 is not UTF-8)" in result.output
    assert "hint: a recipe is a YAML text file" in result.output
    result = runner.invoke(app, ["run", str(binary), "--out", str(tmp_path / "runs")])
    assert result.exit_code == EXIT_INVALID and "not a text file" in result.output
    _no_traceback(result.output)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only folder: run as a user")
def test_a_read_only_output_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(folder / "runs"), "--budget", "2", "--quiet"])
    finally:
        folder.chmod(0o755)
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert f"error: cannot write or read {folder / 'runs'}: permission denied" in result.output
    assert "hint: choose a folder you may write to" in result.output


def test_out_naming_a_file(tmp_path):
    afile = tmp_path / "results.txt"
    afile.write_text("my notes\n")
    result = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(afile), "--budget", "2", "--quiet"])
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert f"error: --out {afile}: is a file, not a folder" in result.output
    assert "hint: --out takes a folder (created if missing)" in result.output
    assert afile.read_text() == "my notes\n"


def test_report_o_naming_a_file(tmp_path, campaign_file):
    afile = tmp_path / "report.html"
    afile.write_text("<p>an old report</p>")
    result = runner.invoke(app, ["report", str(campaign_file), "-o", str(afile), "--no-baselines", "--no-model"])
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert f"error: -o {afile}: is a file, not a folder" in result.output and "hint: -o takes a folder" in result.output


def test_export_into_a_path_under_a_file_then_again_with_debug(tmp_path, campaign_file):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    result = runner.invoke(app, ["export", str(campaign_file), "-o", str(afile / "package")])
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert result.output.startswith(f"error: {afile} is a file, not a folder")
    assert "hint: an output option (--out, -o) takes a folder" in result.output
    result = runner.invoke(app, ["--debug", "export", str(campaign_file), "-o", str(afile / "package")])
    assert isinstance(result.exception, OSError)  # --debug: the exception and its traceback go through


def test_an_hdf5_file_with_flipped_bits(tmp_path, campaign_file):
    damaged = tmp_path / campaign_file.name
    data = bytearray(campaign_file.read_bytes())
    for i in range(8, 48):  # the superblock after the signature: HDF5 checks it (libver latest)
        data[i] ^= 0b0010_0100
    damaged.write_bytes(bytes(data))
    for command in (["inspect", str(damaged)], ["report", str(damaged), "--no-baselines", "--no-model", "-o", str(tmp_path / "r")],
                    ["export", str(damaged), "-o", str(tmp_path / "pkg")]):
        result = runner.invoke(app, command)
        assert result.exit_code == EXIT_ERROR, result.output
        _no_traceback(result.output)
        assert f"error: {damaged} is not a readable HDF5 file" in result.output, result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


def test_an_hdf5_file_with_experiments_deleted(tmp_path, campaign_file):
    damaged = tmp_path / "runs" / campaign_file.name
    damaged.parent.mkdir()
    shutil.copy(campaign_file, damaged)
    shutil.copytree(campaign_file.with_suffix(".labflow"), damaged.with_suffix(".labflow"))
    with h5py.File(damaged, "a") as f:
        del f["experiments"]
    result = runner.invoke(app, ["inspect", str(damaged)])
    assert result.exit_code == EXIT_ERROR
    _no_traceback(result.output)
    assert f"error: {damaged} is damaged: KeyError:" in result.output and "'experiments' doesn't exist" in result.output
    assert f"hint: its campaign ledger is intact beside it: `labflow rebuild {damaged.with_suffix('.labflow')}`" in result.output


def test_an_unknown_status_value_lists_the_valid_ones(tmp_path):
    import pandas as pd

    from labflow.errors import ObservationError
    from labflow.planners import make_planner
    from labflow.recipe import load_recipe

    recipe = load_recipe(QUICKSTART)
    planner = make_planner("random", recipe.space, recipe.objectives, seed=0)
    rows = pd.DataFrame([{"temperature": 150.0, "time": 10.0, "dopant_fraction": 0.3, "product_yield": 20.0, "status": "done"}])
    with pytest.raises(ObservationError, match="unknown status 'done'; a status is one of proposed, running, completed, failed, invalid"):
        planner.observe(rows)
    # the same mistake in a recipe's prior data, through the CLI
    (tmp_path / "prior.csv").write_text(rows.to_csv(index=False))
    text = QUICKSTART.read_text().replace("lab: sim_materials", "lab: sim_materials\nprior_data: [prior.csv]")
    (tmp_path / "r.yaml").write_text(text)
    result = runner.invoke(app, ["validate", str(tmp_path / "r.yaml")])
    assert result.exit_code == EXIT_INVALID
    _no_traceback(result.output)
    assert "unknown status 'done'; a status is one of proposed, running, completed, failed, invalid" in result.output
