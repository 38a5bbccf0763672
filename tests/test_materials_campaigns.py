"""Recipes for real materials campaigns: constraints with units, several objectives, sample faults,
fidelities routed to stations with costs, prior data, fallbacks -- on the simulated lab, end to end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from labflow import load_recipe
from labflow.cli import app
from labflow.errors import RecipeError
from labflow.launch import build_planner, restore_planner, run_recipe
from labflow.space import SumConstraint
from labflow.store import read_campaign
from labflow.store.campaign_dir import find_campaign_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
# A light acquisition search: these tests check the plumbing, not the optimizer.
FAST = {"num_restarts": 1, "raw_samples": 32, "mc_samples": 32, "maxiter": 20}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fast(recipe, **planner):
    spec = recipe.to_dict()["planner"]
    spec["options"] = {**spec["options"], **FAST}
    spec.update(planner)
    return recipe.replace(planner=spec)


def run(recipe, out, **kw):
    return run_recipe(recipe, out, handle_signals=False, **kw)


def problems_of(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return {str(p) for p in info.value.problems}


PEROVSKITE = """
name: p
lab: {lab}
parameters:
  - {{name: cs_fraction, low: 0, high: 0.5}}
  - {{name: ma_fraction, low: 0, high: 1}}
  - {{name: fa_fraction, low: 0, high: 1}}
  - {{name: solvent, type: categorical, choices: [DMF, DMSO]}}
  - {{name: anneal_temperature, low: 60 degC, high: 200 degC}}
objectives:
  - {{name: efficiency, unit: percent}}
budget: 4
"""


def perovskite(extra: str) -> str:
    return PEROVSKITE.format(lab=ROOT / "configs" / "sim_perovskite.yaml") + textwrap.dedent(extra)


# -- recipe schema ----------------------------------------------------------------------------
def test_constraints_carry_units_into_the_space(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(perovskite("""
        constraints:
          - {parameters: [cs_fraction, ma_fraction, fa_fraction], total: 100 percent}
          - {type: linear, terms: {cs_fraction: 1, ma_fraction: 1}, op: "<=", rhs: 60 percent}
    """))
    space = load_recipe(path).space
    total, limit = space.constraints
    assert total == SumConstraint(("cs_fraction", "ma_fraction", "fa_fraction"), 1.0)  # 100 percent of fractions is 1
    assert limit.as_linear().rhs == pytest.approx(0.6) and limit.op == "<="
    # the shipped recipe speaks percent: its total is 100 in the parameters' own unit
    shipped = load_recipe(RECIPES / "perovskite_composition.yaml").space
    assert shipped.constraints[0].total == pytest.approx(100.0)


def test_constraint_problems_are_reported_with_paths(tmp_path):
    found = problems_of(tmp_path, perovskite("""
        constraints:
          - {parameters: [cs_fraction, ma_fraction, nope], total: 1}
          - {parameters: [cs_fraction, solvent], total: 1}
          - {parameters: [cs_fraction, ma_fraction], total: 3}
          - {type: linear, terms: {anneal_temperature: 1}, op: "<=", rhs: 300 K}
          - {type: linear, terms: {cs_fraction: 1}, rhs: 2 m}
    """))
    assert any(p.startswith("constraints.0.parameters: no parameter 'nope'") for p in found), found
    assert "constraints.1.parameters: solvent is categorical; constraints apply to real parameters" in found
    assert any(p.startswith("constraints.2.total: cannot be met within the parameters' bounds") for p in found), found
    assert any(p.startswith("constraints.3.rhs: ") and "offset unit" in p for p in found), found
    assert any(p.startswith("constraints.4.rhs: ") for p in found), found


def test_constraints_that_cannot_hold_together_are_refused(tmp_path):
    found = problems_of(tmp_path, perovskite("""
        constraints:
          - {parameters: [cs_fraction, ma_fraction, fa_fraction], total: 1}
          - {type: linear, terms: {ma_fraction: 1, fa_fraction: 1}, op: "<=", rhs: 0.4}
    """))
    assert any(p.startswith("constraints: the constraints leave no feasible point") for p in found), found


def test_fidelities_must_fit_the_planner_and_the_lab(tmp_path):
    base = (RECIPES / "multifidelity.yaml").read_text().replace("lab: sim_multifidelity", f"lab: {ROOT / 'configs' / 'sim_multifidelity.yaml'}")
    found = problems_of(tmp_path, base.replace("kind: multifidelity", "kind: bayesian"))
    assert any(p.startswith("planner.kind: 2 fidelities need kind 'multifidelity'") for p in found), found
    found = problems_of(tmp_path, base.replace("stations: [experiment]", "stations: [furnace]"))
    assert any(p.startswith("fidelities.1.stations: the lab has no station or station set 'furnace'") for p in found), found
    found = problems_of(tmp_path, base.replace("stations: [experiment]", "stations: [simulation1]"))
    assert "fidelities.1.stations: station simulation1 already measures at fidelity 'simulation'" in found
    found = problems_of(tmp_path, base.replace(", stations: [experiment]", "").replace("cost: 1,", "cost: -1,"))
    assert "fidelities.1.stations: required with several fidelities: which stations measure at this fidelity" in found
    assert any(p.startswith("fidelities.0.cost: a cost must be a positive number") for p in found), found


def test_prior_data_and_failure_patterns_are_checked(tmp_path):
    found = problems_of(tmp_path, perovskite("""
        prior_data: [missing.csv]
        failures: {sample_faults: ["(unclosed"]}
    """))
    assert any(p.startswith("failures.sample_faults: ") and "not a regular expression" in p for p in found), found
    found = problems_of(tmp_path, perovskite("prior_data: [missing.csv]\n"))
    assert any(p.startswith("prior_data.0.path: ") and "does not exist" in p for p in found), found
    (tmp_path / "bad.csv").write_text("cs_fraction,efficiency\n0.1,3\n")
    found = problems_of(tmp_path, perovskite("prior_data: [bad.csv]\n"))
    assert any(p.startswith("prior_data.0.path: bad.csv: observations lack parameter columns") for p in found), found


def test_thresholds_are_the_planners_reference_point():
    recipe = load_recipe(RECIPES / "thin_film_two_objectives.yaml")
    planner = build_planner(recipe)
    assert planner.reference_point() == {"conductivity": 100.0, "transparency": 70.0}


def test_station_sets_in_a_lab_config_are_checked(tmp_path):
    from labflow.lab import parse_lab_config

    with pytest.raises(RecipeError) as info:
        parse_lab_config({"name": "x", "kind": "simulated", "stations": 5, "landscape": {"name": "materials_mf"},
                          "station_sets": [{"name": "a", "options": {"fidelity": "dream"}}, {"name": "a", "noise_std": {"nope": 1}}]})
    found = {str(p) for p in info.value.problems}
    assert "stations: with station_sets, stations is their total (2): leave it out" in found
    assert "station_sets: set names used more than once: ['a']" in found
    assert any(p.startswith("station_sets.0.options: ") for p in found), found
    assert any(p.startswith("station_sets.1.noise_std.nope: unknown output") for p in found), found


# -- end to end on the simulated lab -------------------------------------------------------------
def test_perovskite_recipe_keeps_to_its_constraints_and_starts_from_prior_data(tmp_path):
    recipe = fast(load_recipe(RECIPES / "perovskite_composition.yaml")).replace(budget=2)
    outcome = run(recipe, tmp_path)
    rec = read_campaign(outcome.path)
    exp = rec.experiments
    assert len(exp) == 2 and set(exp["solvent"]) <= {"DMF", "DMSO", "GBL"}
    # every suggestion satisfies sum == 100 percent and cs + ma <= 60 percent, to 1e-6 of the scale
    assert recipe.space.feasible(exp[recipe.space.names]).all()
    np.testing.assert_allclose(exp[["cs_fraction", "ma_fraction", "fa_fraction"]].sum(axis=1), 100.0, atol=1e-4 * 250)
    # prior data: in /prior, not among the experiments; the planner saw it before its first suggestion
    assert len(rec.prior) == 6 and set(rec.prior["uid"]).isdisjoint(set(exp["uid"]))
    assert rec.prior["sample_fault"].sum() == 1 and set(rec.prior["source"]) == {"perovskite_prior.csv"}
    assert rec.suggestions["n_observations"].iloc[0] == 6
    assert rec.summary()["prior_observations"] == 6
    with h5py.File(outcome.path, "r") as f:
        (source,) = json.loads(f["prior"].attrs["sources"])
        assert source["rows"] == 6 and len(source["sha256"]) == 64
    # a resume replays the prior observations from the ledger header, not from the file
    history = find_campaign_dir(outcome.campaign_dir).history()
    assert len(history.header["prior"]) == 6
    fresh = build_planner(recipe)
    restore_planner(fresh, history)
    assert fresh.n_observations == 6 + 2


def test_sample_faults_teach_the_planner_and_do_not_exhaust_the_failure_budget(tmp_path):
    (tmp_path / "lab.yaml").write_text(textwrap.dedent("""
        name: cracking
        kind: simulated
        stations: 2
        landscape: {name: thin_film, options: {crack_limit: 2000}}   # nearly every film cracks
    """))
    (tmp_path / "r.yaml").write_text((RECIPES / "thin_film_two_objectives.yaml").read_text().replace("lab: sim_thin_film", "lab: lab.yaml"))
    recipe = load_recipe(tmp_path / "r.yaml").replace(budget=8, planner={"kind": "sobol"})
    rec = read_campaign(run(recipe, tmp_path / "out").path)  # > 50 % failed, yet no FailureRateExceeded
    failed = rec.experiments[rec.experiments["status"] == "failed"]
    assert len(failed) >= 5 and (failed["sample_fault"] == 1).all() and (failed["attempts"] == 1).all()
    assert failed["reason"].str.contains("cracked").all()
    assert rec.summary()["sample_faults"] == len(failed)
    # what the planner was told (the ledger's observations) carries the flag
    history = find_campaign_dir(rec.path.with_suffix(".labflow")).history()
    assert sum(r["obs"]["sample_fault"] for r in history.finished) == len(failed)


def test_instrument_faults_are_not_sample_faults_unless_the_recipe_says_so(tmp_path):
    (tmp_path / "lab.yaml").write_text("name: flaky\nkind: simulated\nstations: 2\nlandscape: {name: branin}\nfailure_rate: 0.4\n")
    text = textwrap.dedent("""
        name: flaky
        lab: lab.yaml
        parameters: [{name: x1, low: -5, high: 10}, {name: x2, low: 0, high: 15}]
        objectives: [{name: y, direction: minimize}]
        planner: {kind: sobol}
        budget: 8
        execution: {executor: virtual}
    """)
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text + "failures: {sample_faults: ['simulated instrument fault']}\n")
    a = read_campaign(run(load_recipe(tmp_path / "a.yaml"), tmp_path / "a").path).experiments
    b = read_campaign(run(load_recipe(tmp_path / "b.yaml"), tmp_path / "b").path).experiments
    assert (a["status"] == "failed").any() and (a["sample_fault"] == 0).all()
    assert ((b["status"] == "failed") == (b["sample_fault"] == 1)).all() and (b["sample_fault"] == 1).any()


def test_two_objective_recipe_records_the_pareto_front_and_hypervolume(tmp_path):
    from labflow.planners.pareto import hypervolume, pareto_mask

    recipe = load_recipe(RECIPES / "thin_film_two_objectives.yaml").replace(budget=10, planner={"kind": "sobol", "batch": 2})
    outcome = run(recipe, tmp_path)
    rec = read_campaign(outcome.path)
    exp = rec.experiments
    assert exp["layers"].dtype.kind == "i" and set(exp["atmosphere"]) <= {"air", "argon", "forming_gas"}  # integer and categorical inputs
    done = exp[exp["status"] == "completed"]
    Y = done[["conductivity", "transparency"]].to_numpy()
    expected = hypervolume(Y, np.array([100.0, 70.0]))
    summary = rec.summary()
    assert summary["hypervolume"] == pytest.approx(expected) and summary["reference_point"] == {"conductivity": 100.0, "transparency": 70.0}
    assert {r["uid"] for r in summary["pareto_front"]} == set(done["uid"][pareto_mask(Y)])
    # per experiment, as the campaign ran (thresholds fixed: the same reference point), and stored at the end
    assert exp["hypervolume"].iloc[-1] == pytest.approx(expected)
    assert (np.diff(exp["hypervolume"].to_numpy()) >= -1e-9).all()
    with h5py.File(outcome.path, "r") as f:
        assert f["pareto"].attrs["hypervolume"] == pytest.approx(expected) and f["pareto"].attrs["reference"] == "thresholds"
        assert len(f["pareto/hypervolume_trace"]) == len(exp) and len(f["pareto/front"]) == len(summary["pareto_front"])
    result = CliRunner().invoke(app, ["inspect", "--json", str(outcome.path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("campaign", "experiments", "completed", "failed", "best", "recipe", "versions", "pareto_front", "hypervolume"):
        assert key in data
    assert data["hypervolume"] == pytest.approx(expected)
    text = CliRunner().invoke(app, ["inspect", str(outcome.path)]).output
    assert "hypervolume" in text and "Pareto front" in text


def test_multifidelity_recipe_routes_each_fidelity_to_its_stations_and_counts_the_cost(tmp_path):
    recipe = fast(load_recipe(RECIPES / "multifidelity.yaml")).replace(budget=8)
    outcome = run(recipe, tmp_path)
    rec = read_campaign(outcome.path)
    exp = rec.experiments
    sim, real = exp[exp["fidelity"] == "simulation"], exp[exp["fidelity"] == "experiment"]
    assert len(sim) and len(real) and len(sim) + len(real) == 8
    assert set(sim["station"]) <= {"simulation1", "simulation2"} and set(real["station"]) == {"experiment1"}
    assert (sim["cost"] == 1.0).all() and (real["cost"] == 10.0).all()
    cost = rec.summary()["cost"]
    assert cost == {"simulation": float(len(sim)), "experiment": 10.0 * len(real), "total": len(sim) + 10.0 * len(real)}
    assert rec.summary()["best"]["fidelity"]["value"] == "experiment"  # the best counts at the target fidelity only
    with h5py.File(outcome.path, "r") as f:  # each run says which fidelity it measured
        for run_uid, fid in zip(exp["run_uids"], exp["fidelity"]):
            assert json.loads(f[f"runs/{run_uid}"].attrs["start"])["fidelity"] == fid


def test_a_simulation_station_never_idles_while_a_target_fidelity_candidate_waits_for_the_busy_experiment_station(tmp_path):
    recipe = fast(load_recipe(RECIPES / "multifidelity.yaml"))
    spec = recipe.to_dict()["planner"]
    spec["options"] = {**spec["options"], "idle_stations": "fill"}  # opt-in (decision 0009)
    recipe = recipe.replace(planner=spec, budget={"experiments": 24, "cost": 200})
    outcome = run(recipe, tmp_path)  # virtual time: the simulated lab's durations, no waiting
    rec = read_campaign(outcome.path)
    exp = rec.experiments.sort_values("t_started")
    assert len(exp) == 24 and set(exp["fidelity"]) == {"simulation", "experiment"}
    # every candidate ran at a station of its own fidelity
    assert set(exp.loc[exp["fidelity"] == "simulation", "station"]) <= {"simulation1", "simulation2"}
    assert set(exp.loc[exp["fidelity"] == "experiment", "station"]) == {"experiment1"}
    last_asked = float(exp["t_suggested"].max())  # after it the whole budget is asked for: nothing new to start
    real = exp[exp["station"] == "experiment1"]
    assert len(real) >= 2
    for station in ("simulation1", "simulation2"):
        runs = exp[exp["station"] == station]
        busy_until = [0.0, *runs["t_finished"]]  # idle from each finish (or the start) to the next start
        idle_from_to = list(zip(busy_until, [*runs["t_started"], last_asked]))
        for t0, t1 in idle_from_to:
            overlap = [(a, b) for a, b in zip(real["t_started"], real["t_finished"]) if min(b, t1) - max(a, t0) > 1e-6]
            assert not overlap, f"{station} idle from {t0:.0f} s to {t1:.0f} s while the experiment station ran {overlap}"
    # each run is a ledgered suggestion, and the suggestions made for a free simulation station say so
    assert set(exp["suggestion"]) <= set(range(len(rec.suggestions)))
    given = [json.loads(d).get("fidelity_given") for d in rec.suggestions["decision"]]
    assert "simulation" in given and "experiment" not in given
    cost = rec.summary()["cost"]
    assert cost["total"] == pytest.approx(exp["cost"].sum()) and cost["total"] <= 200


def test_with_idle_stations_worth_a_free_simulation_station_gets_work_only_where_the_handover_rule_prefers_simulation(tmp_path):
    recipe = fast(load_recipe(RECIPES / "multifidelity.yaml"))
    spec = recipe.to_dict()["planner"]
    spec["options"] = {**spec["options"], "idle_stations": "worth"}
    recipe = recipe.replace(planner=spec, budget={"experiments": 20, "cost": 120})
    rec = read_campaign(run(recipe, tmp_path).path)
    decisions = [json.loads(d) for d in rec.suggestions["decision"]]
    given = [d for d in decisions if d.get("fidelity_given")]
    assert given, "no free simulation station was ever offered work"
    for d in given:  # each one the planner kept is where simulation tells most about the target per unit cost
        assert d["fidelity_given"] == "simulation"
        for info in d.get("information_per_cost", []):
            assert max(info, key=info.get) == "simulation", info
    assert rec.summary()["cost"]["total"] <= 120


def test_a_failing_model_falls_back_and_the_record_says_so(tmp_path, monkeypatch):
    from labflow.planners.bayesian import BayesianPlanner

    def broken(self):
        raise RuntimeError("the GP refused to fit")

    monkeypatch.setattr(BayesianPlanner, "_fit", broken)
    recipe = load_recipe(RECIPES / "branin.yaml").replace(budget=6, planner={"kind": "bayesian", "options": {"n_initial": 3}},
                                                           execution={"executor": "virtual"})
    rec = read_campaign(run(recipe, tmp_path).path)
    sug = rec.suggestions
    assert list(sug["fallback"]) == [0, 0, 0, 1, 1, 1]
    decision = json.loads(sug["decision"].iloc[-1])
    assert decision["generator"] == "fallback" and "the GP refused to fit" in decision["reason"]
    assert (rec.experiments["generator"].iloc[3:] == "fallback").all() and rec.summary()["fallbacks"] == 3
    space = recipe.space
    assert all(space[n].contains(v) for n in space.names for v in rec.experiments[n])  # in bounds


@pytest.mark.parametrize("name", ["perovskite_composition", "multifidelity"])
def test_a_stopped_campaign_resumes_with_its_prior_data_routes_and_costs(tmp_path, monkeypatch, name):
    import labflow.launch
    from labflow.campaign import Campaign
    from labflow.errors import CampaignInterrupted
    from labflow.launch import resume_campaign

    class StopsAfterThree(Campaign):
        def _emit(self, event):
            super()._emit(event)
            if event == "finished" and self.state.finished == 3:
                self.request_stop("test", defer=False)

    recipe = load_recipe(RECIPES / f"{name}.yaml")
    recipe = recipe.replace(budget=6, planner={**recipe.to_dict()["planner"], "options": {"n_initial": 8, **FAST}})
    monkeypatch.setattr(labflow.launch, "Campaign", StopsAfterThree)
    with pytest.raises(CampaignInterrupted):
        run(recipe, tmp_path)
    monkeypatch.setattr(labflow.launch, "Campaign", Campaign)
    outcome = resume_campaign(tmp_path, handle_signals=False)
    rec = read_campaign(outcome.path)
    assert len(rec.experiments) == 6 and rec.experiments["uid"].is_unique
    if name == "perovskite_composition":
        assert len(rec.prior) == 6 and rec.summary()["prior_observations"] == 6
        assert recipe.space.feasible(rec.experiments[recipe.space.names]).all()
    else:
        exp = rec.experiments
        assert set(exp.loc[exp["fidelity"] == "experiment", "station"]) <= {"experiment1"}
        assert rec.summary()["cost"]["total"] == pytest.approx(exp["cost"].sum())
