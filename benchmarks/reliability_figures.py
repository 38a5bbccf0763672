"""The reliability figures of docs/reliability.md: kill matrix, hang detection, SIGTERM stop time.

    .venv/bin/python benchmarks/reliability_figures.py --seeds 3 --random 200 --json benchmarks/results/reliability.json

Kill matrix: a real `labflow run` process (forked from a fork server started with
sys.executable, labflow preloaded) is SIGKILLed at every named crash point for each seed, and at
``--random`` seeded random instants of a real-time campaign; each is resumed with `labflow resume`
and checked with labflow.testing.verify_campaign (lost, duplicated, repeated, HDF5 valid). The
file each crash left behind is also opened with h5py before the resume rebuilds it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import shlex
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labflow.testing.crash import CRASH_POINTS, crash_env, finished_uids, verify_campaign  # noqa: E402
from tests.reliability.helpers import child_env, cli, ledger_kinds, start_forked, wait_for, write_recipe  # noqa: E402
from tests.reliability.test_kill_matrix import BUDGET, HIT, STATIONS  # noqa: E402


def _crashed_file_readable(out: Path) -> bool | None:
    files = list(out.glob("*.h5"))
    if not files:
        return None
    try:
        with h5py.File(files[0], "r") as f:
            f["experiments/uid"][()]
        return True
    except Exception:  # noqa: BLE001
        return False


def _resume_and_check(out: Path, rows: list, case: str) -> None:
    before = finished_uids(out)
    readable = _crashed_file_readable(out)
    r = cli("resume", str(out), "--quiet", env=child_env())
    rep = verify_campaign(out, before=before) if r.returncode == 0 else {"ok": False, "problems": [r.stderr[-300:]]}
    rows.append({"case": case, "resume_rc": r.returncode, "crashed_file_readable": readable, **{k: rep.get(k) for k in (
        "ok", "finished", "lost", "duplicated", "repeated", "hdf5_valid", "problems")}})


def kill_matrix(seeds: int, randoms: int, work: Path) -> list[dict]:
    rows: list[dict] = []
    for seed in range(seeds):
        for point in sorted(CRASH_POINTS):
            d = work / f"cp-{point}-{seed}"
            recipe = write_recipe(d, budget=BUDGET, stations=STATIONS, seed=seed)
            out = d / "out"
            died = cli("run", str(recipe), "--out", str(out), "--quiet", env=crash_env(point, HIT[point], child_env()))
            assert died.returncode == -signal.SIGKILL, (point, died.returncode)
            _resume_and_check(out, rows, f"{point}:{HIT[point]} seed {seed}")
    for seed in range(randoms):
        rng = np.random.default_rng(seed)
        d = work / f"rnd-{seed}"
        recipe = write_recipe(d, budget=BUDGET, stations=STATIONS, seed=seed, time_scale=1.0, synthesize=0.2, measure=0.1)
        out = d / "out"
        proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
        wait_for(lambda: "campaign" in ledger_kinds(out), 30, "the header")
        time.sleep(float(rng.uniform(0.0, 1.5)))
        proc.kill()
        proc.join(30)
        if proc.exitcode == 0:
            rep = verify_campaign(out)
            rows.append({"case": f"random seed {seed} (finished before the kill)", "resume_rc": None, "crashed_file_readable": True,
                         **{k: rep.get(k) for k in ("ok", "finished", "lost", "duplicated", "repeated", "hdf5_valid", "problems")}})
        else:
            _resume_and_check(out, rows, f"random seed {seed}")
    return rows


def hang_detection(work: Path) -> dict:
    from labflow import load_recipe
    from labflow.campaign import Campaign, LocalExecutor, StationRunner
    from labflow.planners import make_planner
    from labflow.testing.faults import inject_fault

    recipe = load_recipe(write_recipe(work / "hang", budget=3, stations=1, timeout="1 s"))
    lab = recipe.lab_config.build(seed=0, time_scale=0)
    inject_fault(lab.stations[0], "set", "hang")
    runners = [StationRunner(s, recipe.space, recipe.objectives, timeout=1.0) for s in lab.stations]
    ex = LocalExecutor(1)
    c = Campaign(planner=make_planner("sobol", recipe.space, recipe.objectives), runners=runners, executor=ex, budget=3)
    c.run()
    ex.close()
    lab.close()
    blocked = [r.t_finished - r.t_started for r in c.results]
    return {"timeout_s": 1.0, "blocked_s": blocked, "max_over_timeout_s": max(blocked) - 1.0, "reason": c.results[0].reason}


def sigterm_stop(work: Path) -> dict:
    recipe = write_recipe(work / "term", budget=6, time_scale=1.0, synthesize=20.0)
    out = work / "term" / "out"
    proc = start_forked("run", str(recipe), "--out", str(out), "--quiet", env=child_env())
    wait_for(lambda: ledger_kinds(out).count("started") >= 2, 60, "two in flight")
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(60)
    return {"exit_code": proc.exitcode, "seconds_to_exit": time.monotonic() - t0,
            "interrupted_records": ledger_kinds(out).count("interrupted")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--random", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labflow-rel-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        rows = kill_matrix(args.seeds, args.random, work)
        figures = {
            "kill_matrix": {
                "cases": len(rows),
                "ok": sum(bool(r["ok"]) for r in rows),
                "lost": sum(r["lost"] or 0 for r in rows),
                "duplicated": sum(r["duplicated"] or 0 for r in rows),
                "repeated": sum(r["repeated"] or 0 for r in rows),
                "max_repeated_per_crash": max((r["repeated"] or 0) for r in rows),
                "unreadable_after_resume": sum(not r["hdf5_valid"] for r in rows),
                "crashed_file_unreadable_before_resume": sum(r["crashed_file_readable"] is False for r in rows),
                "seconds": round(time.monotonic() - t0, 1),
                "failures": [r for r in rows if not r["ok"]],
            },
            "hang_detection": hang_detection(work),
            "sigterm": sigterm_stop(work),
        }
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import environment, portable

    figures = portable({**figures, "command": "python benchmarks/reliability_figures.py " + shlex.join(sys.argv[1:]),
                        "environment": environment()})
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
