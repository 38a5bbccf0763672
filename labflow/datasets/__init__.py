"""Datasets shipped with labflow, so that benchmarks run on a plain install.

``liang2021/`` holds the five experimental pools of Liang et al. (2021), byte-for-byte copies
of the upstream CSV files, with their MIT licence notice, the citations and ``checksums.sha256``
(see ``liang2021/README.md``). :func:`labflow.sim.datasets.load_dataset` reads them by default;
``data_dir=...`` (``labflow bench --data-dir``) or ``$LABFLOW_DATA`` point it at other data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["LIANG2021_DIR", "ChecksumError", "read_checksums", "verify_checksums"]

#: The folder of the shipped Liang et al. (2021) CSV files.
LIANG2021_DIR = Path(__file__).resolve().parent / "liang2021"


class ChecksumError(ValueError):
    """A shipped data file does not match its recorded sha256 (or is missing)."""


def read_checksums(folder: Path = LIANG2021_DIR) -> dict[str, str]:
    """``{file name: sha256 hex}`` from ``folder/checksums.sha256`` (the ``sha256sum`` format)."""
    path = Path(folder) / "checksums.sha256"
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ChecksumError(f"{path.name} line {lineno}: expected '<64 hex digits>  <file name>', got {line!r}")
        sums[name.strip()] = digest.lower()
    return sums


def verify_checksums(folder: Path = LIANG2021_DIR) -> dict[str, str]:
    """Check every file listed in ``folder/checksums.sha256``; return the sums, raise :class:`ChecksumError` on a mismatch."""
    sums = read_checksums(folder)
    for name, expected in sums.items():
        path = Path(folder) / name
        if not path.is_file():
            raise ChecksumError(f"{name}: listed in checksums.sha256 but absent from {Path(folder).name}/")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != expected:
            raise ChecksumError(f"{name}: sha256 is {got}, expected {expected} (the file was altered, e.g. by a line-ending conversion)")
    return sums
