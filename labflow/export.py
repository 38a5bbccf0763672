"""A campaign as a research-data package, ready to deposit (Zenodo, a university repository, ...).

``labflow export FILE.h5 -o DIR`` (or :func:`export_campaign`) writes into a new folder::

    DIR/
      <campaign file>.h5      the provenance file, byte for byte (its sha256 is in metadata.json)
      experiments.csv         one row per experiment; units in the header: "temperature [degC]"
      suggestions.csv         one row per planner decision (planner, generator, latency [s], ...)
      recipe.yaml             the recipe as written
      recipe.resolved.json    the recipe as run: validated, defaults filled in, command-line overrides applied
                              (metadata.json's campaign.overrides lists each: as written, as run)
      lab.json                the lab config the campaign ran on
      metadata.json           what a repository asks for: title, creators, dates, instruments,
                              software versions, licence, keywords, and every file's size and sha256
      README.md               what each file is and how to read it
      ro-crate-metadata.json  the same as an RO-Crate (JSON-LD, schema.org): files, software,
                              instruments, people, and the campaign as a CreateAction
                              (:mod:`labflow.ro_crate`), for research-data platforms and registries

The CSV is plain: comma-separated, UTF-8, a header row, ``.`` as decimal mark, empty cells
for missing values. :func:`read_experiments_csv` reads it back with its units.

``metadata.json`` uses plain field names; their DataCite / Zenodo equivalents are listed in
``docs/reference/export.md``. Creators cannot be known from the file: give them
(``--creator "Family, Given; Affiliation; ORCID"``), or the package says it is not ready to
deposit (a warning, and ``"ready_to_deposit": false``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labflow.errors import LabflowError
from labflow.ro_crate import write_ro_crate
from labflow.space import Categorical, Integer
from labflow.store.columns import BOOKKEEPING, IDENTITY, TEXT_COLUMNS
from labflow.store.provenance import CampaignRecord, package_versions, read_campaign

__all__ = ["ExportedPackage", "METADATA_SCHEMA", "build_metadata", "export_campaign", "parse_creator", "read_experiments_csv", "unit_header"]

METADATA_SCHEMA = "labflow-export/1"
LICENCE_URLS = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "ODC-By-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "MIT": "https://opensource.org/licenses/MIT",
}
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_HEADER = re.compile(r"^(?P<name>.*?) \[(?P<unit>[^\[\]]*)\]$")
LEADING = ["n", *IDENTITY]
TRAILING = list(BOOKKEEPING)


@dataclass
class ExportedPackage:
    """What :func:`export_campaign` wrote."""

    directory: Path
    files: list[Path]
    metadata: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def parse_creator(text: str) -> dict[str, str]:
    """``"Curie, Marie; Sorbonne; 0000-0002-1825-0097"`` -> ``{"name", "affiliation", "orcid"}`` (the last two optional)."""
    parts = [p.strip() for p in str(text).split(";")]
    if not parts or not parts[0]:
        raise LabflowError(f"creator {text!r} has no name", hint="write 'Family, Given; Affiliation; ORCID'")
    out = {"name": parts[0]}
    for extra in parts[1:]:
        if not extra:
            continue
        m = _ORCID.match(extra)
        if m:
            out["orcid"] = m.group(1)
        elif "affiliation" not in out:
            out["affiliation"] = extra
        else:
            raise LabflowError(f"creator {text!r}: cannot read {extra!r}", hint="write 'Family, Given; Affiliation; ORCID'")
    return out


def unit_header(name: str, unit: str | None) -> str:
    """The CSV header of a column: ``"temperature [degC]"``, or ``name`` when it has no unit."""
    return f"{name} [{unit}]" if unit else name


def read_experiments_csv(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read an exported ``experiments.csv``: the table with plain column names, and ``{column: unit}``."""
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"uid": str, "station": str, "reason": str})
    units, names = {}, []
    for col in df.columns:
        m = _HEADER.match(col)
        if m:
            names.append(m.group("name"))
            units[m.group("name")] = m.group("unit")
        else:
            names.append(col)
    df.columns = names
    for col in TEXT_COLUMNS:
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    return df, units


def _experiments_frame(rec: CampaignRecord) -> pd.DataFrame:
    exp = rec.experiments.copy()
    exp.insert(0, "n", np.arange(1, len(exp) + 1))
    middle = rec.space.names + [o.name for o in rec.objectives]
    order = [c for c in LEADING if c in exp] + middle + [c for c in TRAILING if c in exp]
    order += [c for c in exp.columns if c not in order]
    exp = exp[order]
    for p in rec.space.parameters:
        if isinstance(p, Integer):
            exp[p.name] = exp[p.name].astype("int64")
    return exp


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _iso(text: Any) -> str | None:
    """'2025-01-01T12:00:00+0100' -> '2025-01-01T12:00:00+01:00' (ISO 8601 as repositories want it)."""
    if not text:
        return None
    try:
        return _dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z").isoformat()
    except ValueError:
        return str(text)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _instruments(path: Path, rec: CampaignRecord) -> list[dict[str, Any]]:
    from labflow.report.data import _devices

    devices = _devices(path)
    stations = sorted({str(s) for s in rec.experiments.get("station", []) if str(s)})
    out = []
    for s in stations:
        mine = {d: keys for d, keys in devices.items() if d == s or d.startswith(f"{s}_")}
        out.append({"station": s, "devices": [{"name": d, "readings": keys} for d, keys in sorted(mine.items())]})
    return out


def build_metadata(
    rec: CampaignRecord,
    *,
    title: str | None = None,
    creators: list[dict[str, str]] | None = None,
    licence: str = "CC-BY-4.0",
    keywords: list[str] | None = None,
) -> dict[str, Any]:
    """The package's ``metadata.json`` content (without the file list)."""
    a = rec.attrs
    name = str(a.get("campaign", "") or rec.recipe.get("name", "campaign"))
    description = str(rec.recipe.get("description", "") or "")
    summary = {}
    try:
        summary = json.loads(a["summary"]) if a.get("summary") else {}
    except (TypeError, ValueError):
        summary = {}
    params = []
    for p in rec.space.parameters:
        d: dict[str, Any] = {"name": p.name, "type": p.kind}
        if isinstance(p, Categorical):
            d["choices"] = list(p.choices)
        else:
            d.update({"unit": p.unit, "low": p.low, "high": p.high})
            if getattr(p, "log", False):
                d["log"] = True
        params.append(d)
    lab_cfg = rec.lab or {}
    return {
        "schema": METADATA_SCHEMA,
        "title": title or f"labflow campaign {name}" + (f": {description}" if description else ""),
        "description": (
            f"{description} " if description else ""
        ) + (f"A closed-loop campaign run with labflow: {len(rec.experiments)} experiments planned by the "
             f"'{a.get('planner', '')}' planner (seed {a.get('seed', '')}) on the lab '{lab_cfg.get('name', '?')}' "
             f"({lab_cfg.get('kind', '?')}). The HDF5 file holds every bluesky document, planner decision and reading with units."),
        "creators": list(creators or []),
        "resource_type": "Dataset",
        "dates": {"created": _iso(a.get("created")), "finished": _iso(a.get("finished")),
                  "exported": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat()},
        "licence": {"id": licence, "url": LICENCE_URLS.get(licence, f"https://spdx.org/licenses/{licence}.html")},
        "keywords": list(dict.fromkeys([*(keywords or []), "self-driving laboratory", "Bayesian optimization", "labflow", name])),
        "identifiers": {"campaign_id": a.get("campaign_id", ""), "recipe_hash": a.get("recipe_hash", "")},
        "instruments": {"lab": {"name": lab_cfg.get("name", ""), "kind": lab_cfg.get("kind", "")}, "stations": []},
        "software": [{"name": k, "version": v} for k, v in sorted(rec.versions.items())],
        "exported_with": {"name": "labflow", "version": package_versions().get("labflow", "")},
        "campaign": {
            "name": name,
            "planner": a.get("planner", ""),
            "seed": _plain(a.get("seed")),
            "budget": rec.recipe.get("budget"),
            "executor": rec.executor,
            "overrides": rec.overrides,
            "state": rec.state,
            "experiments": int(len(rec.experiments)),
            "completed": int(len(rec.completed)),
            "failed": int(len(rec.failed)),
            "makespan_s": _plain(summary.get("makespan_s")),
            "parameters": params,
            "objectives": [o.to_dict() for o in rec.objectives],
            "best": rec.best(),
            "file_format": f"{a.get('format', '')} {a.get('format_version', '')}".strip(),
        },
        "ready_to_deposit": bool(creators),
    }


def export_campaign(
    path: str | Path,
    out_dir: str | Path,
    *,
    title: str | None = None,
    creators: list[dict[str, str]] | None = None,
    licence: str = "CC-BY-4.0",
    keywords: list[str] | None = None,
) -> ExportedPackage:
    """Write the research-data package of the campaign file ``path`` into ``out_dir`` (see the module docstring).

    ``out_dir`` must not exist or be empty: an export never overwrites. Raises
    :class:`~labflow.errors.ProvenanceError` when ``path`` is not a campaign file.
    """
    src = Path(path)
    rec = read_campaign(src)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LabflowError(f"{out} exists and is not an empty folder", hint="choose a new folder for the package; an export never overwrites")
    out.mkdir(parents=True, exist_ok=True)
    warnings = []
    if not creators:
        warnings.append("no creators given: add --creator 'Family, Given; Affiliation; ORCID' before depositing")
    if not rec.attrs.get("finished"):
        warnings.append("the campaign has no end summary (still running, or stopped early): the package holds what was recorded")

    files: dict[str, str] = {}
    h5 = out / src.name
    shutil.copy2(src, h5)
    files[h5.name] = "the HDF5 provenance file (NeXus-style groups, units attributes; open with h5py, h5web or silx)"

    exp = _experiments_frame(rec)
    exp.columns = [unit_header(c, rec.units.get(c)) for c in exp.columns]
    exp.to_csv(out / "experiments.csv", index=False, float_format="%.17g")
    files["experiments.csv"] = "one row per experiment in completion order; units in the column headers"

    sug = rec.suggestions.copy()
    if len(sug.columns):
        if "decision" not in sug.columns:
            sug.insert(0, "decision", np.arange(1, len(sug) + 1))
        units = {"t": "s", "latency": "s"}
        sug.columns = [unit_header(c, units.get(c)) for c in sug.columns]
        sug.to_csv(out / "suggestions.csv", index=False, float_format="%.17g")
        files["suggestions.csv"] = "one row per planner decision: planner, generator, candidates, state hash, latency"

    if len(rec.human):
        rec.human.to_csv(out / "human_acts.csv", index=False)
        files["human_acts.csv"] = ("people's acts on the campaign (approve, reject, edit, add, annotate, expire): who, when, "
                                   "which experiment, values before and after (JSON), comment, applied or refused and why")

    if len(rec.work_orders):
        orders = rec.work_orders.copy()
        for col in ("issued", "deadline"):  # epoch seconds in the file; a reader wants a date
            orders[col] = pd.to_datetime(orders[col], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        orders.columns = [unit_header(c, "s" if c == "timeout_s" else None) for c in orders.columns]
        orders.to_csv(out / "work_orders.csv", index=False)
        files["work_orders.csv"] = ("work orders issued to people by manual stations: id, experiment uid, attempt, station, "
                                    "parameters and their units (JSON), outputs to report (JSON), issued and deadline (UTC), "
                                    "timeout; each result is a report act in human_acts.csv")

    (out / "recipe.yaml").write_text(rec.recipe_text or "# the recipe text was not stored\n", encoding="utf-8")
    files["recipe.yaml"] = "the recipe as written"
    (out / "recipe.resolved.json").write_text(json.dumps(rec.recipe, indent=2, sort_keys=True) + "\n")
    files["recipe.resolved.json"] = ("the recipe as run: validated, defaults filled in" +
                                     (", with the run's overrides (" + ", ".join(f"{k} {v.get('run')}, recipe {v.get('recipe')}"
                                                                          for k, v in rec.overrides.items()) + ")" if rec.overrides else ""))
    (out / "lab.json").write_text(json.dumps(rec.lab, indent=2, sort_keys=True) + "\n")
    files["lab.json"] = "the lab config the campaign ran on"

    meta = build_metadata(rec, title=title, creators=creators, licence=licence, keywords=keywords)
    meta["instruments"]["stations"] = _instruments(src, rec)
    (out / "README.md").write_text(_readme(meta, files), encoding="utf-8")
    files["README.md"] = "this package's files and how to read them"
    meta["files"] = [
        {"name": n, "bytes": (out / n).stat().st_size, "sha256": _sha256(out / n), "description": d} for n, d in files.items()
    ]
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str, allow_nan=False) + "\n")
    crate = write_ro_crate(out, meta)
    paths = [out / n for n in files] + [out / "metadata.json", crate]
    return ExportedPackage(directory=out, files=paths, metadata=meta, warnings=warnings)


def _readme(meta: dict[str, Any], files: dict[str, str]) -> str:
    c = meta["campaign"]
    lines = [
        f"# {meta['title']}",
        "",
        meta["description"],
        "",
        f"Licence: {meta['licence']['id']} ({meta['licence']['url']}). Campaign id: {meta['identifiers']['campaign_id']}.",
        "",
        "## Files",
        "",
        *[f"- `{n}`: {d}" for n, d in files.items()],
        "- `metadata.json`: title, creators, dates, instruments, software versions, licence, and each file's sha256",
        "- `ro-crate-metadata.json`: the same as an RO-Crate (JSON-LD), for research-data platforms",
        "",
        "## Reading the data",
        "",
        "```python",
        "import pandas as pd",
        "experiments = pd.read_csv('experiments.csv')   # headers carry units: 'temperature [degC]'",
        "```",
        "",
        f"Parameters: {', '.join(p['name'] + (' [' + p['unit'] + ']' if p.get('unit') else '') for p in c['parameters'])}.",
        f"Objectives: {', '.join(o['name'] + ' (' + o['direction'] + ')' for o in c['objectives'])}.",
        "",
        "With labflow installed, `labflow inspect FILE.h5` summarizes the HDF5 file and `labflow report FILE.h5` draws it.",
        "",
    ]
    return "\n".join(lines)
