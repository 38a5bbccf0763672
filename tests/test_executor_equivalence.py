"""One attempt rule for every executor: the same faulty campaign gives the same records under
the local, virtual and Prefect executors.

The campaign: the simulated perovskite lab (one station, so the order of experiments and the
draws of the seeded simulator are the same everywhere) with instrument faults injected at random
(``failure_rate``) and films that do not form (sample faults, from the landscape), ``retries: 2``.
Instrument faults are retried; sample faults never are. Real Prefect (the ephemeral test server),
the real RunEngine, no mocks.
"""

from __future__ import annotations

import re
import textwrap

from labflow import load_recipe
from labflow.executors import executor_names
from labflow.launch import run_recipe
from labflow.store import read_campaign
from labflow.store.campaign_dir import find_campaign_dir

SAMPLE_FAULT = re.compile("did not form|decomposed")

LAB = """
name: perovskite-faulty
kind: simulated
stations: 1
landscape: {name: perovskite}
durations: {set: 1 s, synthesize: 10 min, measure: 2 min, synthesize_from: null}
time_scale: 0
failure_rate: 0.3
"""

RECIPE = """
name: equivalence
lab: lab.yaml
parameters:
  - {name: cs_fraction, low: 0 percent, high: 50 percent}
  - {name: ma_fraction, low: 0 percent, high: 100 percent}
  - {name: fa_fraction, low: 0 percent, high: 100 percent}
  - {name: solvent, type: categorical, choices: [DMF, DMSO, GBL]}
  - {name: anneal_temperature, low: 60 degC, high: 200 degC}
constraints:
  - {type: sum, parameters: [cs_fraction, ma_fraction, fa_fraction], total: 100 percent}
objectives:
  - {name: efficiency, direction: maximize, unit: percent}
planner: {kind: random}
failures:
  sample_faults: ["did not form", "decomposed"]
budget: 14
seed: 3
execution: {executor: local, retries: 2, timeout: 30 s}
"""


def _records(path) -> list[tuple]:
    """Per experiment, in order: parameters, status, attempts, reason, sample fault, abandoned,
    number of bluesky runs, and the reason of every failed attempt (from the ledger)."""
    rows = read_campaign(path).experiments
    attempt_reasons = {r["uid"]: tuple(r["reasons"]) for r in find_campaign_dir(path).history().finished}
    assert len(rows) == 14
    out = []
    for _, row in rows.iterrows():
        params = tuple(round(float(row[p]), 9) if not isinstance(row[p], str) else row[p]
                       for p in ("cs_fraction", "ma_fraction", "fa_fraction", "solvent", "anneal_temperature"))
        out.append((params, row["status"], int(row["attempts"]), row["reason"], int(row["sample_fault"]),
                    int(row["abandoned"]), len([u for u in str(row["run_uids"]).split(",") if u]), attempt_reasons[row["uid"]]))
    return out


def test_the_same_faulty_campaign_gives_the_same_records_under_every_executor(tmp_path, prefect_server):
    assert {"local", "virtual", "prefect"} <= set(executor_names())
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(LAB))
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(RECIPE))
    recipe = load_recipe(tmp_path / "recipe.yaml")
    records = {}
    for executor in ("local", "virtual", "prefect"):
        outcome = run_recipe(recipe, tmp_path / executor, executor=executor, handle_signals=False)
        records[executor] = _records(outcome.path)

    local = records["local"]
    sample_faults = [r for r in local if r[4]]
    retried = [r for r in local if not r[4] and r[2] > 1]
    # The campaign exercises the rule: films that did not form, and instrument faults retried.
    assert sample_faults and retried, local
    for r in local:
        reasons = r[7]
        assert not any(SAMPLE_FAULT.search(x) for x in reasons[:-1]), f"a sample fault was retried: {reasons}"
        assert r[6] == r[2], "one bluesky run per attempt"
        if r[1] == "failed":
            assert len(reasons) == r[2] and reasons[-1] == r[3]
    assert any(r[4] and r[2] == 1 for r in local)
    assert records["virtual"] == local
    assert records["prefect"] == local
