"""The architecture is checked, not only drawn: the import-linter contracts in pyproject.toml
(layers that point down; runtime code never imports labflow.testing) hold for the code as it is."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.fail(f"{lint_imports} is missing: install the dev extras (pip install -e '.[dev]')")
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_testing_contract_covers_every_runtime_module() -> None:
    """A new top-level module cannot slip past the contract: every one but labflow.testing is a source."""
    package = ROOT / "labflow"
    runtime = {f"labflow.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    runtime |= {f"labflow.{p.parent.name}" for p in package.glob("*/__init__.py")}
    runtime.discard("labflow.testing")
    sources = set(_contracts()["no-testing-at-runtime"]["source_modules"])
    assert runtime == sources, f"missing: {sorted(runtime - sources)}; stale: {sorted(sources - runtime)}"
