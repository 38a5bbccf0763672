"""The five Liang et al. pools ship inside the package, byte for byte, with their licence and checksums."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

from labflow.datasets import LIANG2021_DIR, ChecksumError, read_checksums, verify_checksums
from labflow.sim.datasets import BUILTIN_DATASETS, load_dataset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

FILES = {"P3HT_dataset.csv", "AgNP_dataset.csv", "Perovskite_dataset.csv", "Crossed_barrel_dataset.csv", "AutoAM_dataset.csv"}


def readme_checksums(readme: Path) -> dict[str, str]:
    """The ``| `file` | blob | bytes | `sha256` |`` rows of the reference README's table."""
    rows = re.findall(r"^\| `([^`]+\.csv)` \|.*\| `([0-9a-f]{64})` \|$", readme.read_text(encoding="utf-8"), flags=re.M)
    return dict(rows)


def test_the_shipped_files_match_their_checksum_file():
    sums = verify_checksums()
    assert set(sums) == FILES


def test_the_shipped_checksums_equal_the_reference_readme_table(shared_data_dir):
    assert read_checksums() == readme_checksums(shared_data_dir / "README.md")
    for name in FILES:  # and the bytes are the reference copy's, CRLF and byte-order mark included
        assert (LIANG2021_DIR / name).read_bytes() == (shared_data_dir / name).read_bytes()


def test_a_changed_byte_is_caught(tmp_path):
    for name in ("checksums.sha256", "AutoAM_dataset.csv"):
        (tmp_path / name).write_bytes((LIANG2021_DIR / name).read_bytes())
    data = (tmp_path / "AutoAM_dataset.csv").read_bytes()
    (tmp_path / "AutoAM_dataset.csv").write_bytes(data.replace(b"\r\n", b"\n"))  # what a careless checkout does
    (tmp_path / "checksums.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  AutoAM_dataset.csv\n", encoding="ascii"
    )
    with pytest.raises(ChecksumError, match="AutoAM_dataset.csv: sha256 is"):
        verify_checksums(tmp_path)


def test_the_licence_notice_and_citations_sit_beside_the_data():
    text = (LIANG2021_DIR / "README.md").read_text(encoding="utf-8")
    assert "MIT License" in text and "Copyright (c) 2020 MIT PVLab" in text
    for cited in ("Liang", "Bash", "Mekki-Berrada", "Tiihonen", "Gongora", "Deneault"):
        assert cited in text


def test_the_data_files_are_package_data(root):
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["labflow"]
    packaged = {p.relative_to(root / "labflow").as_posix() for g in globs for p in (root / "labflow").glob(g)}
    expected = {f"datasets/liang2021/{n}" for n in FILES | {"README.md", "checksums.sha256"}}
    assert expected <= packaged


@pytest.mark.parametrize("name, n", [("p3ht", 178), ("agnp", 164), ("perovskite", 94), ("crossed_barrel", 600), ("autoam", 100)])
def test_load_dataset_reads_the_shipped_copy_by_default(monkeypatch, name, n):
    monkeypatch.delenv("LABFLOW_DATA", raising=False)
    assert name in BUILTIN_DATASETS
    assert load_dataset(name).n == n


def test_labflow_data_still_takes_other_data(monkeypatch, tmp_path):
    # A lab's own copy of the AutoAM file holding only its first three rows: LABFLOW_DATA wins over the shipped one.
    lines = (LIANG2021_DIR / "AutoAM_dataset.csv").read_bytes().split(b"\r\n")
    (tmp_path / "AutoAM_dataset.csv").write_bytes(b"\r\n".join(lines[:4]))
    monkeypatch.setenv("LABFLOW_DATA", str(tmp_path))
    assert load_dataset("autoam").n == 3
    assert load_dataset("p3ht").n == 178  # a pool missing from LABFLOW_DATA falls back to the shipped copy
    assert load_dataset("autoam", data_dir=LIANG2021_DIR).n == 100  # data_dir wins over both
