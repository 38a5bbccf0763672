"""``ro-crate-metadata.json`` for an exported campaign: the package as an RO-Crate (1.1+).

Research-data platforms and workflow registries (WorkflowHub, Zenodo's RO-Crate import,
institutional repositories) read RO-Crate, a JSON-LD description of a folder built on
schema.org. :func:`write_ro_crate` describes the folder :func:`labflow.export.export_campaign`
wrote, with the ``rocrate`` package:

* the root ``Dataset``: name, description, licence, keywords, dates, the campaign id;
* one ``File`` per file (encoding format, size, sha256, what it is);
* the ``Person`` entities of the creators (an ORCID as their ``@id`` when given) and their
  ``Organization``;
* one ``SoftwareApplication`` per package version the campaign ran with (labflow, bluesky,
  ophyd, botorch, ...);
* the instruments: one ``IndividualProduct`` per station device, with the readings it gave;
* a ``CreateAction``, the campaign itself: its ``instrument`` (the software and the devices),
  its ``object`` (the recipe and the lab config), its ``result`` (the data files), its
  ``agent`` (the creators), start and end times.

The flat ``metadata.json`` stays beside it for tools that want plain fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["RO_CRATE_FILE", "write_ro_crate"]

RO_CRATE_FILE = "ro-crate-metadata.json"
FORMATS = {
    ".h5": ("application/x-hdf5", "https://www.nexusformat.org/"),
    ".csv": ("text/csv", None),
    ".json": ("application/json", None),
    ".yaml": ("application/yaml", None),
    ".md": ("text/markdown", None),
}
DATA_FILES = (".h5", ".csv")
INPUT_FILES = ("recipe.yaml", "recipe.resolved.json", "lab.json")


def write_ro_crate(directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``ro-crate-metadata.json`` into ``directory`` (an export package) from its
    ``metadata.json`` content ``meta`` (files, creators, software, instruments, campaign);
    returns its path."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.model.person import Person
    from rocrate.rocrate import ROCrate

    out = Path(directory)
    crate = ROCrate()
    campaign = meta["campaign"]
    crate.name = meta["title"]
    crate.description = meta["description"]
    crate.keywords = list(meta["keywords"])
    crate.datePublished = meta["dates"]["exported"]
    crate.root_dataset["identifier"] = meta["identifiers"]["campaign_id"]
    crate.root_dataset["dateCreated"] = meta["dates"]["created"]
    crate.license = crate.add(ContextEntity(crate, meta["licence"]["url"], properties={"@type": "CreativeWork", "name": meta["licence"]["id"]}))

    people = []
    for i, c in enumerate(meta["creators"], start=1):
        props: dict[str, Any] = {"name": c["name"]}
        if c.get("affiliation"):
            org = crate.add(ContextEntity(crate, f"#organization-{i}", properties={"@type": "Organization", "name": c["affiliation"]}))
            props["affiliation"] = org
        ident = f"https://orcid.org/{c['orcid']}" if c.get("orcid") else f"#creator-{i}"
        people.append(crate.add(Person(crate, ident, properties=props)))
    if people:
        crate.creator = people

    files = {}
    for f in meta["files"]:
        suffix = Path(f["name"]).suffix
        fmt, conforms = FORMATS.get(suffix, ("application/octet-stream", None))
        props = {"name": f["name"], "description": f["description"], "encodingFormat": fmt, "contentSize": str(f["bytes"]),
                 "sha256": f["sha256"]}
        if conforms:
            props["conformsTo"] = {"@id": conforms}
        files[f["name"]] = crate.add_file(out / f["name"], dest_path=f["name"], properties=props)
    metadata_json = out / "metadata.json"
    if metadata_json.is_file() and "metadata.json" not in files:
        files["metadata.json"] = crate.add_file(metadata_json, dest_path="metadata.json", properties={
            "name": "metadata.json", "encodingFormat": "application/json",
            "description": "the same description as plain fields (title, creators, dates, instruments, software, files)"})

    software = [crate.add(ContextEntity(crate, f"#software-{s['name']}", properties={
        "@type": "SoftwareApplication", "name": s["name"], "version": str(s["version"])})) for s in meta["software"]]
    devices = []
    for station in meta["instruments"].get("stations", []):
        for dev in station["devices"]:
            devices.append(crate.add(ContextEntity(crate, f"#instrument-{dev['name']}", properties={
                "@type": "IndividualProduct", "name": dev["name"],
                "description": f"a device of station {station['station']} of lab {meta['instruments']['lab'].get('name', '')!r} "
                               f"({meta['instruments']['lab'].get('kind', '')}); readings: {', '.join(dev['readings'])}",
                "additionalType": "LaboratoryInstrument"})))
    action: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"labflow campaign {campaign['name']}",
        "description": f"{campaign['experiments']} experiments ({campaign['completed']} completed, {campaign['failed']} failed) "
                       f"planned by the {campaign['planner']!r} planner, seed {campaign['seed']}",
        "instrument": software + devices,
        "object": [files[n] for n in INPUT_FILES if n in files],
        "result": [e for n, e in files.items() if Path(n).suffix in DATA_FILES],
    }
    if meta["dates"].get("created"):
        action["startTime"] = meta["dates"]["created"]
    if meta["dates"].get("finished"):
        action["endTime"] = meta["dates"]["finished"]
    if people:
        action["agent"] = people
    crate.add(ContextEntity(crate, f"#campaign-{meta['identifiers']['campaign_id']}", properties=action))
    crate.metadata.write(out)
    return out / RO_CRATE_FILE
