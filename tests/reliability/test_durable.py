"""The durable record: ledger framing and replay (P3), disk full (F8, P13), one writer (F10, P12),
atomic snapshots (F15, P15), signals (F7, P8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from labflow import load_recipe
from labflow.errors import CampaignLocked, DiskFullError, LedgerCorruptError
from labflow.launch import resume_campaign, run_recipe
from labflow.store.campaign_dir import CampaignDir
from labflow.store.provenance import read_campaign
from labflow.store.ledger import FILE_MAGIC, Ledger, TornTailWarning, read_records
from labflow.testing.crash import crash_env, finished_uids, verify_campaign
from labflow.testing.faults import full_disk

from .helpers import campaign_dir, child_env, cli, ledger_kinds, start_forked, wait_for, write_recipe


# -- P3: the ledger ------------------------------------------------------------------------------
def test_ledger_records_round_trip_strictly(tmp_path):
    led = Ledger(tmp_path / "l.lfl")
    led.append({"k": "x", "v": float("nan"), "w": [float("inf"), -float("inf"), 1.5]})
    led.close()
    raw = (tmp_path / "l.lfl").read_bytes()
    assert raw.startswith(FILE_MAGIC) and b"NaN" not in raw and b"Infinity" not in raw  # strict JSON
    (rec,) = read_records(tmp_path / "l.lfl")
    assert rec["v"] != rec["v"] and rec["w"][:2] == [float("inf"), -float("inf")]


def test_a_torn_tail_is_cut_off_with_one_warning_and_kept_in_quarantine(tmp_path):
    p = tmp_path / "l.lfl"
    led = Ledger(p)
    for i in range(3):
        led.append({"k": "x", "i": i})
    led.close()
    whole = p.read_bytes()
    p.write_bytes(whole + whole[len(FILE_MAGIC): len(FILE_MAGIC) + 9])  # half a record, as a crash leaves it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = read_records(p, repair=True, quarantine=tmp_path / "q")
    caught = [w for w in caught if issubclass(w.category, TornTailWarning)]
    assert len(caught) == 1 and [r["i"] for r in recs] == [0, 1, 2]
    assert p.read_bytes() == whole and len(list((tmp_path / "q").iterdir())) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_records(p)) == 3  # repaired: no warning any more


def test_a_damaged_record_mid_file_is_a_hard_error(tmp_path):
    p = tmp_path / "l.lfl"
    led = Ledger(p)
    for i in range(3):
        led.append({"k": "x", "i": i, "pad": "y" * 20})
    led.close()
    data = bytearray(p.read_bytes())
    data[len(FILE_MAGIC) + 20] ^= 0xFF  # flip a byte of the first record's payload
    p.write_bytes(bytes(data))
    with pytest.raises(LedgerCorruptError, match="corrupted, not torn"):
        read_records(p, repair=True)
    assert p.read_bytes() == bytes(data)  # nothing truncated


def test_replaying_ten_thousand_records_takes_under_two_seconds(tmp_path):
    p = tmp_path / "l.lfl"
    led = Ledger(p)
    for i in range(10_000):
        led.append({"k": "doc", "name": "event", "doc": {"data": {"y": i * 0.5}, "seq_num": i}}, sync=(i % 1000 == 0))
    led.close()
    t0 = time.perf_counter()
    assert len(read_records(p)) == 10_000
    assert time.perf_counter() - t0 < 2.0


# -- a finished campaign, and P3 determinism ----------------------------------------------------------
def test_replay_gives_the_uninterrupted_planners_state_hash(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, budget=6))
    outcome = run_recipe(recipe, tmp_path / "out", executor="local", handle_signals=False)
    report = verify_campaign(outcome.campaign_dir)
    assert report["ok"] and report["complete"] and report["replay_deterministic"]
    snap = CampaignDir(outcome.campaign_dir).read_snapshot()
    assert snap["state_hash"] == report["replay_hash"]  # the live planner's hash at the end == the replayed one


# -- F8 / P13: a full disk ------------------------------------------------------------------------------
def test_f8_disk_full_pauses_the_campaign_and_resuming_loses_nothing(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, budget=6))
    ref = run_recipe(recipe, tmp_path / "ref", executor="local", handle_signals=False)
    sizes = []
    data = CampaignDir(ref.campaign_dir).ledger_path.read_bytes()
    pos = len(FILE_MAGIC)
    while pos < len(data):  # record boundaries of a real ledger
        length = int.from_bytes(data[pos + 2: pos + 6], "little")
        pos += 10 + length
        sizes.append(pos)
    hit = 0
    for n, cut in enumerate([sizes[3], sizes[12] + 5, sizes[len(sizes) // 2] - 3, sizes[-4] + 1]):
        out = tmp_path / f"out{n}"
        with full_disk(cut):
            with pytest.raises(DiskFullError, match="disk full") as info:
                run_recipe(recipe, out, executor="local", handle_signals=False)
        assert "labflow resume" in (info.value.hint or "")
        before = finished_uids(out)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = resume_campaign(out, handle_signals=False)
        hit += sum(issubclass(w.category, TornTailWarning) for w in caught)
        report = verify_campaign(out, before=before)
        assert report["ok"] and report["finished"] == 6 and outcome.state.finished == 6, report
    assert hit == 0  # each failed append undid itself: no partial record was left to replay


def test_f8_a_torn_append_after_enospc_is_dropped_on_replay_with_one_warning(tmp_path):
    """If the process dies before it can undo a torn append (ENOSPC, then SIGKILL), replay drops it."""
    recipe = load_recipe(write_recipe(tmp_path, budget=4))
    out = tmp_path / "out"
    with full_disk(4000):
        with pytest.raises(DiskFullError):
            run_recipe(recipe, out, executor="local", handle_signals=False)
    cd = campaign_dir(out)
    with open(cd.ledger_path, "ab") as f:  # the torn bytes a killed process would leave
        f.write(b"\xa5\x4c\x40\x00\x00\x00\x00\x00\x00\x00{\"k\":\"fin")
    before = finished_uids(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = cd.history(repair=True)
    assert sum(issubclass(w.category, TornTailWarning) for w in caught) == 1  # replay warnings = 1
    assert h.finished_uids == before
    resume_campaign(out, handle_signals=False)
    report = verify_campaign(out, before=before)
    assert report["ok"] and report["finished"] == 4


# -- F10 / P12: one writer -------------------------------------------------------------------------------
def test_f10_a_second_process_fails_within_a_second_naming_the_holder_and_a_stale_lock_is_recovered(tmp_path):
    recipe = write_recipe(tmp_path, budget=6, time_scale=1.0, synthesize=1.0)
    out = tmp_path / "out"
    holder = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
    try:
        cd = wait_for(lambda: campaign_dir(out), 30, "the campaign directory")
        wait_for(lambda: "started" in ledger_kinds(out), 30, "a first experiment")
        t0 = time.monotonic()
        with pytest.raises(CampaignLocked) as info:
            resume_campaign(cd.path, handle_signals=False)
        assert time.monotonic() - t0 < 1.0
        assert info.value.holder["pid"] == holder.pid and "host" in info.value.holder and "started" in info.value.holder
        assert str(holder.pid) in info.value.message
        second = cli("resume", str(cd.path), "--quiet")
        assert second.returncode == 1 and str(holder.pid) in second.stderr
    finally:
        holder.kill()  # SIGKILL leaves a stale lock file behind
        holder.join(30)
    before = finished_uids(out)
    # two resumers race for the stale lock: exactly one proceeds
    a = start_forked("resume", str(cd.path), "--quiet", env=child_env())
    b = start_forked("resume", str(cd.path), "--quiet", env=child_env())
    a.join(120)
    b.join(120)
    assert sorted([a.exitcode, b.exitcode]) == [0, 1], (a.exitcode, b.exitcode)
    report = verify_campaign(out, before=before)
    assert report["ok"] and report["finished"] == 6


# -- F15 / P15: atomic snapshots ----------------------------------------------------------------------
def test_f15_a_snapshot_write_killed_before_replace_leaves_the_old_one_intact(tmp_path):
    cd = CampaignDir(tmp_path)
    cd.write_snapshot({"version": 1})
    code = f"from labflow.store.campaign_dir import CampaignDir; CampaignDir({str(tmp_path)!r}).write_snapshot({{'version': 2, 'pad': 'x' * 100000}})"
    proc = subprocess.run([sys.executable, "-c", code], env=crash_env("snapshot.before_replace", 1, child_env()), timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert cd.read_snapshot() == {"version": 1}  # truncated snapshots: 0
    assert (tmp_path / ".snapshot.json.tmp").exists()
    assert cd.clean_temporaries() and not (tmp_path / ".snapshot.json.tmp").exists()  # cleaned on next start


# -- F7 / P8: signals ------------------------------------------------------------------------------------
def _signalled(tmp_path, signals: list[int], synthesize: float):
    recipe = write_recipe(tmp_path, budget=6, time_scale=1.0, synthesize=synthesize)
    out = tmp_path / "out"
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
    wait_for(lambda: ledger_kinds(out).count("started") >= 2, 60, "two experiments in flight")
    time.sleep(0.3)
    t0 = time.monotonic()
    for s in signals:
        os.kill(proc.pid, s)
        time.sleep(0.2)
    proc.join(30)
    took = time.monotonic() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = read_records(campaign_dir(out).ledger_path)
    return proc, took, records, out


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["SIGTERM", "SIGINT-twice"])
def test_f7_a_signal_stops_cleanly_within_ten_seconds_and_resume_finishes(tmp_path, signals):
    proc, took, records, out = _signalled(tmp_path, signals, synthesize=20.0)  # experiments far longer than the stop grace
    assert proc.exitcode == 3 and took <= 10.0, (proc.exitcode, took)
    kinds = [r["k"] for r in records]
    assert kinds[-1] == "end" and records[-1]["complete"] is False and kinds.count("interrupted") == 2
    stops = [r["doc"] for r in records if r["k"] == "doc" and r["name"] == "stop"]
    assert stops and all(s["exit_status"] == "success" for s in stops)  # bluesky's clean stop
    before = finished_uids(out)
    assert cli("resume", str(out), "--quiet", "--executor", "virtual").returncode == 0
    report = verify_campaign(out, before=before)
    assert report["ok"] and report["finished"] == 6 and report["repeated"] == 2


def test_f7_one_ctrl_c_lets_short_experiments_finish_then_stops(tmp_path):
    proc, took, records, out = _signalled(tmp_path, [signal.SIGINT], synthesize=1.0)
    assert proc.exitcode == 3 and took <= 10.0
    assert [r["k"] for r in records].count("interrupted") == 0  # no checkpoint reached in time: they finished
    assert len(finished_uids(out)) >= 2


def test_times_continue_across_a_resume(tmp_path):
    """A campaign stopped by a full disk after an experiment or two, then resumed: the resumed
    experiments start after the earlier ones finished, on the campaign's clock."""
    recipe = load_recipe(write_recipe(tmp_path, budget=4, stations=1, time_scale=1.0, synthesize=0.3))
    ref = run_recipe(recipe, tmp_path / "ref", executor="local", handle_signals=False)
    data = CampaignDir(ref.campaign_dir).ledger_path.read_bytes()
    pos, finished, cut = len(FILE_MAGIC), 0, None
    while pos < len(data):  # the byte just after the second 'finished' record of a real ledger
        length = int.from_bytes(data[pos + 2: pos + 6], "little")
        finished += json.loads(data[pos + 10: pos + 10 + length])["k"] == "finished"
        pos += 10 + length
        if finished == 2 and cut is None:
            cut = pos + 1
    out = tmp_path / "out"
    with full_disk(cut):
        with pytest.raises(DiskFullError):
            run_recipe(recipe, out, executor="local", handle_signals=False)
    before = finished_uids(out)
    assert 1 <= len(before) <= 2  # ledger records vary a little in length from run to run
    outcome = resume_campaign(out, handle_signals=False)
    rows = read_campaign(outcome.path).experiments
    first, resumed = rows[rows["uid"].isin(before)], rows[~rows["uid"].isin(before)]
    assert len(resumed) == 4 - len(before) and first["t_finished"].max() >= 0.3  # experiments of 0.3 s at least
    assert resumed["t_started"].min() >= first["t_finished"].max(), rows[["uid", "t_started", "t_finished"]]
    assert list(rows["t_finished"]) == sorted(rows["t_finished"])
