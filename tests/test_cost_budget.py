"""A multi-fidelity campaign with a cost budget stops at the budget, not at a count of experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labflow.errors import RecipeError
from labflow.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_the_multifidelity_cost_budget_stops_the_campaign_at_the_budget(tmp_path):
    from labflow.launch import run_recipe
    from labflow.store.provenance import read_campaign

    recipe = load_recipe(ROOT / "recipes" / "multifidelity.yaml")
    recipe = recipe.replace(budget={"experiments": 40, "cost": 25})
    assert recipe.budget == 40 and recipe.cost_budget == 25.0
    outcome = run_recipe(recipe, tmp_path, executor="virtual")
    record = read_campaign(outcome.path)
    spent = float(np.nansum(record.experiments["cost"].to_numpy(dtype=float)))
    assert spent <= 25.0
    assert len(record.experiments) < 40
    assert spent + 10 > 25.0  # it stopped because the next experiment did not fit, not earlier
    assert "cost budget 25 reached" in outcome.state.stop_reason


def test_budget_n_on_the_command_line_keeps_the_recipes_cost_budget():
    recipe = load_recipe(ROOT / "recipes" / "multifidelity.yaml").replace(budget={"experiments": 40, "cost": 200})
    assert recipe.replace(budget=12).cost_budget == 200.0 and recipe.replace(budget=12).budget == 12


def test_a_cost_budget_without_fidelity_costs_is_refused():
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    with pytest.raises(RecipeError) as err:
        recipe.replace(budget={"cost": 200})
    assert any(p.path == "budget.cost" and "needs the fidelities' costs" in p.message for p in err.value.problems)
