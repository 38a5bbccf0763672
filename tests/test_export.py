"""`labflow export`: a research-data package whose CSV and JSON agree with the HDF5 file."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.errors import LabflowError
from labflow.export import export_campaign, parse_creator, read_experiments_csv
from labflow.store.provenance import read_campaign

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"})
    return run_recipe(recipe, tmp_path_factory.mktemp("runs"), budget=8, seed=4, executor="virtual").path


def test_round_trip_csv_and_json_match_the_hdf5_file(campaign, tmp_path):
    pkg = export_campaign(campaign, tmp_path / "pkg", creators=[parse_creator("Curie, Marie; Sorbonne; 0000-0002-1825-0097")],
                          keywords=["perovskite"])
    rec = read_campaign(campaign)
    names = {p.name for p in pkg.files}
    assert {campaign.name, "experiments.csv", "suggestions.csv", "recipe.yaml", "recipe.resolved.json", "lab.json",
            "metadata.json", "README.md"} <= names

    # the HDF5 file is copied byte for byte
    copy = read_campaign(tmp_path / "pkg" / campaign.name)
    pd.testing.assert_frame_equal(copy.experiments, rec.experiments)

    # CSV: every column, units in the header, values equal to the file's
    df, units = read_experiments_csv(tmp_path / "pkg" / "experiments.csv")
    header = (tmp_path / "pkg" / "experiments.csv").read_text().splitlines()[0]
    assert "temperature [degC]" in header and "time [min]" in header and "product_yield [percent]" in header
    assert units["temperature"] == "degC" and units["t_finished"] == "s" and "dopant_fraction" not in units
    assert {k: v for k, v in units.items()} == {k: v for k, v in rec.units.items() if v}
    assert list(df["n"]) == list(range(1, len(rec.experiments) + 1))
    for col in rec.experiments.columns:
        a, b = df[col].to_numpy(), rec.experiments[col].to_numpy()
        if rec.experiments[col].dtype.kind in "fi":
            assert np.allclose(a.astype(float), b.astype(float), equal_nan=True, rtol=0, atol=0), col
        else:
            assert list(a) == list(b), col

    # JSON: what a repository asks for, equal to the file's attributes
    meta = json.loads((tmp_path / "pkg" / "metadata.json").read_text())
    for key in ("title", "creators", "dates", "instruments", "software", "licence", "keywords", "description", "files"):
        assert meta[key], key
    assert meta["creators"] == [{"name": "Curie, Marie", "affiliation": "Sorbonne", "orcid": "0000-0002-1825-0097"}]
    assert meta["identifiers"] == {"campaign_id": rec.attrs["campaign_id"], "recipe_hash": rec.attrs["recipe_hash"]}
    assert meta["dates"]["created"].startswith(rec.attrs["created"][:19])
    assert {s["name"]: s["version"] for s in meta["software"]} == rec.versions
    assert meta["licence"] == {"id": "CC-BY-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}
    assert "perovskite" in meta["keywords"] and meta["ready_to_deposit"] is True
    c = meta["campaign"]
    assert (c["experiments"], c["completed"], c["failed"], c["seed"]) == (len(rec.experiments), len(rec.completed), len(rec.failed), 4)
    best = rec.best()
    assert c["best"]["product_yield"]["value"] == pytest.approx(best["product_yield"]["value"])
    stations = {s["station"] for s in meta["instruments"]["stations"]}
    assert stations == set(rec.experiments["station"])
    assert all(dev["readings"] for s in meta["instruments"]["stations"] for dev in s["devices"])
    for f in meta["files"]:
        data = (tmp_path / "pkg" / f["name"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest(), f["name"]
    assert (tmp_path / "pkg" / "recipe.yaml").read_text() == rec.recipe_text
    assert json.loads((tmp_path / "pkg" / "recipe.resolved.json").read_text()) == rec.recipe
    assert not any(isinstance(v, float) and math.isnan(v) for v in c.values())


def test_export_refuses_to_overwrite_and_warns_without_creators(campaign, tmp_path):
    pkg = export_campaign(campaign, tmp_path / "pkg")
    assert pkg.metadata["ready_to_deposit"] is False and any("creator" in w for w in pkg.warnings)
    with pytest.raises(LabflowError, match="not an empty folder"):
        export_campaign(campaign, tmp_path / "pkg")


def test_parse_creator():
    assert parse_creator("Doe, Jane") == {"name": "Doe, Jane"}
    assert parse_creator("Doe, Jane; https://orcid.org/0000-0001-2345-678X") == {"name": "Doe, Jane", "orcid": "0000-0001-2345-678X"}
    with pytest.raises(LabflowError):
        parse_creator(" ; MIT")


def test_cli_export(campaign, tmp_path):
    result = runner.invoke(app, ["export", str(campaign), "-o", str(tmp_path / "pkg"), "--creator", "Doe, Jane; ETH", "--licence", "CC0-1.0"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "pkg" / "metadata.json").read_text())
    assert meta["licence"]["id"] == "CC0-1.0" and meta["creators"][0]["affiliation"] == "ETH"


def test_the_package_is_an_ro_crate_describing_files_software_instruments_and_people(campaign, tmp_path):
    from rocrate.rocrate import ROCrate

    creator = parse_creator("Curie, Marie; Sorbonne; 0000-0002-1825-0097")
    pkg = export_campaign(campaign, tmp_path / "pkg", creators=[creator], keywords=["perovskite"])
    assert tmp_path / "pkg" / "ro-crate-metadata.json" in pkg.files
    crate = ROCrate(tmp_path / "pkg")  # read back with the rocrate package
    meta = pkg.metadata
    assert crate.name == meta["title"] and crate.root_dataset["identifier"] == meta["identifiers"]["campaign_id"]
    assert crate.license.id == "https://creativecommons.org/licenses/by/4.0/" and "perovskite" in crate.keywords
    # files: every file of the package, with the size and sha256 that metadata.json gives
    files = {e.id: e for e in crate.data_entities}
    assert set(files) == {f["name"] for f in meta["files"]} | {"metadata.json"}
    for f in meta["files"]:
        assert files[f["name"]]["sha256"] == f["sha256"] and int(files[f["name"]]["contentSize"]) == f["bytes"]
        assert hashlib.sha256((tmp_path / "pkg" / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert files[campaign.name]["encodingFormat"] == "application/x-hdf5"
    # people: the creator by ORCID, with the affiliation
    (person,) = crate.get_by_type("Person")
    assert person.id == "https://orcid.org/0000-0002-1825-0097" and person["name"] == "Curie, Marie"
    assert person["affiliation"]["name"] == "Sorbonne" and crate.creator == [person]
    # software: each package version the campaign ran with
    software = {e["name"]: e["version"] for e in crate.get_by_type("SoftwareApplication")}
    assert software == {s["name"]: str(s["version"]) for s in meta["software"]} and "bluesky" in software
    # instruments: one entity per device of each station that ran
    devices = {e["name"] for e in crate.get_by_type("IndividualProduct")}
    assert devices == {d["name"] for s in meta["instruments"]["stations"] for d in s["devices"]} != set()
    # the campaign: what it used, made and who ran it
    (action,) = crate.get_by_type("CreateAction")
    assert {e.id for e in action["result"]} == {campaign.name, "experiments.csv", "suggestions.csv"}
    assert {e.id for e in action["object"]} == {"recipe.yaml", "recipe.resolved.json", "lab.json"}
    assert {e["name"] for e in action["instrument"]} == set(software) | devices
    assert action["agent"] == [person] and action["startTime"] == meta["dates"]["created"]
