"""Every committed benchmark result says how it was made: the command, the git commit and the
machine, and holds no absolute path of the machine it ran on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
ABSOLUTE = re.compile(r"""(?<![\w.:/])(/(?:work|home|root|tmp|Users|private|mnt|var)/[^\s"']*|[A-Za-z]:\\\\[^\s"']*)""")


def _flat(d: dict) -> dict:
    out = dict(d)
    for key in ("environment", "provenance"):
        if isinstance(d.get(key), dict):
            out.update(d[key])
    return out


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("*.json")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_result_file_carries_command_commit_and_machine_and_no_absolute_path(path):
    data = _flat(json.loads(path.read_text()))
    assert data.get("command"), f"{path.name}: no command"
    assert data.get("commit") or data.get("git_commit"), f"{path.name}: no commit"
    assert any(data.get(k) for k in ("machine", "machine_info", "machine_summary", "cpus")), f"{path.name}: no machine"
    found = ABSOLUTE.findall(path.read_text())
    assert not found, f"{path.name} holds absolute paths: {found[:3]}"


@pytest.mark.parametrize("path", sorted(p for p in RESULTS.rglob("*.md") if p.name != "README.md"), ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_result_table_says_its_command_and_holds_no_absolute_path(path):
    text = path.read_text()
    assert re.search(r"[Cc]ommand", text), f"{path.name}: no command"
    assert not ABSOLUTE.findall(text), f"{path.name} holds absolute paths: {ABSOLUTE.findall(text)[:3]}"
