"""Code in the README and docs runs, so it cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "__docs__"}
    for block in python_blocks(path):
        exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs


# -- the docs stay true to the code they describe ------------------------------------------------
import shlex  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

# Pages other engineers are writing, linked from the docs' index before they land. Remove an entry
# once its page exists (the test then checks the link like any other).
PENDING_PAGES: set[str] = set()


def _all_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_relative_links_point_to_files_that_exist():
    broken = []
    for path in _all_docs():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
            if not resolved.exists() and rel not in PENDING_PAGES:
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def _labflow_command_lines() -> list[tuple[Path, list[str]]]:
    out = []
    for path in _all_docs():
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                words = shlex.split(line) if line else []
                if words and words[0].endswith("labflow") and len(words) > 1 and not words[1].startswith("-"):
                    out.append((path, words[1:]))
    return out


def test_every_labflow_command_in_the_docs_exists_with_its_options():
    from labflow.cli import app

    runner = CliRunner()
    problems = []
    for path, words in _labflow_command_lines():
        result = runner.invoke(app, [words[0], "--help"], terminal_width=200)
        if result.exit_code != 0:
            problems.append(f"{path.relative_to(ROOT)}: no command 'labflow {words[0]}'")
            continue
        help_text = result.output
        for w in words[1:]:
            option = w.split("=")[0]
            if option.startswith("-") and option not in help_text:
                problems.append(f"{path.relative_to(ROOT)}: 'labflow {words[0]}' has no option {option}")
    assert not problems, problems


def test_the_cli_reference_lists_every_command():
    from labflow.cli import app

    text = (ROOT / "docs" / "reference" / "cli.md").read_text()
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    commands = re.findall(r"^│ (\w[\w-]*)\s{2,}", result.output, flags=re.M)
    assert commands, result.output
    missing = [c for c in commands if f"`labflow {c}" not in text]
    assert not missing, f"docs/reference/cli.md does not describe {missing}"


def test_the_recipe_reference_lists_every_schema_field():
    from labflow.schema import recipe_schema

    text = (ROOT / "docs" / "reference" / "recipe.md").read_text()
    schema = recipe_schema()
    fields = set(schema["properties"])
    for sub in schema["$defs"].values():
        fields |= set(sub.get("properties", {}))
    missing = sorted(f for f in fields if f"`{f}`" not in text)
    assert not missing, f"docs/reference/recipe.md does not describe {missing}"


def test_the_report_and_export_references_list_every_figure_and_field(tmp_path):
    from labflow.export import build_metadata
    from labflow.report import FIGURES

    report = (ROOT / "docs" / "reference" / "report.md").read_text()
    assert [f for f in FIGURES if f"`{f}.png`" not in report] == []
    export = (ROOT / "docs" / "reference" / "export.md").read_text()
    fields = {"schema", "title", "description", "creators", "resource_type", "dates", "licence", "keywords",
              "identifiers", "instruments", "software", "exported_with", "campaign", "ready_to_deposit", "files"}
    assert [f for f in fields if f"`{f}`" not in export] == []
    # ... and they are exactly the names build_metadata writes (export_campaign adds "files")
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe
    from labflow.store.provenance import read_campaign

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"})
    path = run_recipe(recipe, tmp_path, budget=2, executor="virtual").path
    assert set(build_metadata(read_campaign(path))) | {"files"} == fields
