"""F5/F6, P1-P4: SIGKILL a real campaign process at every named crash point and at seeded random
instants; resume it; nothing finished is lost or duplicated, at most the in-flight experiments
repeat, and the provenance file is valid HDF5 holding exactly the ledger's experiments."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from labflow.testing.crash import CRASH_POINTS, crash_env, finished_uids, verify_campaign

from .helpers import campaign_dir, child_env, cli, ledger_kinds, start_forked, wait_for, write_recipe

STATIONS = 2
BUDGET = 8
# Which hit of each point to die at: chosen so that the campaign is mid-way (see labflow/testing/crash.py).
HIT = {
    "ledger.before_fsync": 8,
    "ledger.after_fsync": 11,
    "hdf5.after_create": 1,
    "hdf5.mid_append": 25,
    "hdf5.before_rename": 1,
    "planner.after_ask": 4,
    "snapshot.before_replace": 1,
    "run.after_start_doc": 3,
    "run.before_stop_doc": 3,
}


def _kill_and_resume(tmp_path, point: str, n: int, seed: int) -> dict:
    recipe = write_recipe(tmp_path, budget=BUDGET, stations=STATIONS, seed=seed)
    out = tmp_path / "out"
    died = cli("run", str(recipe), "--out", str(out), "--quiet", env=crash_env(point, n, child_env()))
    assert died.returncode == -signal.SIGKILL, f"{point}:{n} was not reached: rc={died.returncode}\n{died.stderr}"
    before = finished_uids(out)
    if point == "ledger.after_fsync":  # `labflow run` again refuses to start over and says how to resume
        again = cli("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
        assert again.returncode == 1 and "labflow resume" in again.stderr, again.stderr
    resumed = cli("resume", str(out), "--quiet", env=child_env())
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    report = verify_campaign(out, before=before, stations=STATIONS)
    assert report["ok"], report
    assert report["finished"] == BUDGET and report["complete"]
    assert report["repeated"] <= STATIONS, report
    return report


def test_every_crash_point_is_in_the_matrix():
    assert set(HIT) == set(CRASH_POINTS)


@pytest.mark.parametrize("point", sorted(HIT))
def test_sigkill_at_each_crash_point_then_resume(tmp_path, point):
    _kill_and_resume(tmp_path, point, HIT[point], seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("point", sorted(HIT))
def test_sigkill_at_each_crash_point_more_seeds(tmp_path, point, seed):
    _kill_and_resume(tmp_path, point, HIT[point], seed=seed)


def test_a_crash_during_resume_is_resumed_too(tmp_path):
    recipe = write_recipe(tmp_path, budget=BUDGET, stations=STATIONS)
    out = tmp_path / "out"
    assert cli("run", str(recipe), "--out", str(out), "--quiet", env=crash_env("ledger.after_fsync", 11, child_env())).returncode == -9
    before = finished_uids(out)
    # the rebuild of the provenance file dies just before its rename
    assert cli("resume", str(out), "--quiet", env=crash_env("hdf5.before_rename", 1, child_env())).returncode == -9
    assert cli("resume", str(out), "--quiet", env=child_env()).returncode == 0
    report = verify_campaign(out, before=before)
    assert report["ok"] and report["finished"] == BUDGET, report
    quarantined = list((campaign_dir(out).quarantine).glob("*.h5"))
    assert len(quarantined) >= 2  # the crashed file and the half-built one: moved, never deleted


def _random_kill(tmp_path, seed: int) -> dict:
    """Kill a real-time campaign (~0.3 s experiments) at a seeded random instant, then resume."""
    rng = np.random.default_rng(seed)
    recipe = write_recipe(tmp_path, budget=BUDGET, stations=STATIONS, seed=seed, time_scale=1.0, synthesize=0.2, measure=0.1)
    out = tmp_path / "out"
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
    try:
        wait_for(lambda: "campaign" in ledger_kinds(out), 30, "the campaign header")
        time.sleep(float(rng.uniform(0.0, 1.5)))
    finally:
        proc.kill()  # SIGKILL
        proc.join(30)
    before = finished_uids(out)
    # finished before the kill (the process exited, or it had ledgered its end and was closing down:
    # the HDF5 file is synced before the end record, and `labflow resume` says there is nothing to resume)
    if proc.exitcode == 0 or "end" in ledger_kinds(out):
        report = verify_campaign(out)
    else:
        resumed = cli("resume", str(out), "--quiet", env=child_env())
        assert resumed.returncode == 0, resumed.stderr
        report = verify_campaign(out, before=before, stations=STATIONS)
    assert report["ok"] and report["finished"] == BUDGET, report
    assert report["repeated"] <= STATIONS
    return report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_instants_then_resume(tmp_path, seed):
    _random_kill(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 200))
def test_sigkill_at_many_random_instants(tmp_path, seed):
    _random_kill(tmp_path, seed)
