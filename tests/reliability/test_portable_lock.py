"""One writer per campaign on every platform: the lock comes from ``filelock`` (flock on POSIX,
msvcrt on Windows), who holds it is written beside it, and ``labflow.store`` imports where
``fcntl`` does not exist."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from labflow.errors import CampaignLocked
from labflow.store.campaign_dir import CampaignDir, CampaignLock

from .helpers import child_env


def test_a_second_holder_is_refused_with_the_first_ones_pid_host_and_start_time(tmp_path):
    cd = CampaignDir(tmp_path)
    with cd.lock() as first:
        recorded = json.loads((tmp_path / "lock.holder.json").read_text())
        assert recorded == first.info and recorded["pid"] == os.getpid() and recorded["host"] == socket.gethostname()
        with pytest.raises(CampaignLocked) as info:
            cd.lock()
        message = info.value.message
        assert f"held by process {os.getpid()} on host {socket.gethostname()} since {recorded['started']}" in message
        assert info.value.holder == recorded
    # released: the holder record is gone and the lock is free again
    assert not (tmp_path / "lock.holder.json").exists()
    with cd.lock() as again:
        assert again.recovered_from is None


def test_a_holder_record_left_by_a_dead_process_is_taken_over_and_remembered(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "lock.holder.json").write_text(json.dumps(stale))
    with CampaignLock(tmp_path / "lock") as lock:
        assert lock.recovered_from == stale


def test_a_holder_record_from_another_host_needs_break_lock(tmp_path):
    other = {"pid": 1, "host": "instrument-pc-7", "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "lock.holder.json").write_text(json.dumps(other))
    with pytest.raises(CampaignLocked) as info:
        CampaignLock(tmp_path / "lock")
    assert "'instrument-pc-7'" in info.value.message and "--break-lock" in info.value.hint
    with CampaignLock(tmp_path / "lock", break_lock=True) as lock:
        assert lock.recovered_from == other


def test_labflow_store_imports_and_locks_where_fcntl_does_not_exist(tmp_path):
    """``sys.modules['fcntl'] = None`` makes ``import fcntl`` fail as it does on Windows."""
    code = textwrap.dedent(
        f"""
        import sys, warnings
        sys.modules["fcntl"] = None
        warnings.simplefilter("ignore")  # filelock says it falls back to its soft lock here
        import labflow.store
        from labflow.store.campaign_dir import CampaignLock
        from labflow.errors import CampaignLocked
        with CampaignLock({str(tmp_path / 'lock')!r}) as lock:
            try:
                CampaignLock({str(tmp_path / 'lock')!r})
            except CampaignLocked as exc:
                print("refused:", exc.message)
        print("fcntl" in sys.modules and sys.modules["fcntl"] is not None)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("refused: ") and f"on host {socket.gethostname()}" in lines[0]
    assert lines[-1] == "False"  # nothing imported a real fcntl behind our back
