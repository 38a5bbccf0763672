"""A campaign whose output goes to a file (``nohup labflow run ... > campaign.log``, a CI job)
shows each experiment in the log as it finishes, not only at the end. Slow: a real process in
real (scaled) time; run with ``pytest -m slow tests/reliability`` or ``LABFLOW_SLOW=1``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_with_output_sent_to_a_file_shows_each_experiment_as_it_finishes(tmp_path):
    log = tmp_path / "campaign.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(log, "w") as out:  # as `nohup labflow run ... > campaign.log` or a CI job does
        proc = subprocess.Popen([sys.executable, "-W", "default", "-m", "labflow.cli", "run", str(ROOT / "recipes" / "quickstart.yaml"),
                                 "--executor", "local", "--budget", "3", "--time-scale", "0.001", "--out", str(tmp_path / "runs")],
                                stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        seen_while_running = False
        while proc.poll() is None:
            if "[1/3] " in log.read_text():
                seen_while_running = True
            time.sleep(0.2)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr
    assert seen_while_running, "nothing was written to the log until the campaign ended"
    text = log.read_text()
    lines = text.splitlines()
    assert lines[0] == "campaign quickstart: 3 experiments"
    progress = [line for line in lines if re.match(r"^\[\d/3\] station\d completed: temperature=", line)]
    assert len(progress) == 3 and progress[-1].startswith("[3/3]") and "3 ok, 0 failed" in progress[-1]
    assert "campaign quickstart finished: 3 completed, 0 failed of 3" in text
    assert "\x1b[" not in text and "last 5 results" not in text  # no redrawn live view, no escape codes in the log
    assert "FutureWarning" not in stderr
