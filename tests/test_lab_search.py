"""A recipe names its lab (``lab: sim_materials``) and labflow finds it from anywhere: beside the
recipe, in the project's configs/, in LABFLOW_LABS, or among the labs packaged with labflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.lab import LabNotFoundError, available_labs, find_lab_config, lab_search_path, packaged_labs_folder
from labflow.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _labflow(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command, as a user types it in a shell (a fresh process, its own working directory)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "labflow.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_cd_recipes_then_validate_quickstart_finds_the_lab():
    result = _labflow("validate", "quickstart.yaml", cwd=ROOT / "recipes")
    assert result.returncode == 0, result.stderr
    assert "ok quickstart.yaml" in result.stdout
    assert "Warning" not in result.stderr  # no torch FutureWarning (or any other) on a plain command


def test_a_shipped_recipe_copied_into_my_own_folder_validates_with_the_packaged_lab(tmp_path, monkeypatch):
    mine = tmp_path / "my-project"
    mine.mkdir()
    for name in ("quickstart.yaml", "branin.yaml", "thin_film_two_objectives.yaml"):
        shutil.copy(ROOT / "recipes" / name, mine / name)
    monkeypatch.chdir(tmp_path)
    for name in ("quickstart.yaml", "branin.yaml", "thin_film_two_objectives.yaml"):
        result = runner.invoke(app, ["validate", str(Path("my-project") / name)])
        assert result.exit_code == 0, result.output
    recipe = load_recipe(mine / "quickstart.yaml")
    assert recipe.lab_path == (packaged_labs_folder() / "sim_materials.yaml").resolve()


def test_every_simulated_lab_ships_inside_the_package():
    packaged = {p.stem for p in packaged_labs_folder().glob("*.yaml")}
    assert {"sim_materials", "sim_branin", "sim_hartmann6", "sim_multifidelity", "sim_perovskite", "sim_thin_film"} <= packaged
    # the repository's configs/sim_*.yaml are the same files, not copies that could drift apart
    for p in (ROOT / "configs").glob("sim_*.yaml"):
        assert p.resolve() == (packaged_labs_folder() / p.name).resolve()


def test_the_search_order_is_beside_the_recipe_then_project_configs_then_labflow_labs_then_packaged(tmp_path, monkeypatch):
    lab_text = (packaged_labs_folder() / "sim_materials.yaml").read_text()
    project = tmp_path / "project"
    (project / "recipes" / "deep").mkdir(parents=True)
    extra = tmp_path / "shared-labs"
    extra.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABFLOW_LABS", str(extra))
    recipe_dir = project / "recipes" / "deep"

    assert find_lab_config("sim_materials", recipe_dir) == (packaged_labs_folder() / "sim_materials.yaml").resolve()
    (extra / "sim_materials.yaml").write_text(lab_text)
    assert find_lab_config("sim_materials", recipe_dir) == (extra / "sim_materials.yaml").resolve()
    (project / "configs").mkdir()
    (project / "configs" / "sim_materials.yaml").write_text(lab_text)
    assert find_lab_config("sim_materials", recipe_dir) == (project / "configs" / "sim_materials.yaml").resolve()
    (recipe_dir / "sim_materials.yaml").write_text(lab_text)
    assert find_lab_config("sim_materials", recipe_dir) == (recipe_dir / "sim_materials.yaml").resolve()
    origins = [p.origin for p in lab_search_path(recipe_dir)]
    assert origins == ["beside the recipe", "project configs/", "LABFLOW_LABS", "packaged with labflow"]


def test_a_path_is_relative_to_the_recipes_real_location_even_through_a_symlink(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "labs").mkdir(parents=True)
    shutil.copy(packaged_labs_folder() / "sim_branin.yaml", real / "labs" / "mine.yaml")
    text = (ROOT / "recipes" / "branin.yaml").read_text().replace("lab: sim_branin", "lab: labs/mine.yaml")
    (real / "branin.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "branin.yaml").symlink_to(real / "branin.yaml")
    monkeypatch.chdir(elsewhere)
    assert load_recipe("branin.yaml").lab_path == (real / "labs" / "mine.yaml").resolve()


def test_an_unknown_lab_lists_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABFLOW_LABS", str(tmp_path / "team-labs"))
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("lab: sim_materials", "lab: sim_materails")
    (tmp_path / "r.yaml").write_text(text)
    result = runner.invoke(app, ["validate", "r.yaml"])
    assert result.exit_code == 2
    assert "lab config 'sim_materails' not found; searched, in order:" in result.output
    for place in (tmp_path / "sim_materails.yaml", tmp_path / "team-labs" / "sim_materails.yaml",
                  packaged_labs_folder() / "sim_materails.yaml"):
        assert str(place.resolve()) in result.output
    assert "hint: `labflow labs` lists the labs" in result.output
    with pytest.raises(LabNotFoundError) as info:
        find_lab_config("sim_materails", tmp_path)
    assert [origin for _, origin in info.value.searched] == ["beside the recipe", "LABFLOW_LABS", "packaged with labflow"]


def test_labflow_labs_lists_what_a_recipe_can_name_and_where_each_comes_from(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    shutil.copy(packaged_labs_folder() / "sim_branin.yaml", tmp_path / "configs" / "sim_branin.yaml")
    shutil.copy(packaged_labs_folder() / "sim_branin.yaml", tmp_path / "configs" / "my_bench.yaml")
    (tmp_path / "configs" / "notes.yaml").write_text("just: a note\n")  # not a lab: no kind
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["labs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["my_bench", "project", "configs/"] for line in lines)
    assert any(line.split()[:2] == ["sim_materials", "packaged"] for line in lines)
    assert any(line.split()[0] == "sim_branin" and "hidden by" in line for line in lines)
    assert not any("notes" in line for line in lines)
    names = [(lab.name, lab.origin) for lab in available_labs()]
    assert names.index(("sim_branin", "project configs/")) < names.index(("sim_branin", "packaged with labflow"))
