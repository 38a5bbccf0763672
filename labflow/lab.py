"""Lab configs: a YAML description of a lab, validated into a frozen model and built into devices.

A lab config names its ``kind``; the schema is a union discriminated on ``kind``, so new
kinds register a model with :func:`register_lab_kind` and need no change here. Each transport
keeps its kinds in its own package: ``simulated`` and ``dataset`` in :mod:`labflow.sim.lab`,
``remote`` (ZeroMQ device servers) in :mod:`labflow.remote.lab`, ``epics`` in
:mod:`labflow.epics.lab`; plug-ins add theirs through the ``labflow.lab_kinds`` entry points.
A simulated lab::

    name: sim-materials
    kind: simulated
    stations: 2                 # identical stations, each a synthesis station + an instrument
    landscape: {name: materials, noise_std: {product_yield: 0.5}}
    durations: {set: 5 s, synthesize: 20 min, measure: 5 min}
    time_scale: 0               # 0 = instant, 1 = real time, 0.001 = a thousand times faster
    failure_rate: 0.0

Instead of ``stations: N`` (stations ``station1..N``), a simulated lab may list *station sets*,
groups of identical stations with their own landscape options, noise, durations and failure
rate, named ``<set><i>`` (e.g. a cheap simulation beside the real experiment, which a
multi-fidelity recipe routes to by name)::

    landscape: {name: materials_mf}
    station_sets:
      - {name: simulation, stations: 2, options: {fidelity: simulation}, durations: {synthesize: 2 min, synthesize_from: null}}
      - {name: experiment, stations: 1}

:func:`load_lab_config` reads one with ``yaml.safe_load`` and reports *every* problem at once
(a :class:`~labflow.errors.RecipeError` whose ``problems`` carry dotted paths).
:meth:`LabConfig.build` turns a config into a :class:`Lab` of :class:`Station` s.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import pandas as pd
import pint
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from labflow.errors import DeviceError, Problem, RecipeError
from labflow.sim.base import Input, Landscape, Output
from labflow.sim.devices import DurationModel
from labflow.units import ureg

__all__ = [
    "FoundLab",
    "Lab",
    "LabConfig",
    "LabNotFoundError",
    "LabPlace",
    "SimulatedLabConfig",  # noqa: F822 - resolved by __getattr__ (labflow.sim.lab)
    "Station",
    "available_labs",
    "find_lab_config",
    "lab_search_path",
    "lab_kinds",
    "load_lab_config",
    "parse_lab_config",
    "register_lab_kind",
]


# The simulated kind's models live in labflow.sim.lab (the sim transport's package); these names
# stay importable from here, resolved on first use (labflow.sim.lab imports this module).
_MOVED_TO_SIM = ("LandscapeConfig", "SimulatedLabConfig", "StationSetConfig")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_SIM:
        from labflow.sim import lab as sim_lab

        return getattr(sim_lab, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- field types -----------------------------------------------------------------------
def _quantity(value: Any, unit: str, what: str) -> float:
    """``value`` (number in ``unit``, or pint text) as a float in ``unit``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {what} such as '5 min', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a {what} such as '5 min', got {type(value).__name__} {value!r}")
    try:
        q = ureg.Quantity(value.strip())
    except pint.errors.UndefinedUnitError as exc:
        names = exc.unit_names if isinstance(exc.unit_names, (list, tuple)) else [exc.unit_names]
        raise ValueError(f"unknown unit {', '.join(repr(n) for n in names)} in {value!r}") from None
    except Exception:
        raise ValueError(f"cannot read {value!r} as a {what}; write a number and a unit, e.g. '5 min'") from None
    if not isinstance(q, pint.Quantity):
        return float(q)
    try:
        return float(q.to(unit).magnitude)
    except pint.errors.DimensionalityError:
        dim = ureg.get_dimensionality(q.units)
        raise ValueError(
            f"{value!r} is not a {what}: its unit {q.units:~} has dimension {dim or 'dimensionless'}, expected {ureg.get_dimensionality(unit)}"
        ) from None


def _duration(value: Any) -> float:
    s = _quantity(value, "s", "duration")
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"a duration must be finite and >= 0, got {value!r}")
    return s


_SEP, _KEY = "\x1f", "\x1e"  # several problems in one validator message: "key<_KEY>text<_SEP>..."

Duration = Annotated[float, BeforeValidator(_duration)]
"""A duration: pint text ('20 min') or a number of seconds; stored in seconds."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DurationsConfig(_Model):
    """Simulated duration of each step (pint text or seconds); see :class:`labflow.sim.DurationModel`."""

    set: Duration = 0.0
    synthesize: Duration = 0.0
    measure: Duration = 0.0
    synthesize_from: str | None = "time"

    def model(self) -> DurationModel:
        return DurationModel(self.set, self.synthesize, self.measure, self.synthesize_from)


class LabConfig(_Model):
    """Base of every lab kind: a ``name`` and a ``kind``; subclasses implement :meth:`build`."""

    name: str = Field(min_length=1)
    kind: str

    def build(self, seed: int, time_scale: float | None = None) -> Lab:
        """Build the lab's devices. ``seed`` seeds every random generator of the lab."""
        raise NotImplementedError(f"lab kind {self.kind!r} cannot be built")

    def limits(self) -> tuple[dict[str, Input], dict[str, Output]]:
        """The parameters the lab's stations take (device units, hard limits) and the outputs they
        measure, known without moving anything: recipes are validated against them."""
        lab = self.build(seed=0, time_scale=0.0)
        try:
            return lab.parameter_limits(), lab.outputs()
        finally:
            lab.close()


# -- the kinds registry: a union discriminated on `kind` -------------------------------------
_KINDS: dict[str, type[LabConfig]] = {}
_adapter: TypeAdapter | None = None


def register_lab_kind(model: type[LabConfig]) -> type[LabConfig]:
    """Add a lab kind (a :class:`LabConfig` subclass with ``kind: Literal["..."]``). Usable as a decorator."""
    global _adapter
    kind = model.model_fields["kind"].default
    if not isinstance(kind, str):
        raise TypeError(f"{model.__name__} needs a default for its Literal 'kind' field")
    _KINDS[kind] = model
    _adapter = None
    return model


def lab_kinds() -> list[str]:
    """Every lab kind a lab config may name: the built-ins and installed plug-ins."""
    _load_builtin_kinds()
    return sorted(_KINDS)


# Lab kinds that ship with labflow live beside their transports (devices, lab kind, server in one
# package); imported on first use so that loading a simulated lab does not import ZeroMQ or EPICS.
_BUILTIN_KIND_MODULES = ["labflow.sim.lab", "labflow.remote.lab", "labflow.epics.lab", "labflow.manual.lab"]  # sim first: `simulated`, `dataset`
LAB_KINDS_GROUP = "labflow.lab_kinds"
_entry_points_seen: set[str] = set()  # "name = value" of each entry point already registered (or refused)


def _load_builtin_kinds() -> None:
    """Import the built-in kinds' modules (they register themselves), then the plug-ins: each entry
    point of the ``labflow.lab_kinds`` group names a :class:`LabConfig` subclass, registered here.
    The group is read on every call, so a package installed while the process runs is found too."""
    import importlib
    from importlib.metadata import entry_points

    while _BUILTIN_KIND_MODULES:
        importlib.import_module(_BUILTIN_KIND_MODULES.pop(0))
    for ep in entry_points(group=LAB_KINDS_GROUP):
        key = f"{ep.name} = {ep.value}"
        if key in _entry_points_seen:
            continue
        _entry_points_seen.add(key)
        model = ep.load()
        if not (isinstance(model, type) and issubclass(model, LabConfig)):
            raise TypeError(f"entry point {key} ({LAB_KINDS_GROUP}) is not a LabConfig subclass")
        kind = model.model_fields["kind"].default
        if kind in _KINDS and _KINDS[kind] is not model:
            warnings.warn(f"{ep.value} declares the lab kind {kind!r}, already known: ignored", stacklevel=2)
            continue
        register_lab_kind(model)


def _lab_adapter() -> TypeAdapter:
    global _adapter
    _load_builtin_kinds()
    if _adapter is None:
        union = Union[tuple(_KINDS[k] for k in sorted(_KINDS))]  # type: ignore[valid-type]  # sorted: the schema does not depend on import order
        _adapter = TypeAdapter(Annotated[union, Field(discriminator="kind")])
    return _adapter


def _problems(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        kind = err["type"]
        if kind == "union_tag_not_found":
            out.append(Problem("kind", f"missing; expected one of {lab_kinds()}"))
            continue
        if kind == "union_tag_invalid":
            got = err["ctx"].get("tag") if err.get("ctx") else None
            out.append(Problem("kind", f"unknown lab kind {got!r}; expected one of {lab_kinds()}"))
            continue
        if loc and loc[0] in _KINDS:  # the union's tag is not part of the path in the file
            loc = loc[1:]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "extra_forbidden":
            msg = "unknown field"
        path = ".".join(str(p) for p in loc)
        for part in msg.split(_SEP):
            key, found, text = part.partition(_KEY)
            out.append(Problem((f"{path}.{key}" if path else key) if found else path, text if found else part))
    return out


def parse_lab_config(data: Any, *, source: str | None = None) -> LabConfig:
    """Validate a mapping (e.g. from YAML) into the :class:`LabConfig` of its ``kind``.

    Raises :class:`~labflow.errors.RecipeError` listing every problem with its dotted path.
    """
    where = f" in {source}" if source else ""
    if not isinstance(data, Mapping):
        raise RecipeError(
            f"invalid lab config{where}",
            problems=[Problem("<root>", f"expected a mapping of fields, got {type(data).__name__}")],
            source=source,
        )
    try:
        return _lab_adapter().validate_python(dict(data))
    except ValidationError as exc:
        problems = _problems(exc)
        raise RecipeError(
            f"invalid lab config{where}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
            hint="see the packaged lab sim_materials (`labflow labs` shows where it is) for a complete example",
            problems=problems,
            source=source,
        ) from None


def load_lab_config(path: str | Path) -> LabConfig:
    """Read a YAML lab config (``yaml.safe_load`` only) and validate it.

    Raises :class:`~labflow.errors.RecipeError` (``source=str(path)``) listing every problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read lab config {path}: {exc.strerror or exc}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise RecipeError(f"lab config {path}: not a text file (byte {exc.start} is not UTF-8)", source=str(path),
                          hint="a lab config is a YAML text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise RecipeError(
            f"lab config {path} is not valid YAML{at}",
            problems=[Problem("<root>", str(getattr(exc, "problem", exc)))],
            source=str(path),
        ) from None
    return parse_lab_config(data, source=str(path))


# -- finding a lab config by name ----------------------------------------------------------
LABS_ENV = "LABFLOW_LABS"
"""Environment variable: folders (separated by ``os.pathsep``) searched for lab configs by name."""


@dataclass(frozen=True)
class LabPlace:
    """One folder searched for lab configs, and why it is searched (``origin``)."""

    folder: Path
    origin: str


@dataclass(frozen=True)
class FoundLab:
    """A lab config found by :func:`available_labs`: its name, file and the place it came from;
    ``shadowed_by`` is the file used instead when a place earlier in the search has the same name."""

    name: str
    path: Path
    origin: str
    shadowed_by: Path | None = None


def packaged_labs_folder() -> Path:
    """The simulated labs that ship inside the labflow package (``labflow/sim/labs``)."""
    from importlib.resources import files

    return Path(str(files("labflow") / "sim" / "labs"))


def _project_configs(start: Path) -> Path | None:
    """The ``configs/`` folder of the project holding ``start``: in ``start`` or the nearest folder above it."""
    for folder in (start, *start.parents):
        if (folder / "configs").is_dir():
            return folder / "configs"
    return None


def lab_search_path(recipe_dir: str | Path | None = None) -> list[LabPlace]:
    """The folders searched, in order, for a lab config given by bare name (``lab: sim_materials``):

    1. the recipe's own folder (its real location: symbolic links resolved);
    2. the project's ``configs/``: in the recipe's folder or the nearest folder above it, then
       ``./configs`` of the working directory;
    3. each folder of the ``LABFLOW_LABS`` environment variable (separated by ``os.pathsep``);
    4. the simulated labs packaged with labflow (``labflow/sim/labs``).

    Without ``recipe_dir`` (``labflow labs`` outside a recipe), the search starts at the working directory.
    """
    places: list[LabPlace] = []
    base = Path(recipe_dir).resolve() if recipe_dir is not None else None
    if base is not None:
        places.append(LabPlace(base, "beside the recipe"))
    project = _project_configs(base if base is not None else Path.cwd().resolve())
    if project is not None:
        places.append(LabPlace(project, "project configs/"))
    cwd_configs = (Path.cwd() / "configs").resolve()
    if cwd_configs.is_dir():
        places.append(LabPlace(cwd_configs, "./configs"))
    for entry in os.environ.get(LABS_ENV, "").split(os.pathsep):
        if entry.strip():
            places.append(LabPlace(Path(entry.strip()).expanduser().resolve(), LABS_ENV))
    places.append(LabPlace(packaged_labs_folder(), "packaged with labflow"))
    unique: list[LabPlace] = []
    for place in places:
        if all(place.folder != p.folder for p in unique):
            unique.append(place)
    return unique


def _is_bare_name(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not Path(ref).is_absolute()


def find_lab_config(ref: str, recipe_dir: str | Path | None = None) -> Path:
    """The lab config file a recipe's ``lab:`` names (its real path).

    A path (``../labs/my_lab.yaml``, ``/abs/lab.yaml``) is taken relative to the recipe's real
    folder. A bare name (``sim_materials`` or ``sim_materials.yaml``) is looked up as
    ``<name>.yaml`` in :func:`lab_search_path`, first match wins. Raises :class:`LabNotFoundError`
    listing every place searched.
    """
    base = Path(recipe_dir).resolve() if recipe_dir is not None else Path.cwd().resolve()
    if not _is_bare_name(ref):
        candidate = base / ref
        if candidate.is_file():
            return candidate.resolve()
        raise LabNotFoundError(ref, [(candidate, "relative to the recipe")])
    filename = ref if ref.endswith((".yaml", ".yml")) else f"{ref}.yaml"
    searched: list[tuple[Path, str]] = []
    for place in lab_search_path(recipe_dir):
        candidate = place.folder / filename
        if candidate.is_file():
            return candidate.resolve()
        searched.append((candidate, place.origin))
    raise LabNotFoundError(ref, searched)


def available_labs(recipe_dir: str | Path | None = None) -> list[FoundLab]:
    """Every lab config a recipe in ``recipe_dir`` (default: the working directory) can name,
    in search order; a name found again later is listed with ``shadowed_by`` set."""
    seen: dict[str, Path] = {}
    out: list[FoundLab] = []
    for place in lab_search_path(recipe_dir):
        if not place.folder.is_dir():
            continue
        for path in sorted(place.folder.glob("*.yaml")):
            if not _looks_like_lab(path):
                continue  # recipes and instrument-PC configs live beside lab configs; a lab declares its kind
            name = path.stem
            first = seen.get(name)
            out.append(FoundLab(name, path, place.origin, shadowed_by=first))
            seen.setdefault(name, path)
    return out


def _looks_like_lab(path: Path) -> bool:
    """A YAML file with a top-level ``kind:`` (lab configs have one, recipes do not)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, Mapping) and "kind" in data and "objectives" not in data


class LabNotFoundError(RecipeError):
    """A lab config named by a recipe is in none of the places searched (``searched``: path, origin)."""

    def __init__(self, ref: str, searched: list[tuple[Path, str]]) -> None:
        self.ref = ref
        self.searched = list(searched)
        places = "".join(f"\n    {path}  ({origin})" for path, origin in searched)
        super().__init__(
            f"lab config {ref!r} not found; searched, in order:{places}",
            hint=f"`labflow labs` lists the labs found from here; give a path relative to the recipe, or add a folder to {LABS_ENV}",
        )

    def __reduce__(self):
        return (self.__class__, (self.ref, self.searched))


# -- the built lab -------------------------------------------------------------------------
@dataclass
class Station:
    """One place where experiments run: a synthesis device and an instrument.

    ``synthesis`` and ``instrument`` are bluesky-protocol devices (see :mod:`labflow.plans`).
    """

    name: str
    synthesis: Any
    instrument: Any
    seed: int | None = None

    def reading_key(self, output: str) -> str:
        """The event-data key under which the instrument reports ``output``."""
        signal = getattr(self.instrument, output, None)
        return signal.name if signal is not None and hasattr(signal, "name") else f"{self.instrument.name}_{output}"

    def expected_duration(self, params: Mapping[str, Any]) -> float:
        """Simulated seconds one experiment with ``params`` takes (set + synthesize + measure).

        Raises :class:`~labflow.errors.DeviceError` when the devices cannot tell.
        """
        syn = getattr(self.synthesis, "expected_duration", None)
        ins = getattr(self.instrument, "expected_duration", None)
        if syn is None or ins is None:
            raise DeviceError(f"{self.name}: its devices do not predict their durations")
        return float(syn(params)) + float(ins())


class Lab:
    """A built lab: its stations, the landscape behind them (simulated labs), and ``close()``."""

    def __init__(
        self,
        name: str,
        stations: list[Station],
        *,
        landscape: Landscape | None = None,
        config: LabConfig | None = None,
        groups: Mapping[str, list[str]] | None = None,
    ) -> None:
        if not stations:
            raise ValueError(f"lab {name!r} has no stations")
        self.name = name
        self.stations = list(stations)
        self.landscape = landscape
        self.config = config
        self.groups = {k: list(v) for k, v in (groups or {}).items()}
        """Named groups of stations (station sets): group name -> station names."""
        self._closed = False

    def resolve_stations(self, names: list[str]) -> list[str]:
        """Station names for a list of station or group names (groups expand to their members)."""
        out: list[str] = []
        for n in names:
            for s in self.groups.get(n, [n]):
                if s not in out:
                    out.append(s)
        return out

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, stations={[s.name for s in self.stations]})"

    def station(self, name: str) -> Station:
        for s in self.stations:
            if s.name == name:
                return s
        raise KeyError(f"lab {self.name!r} has no station {name!r}; it has {[s.name for s in self.stations]}")

    def parameter_limits(self) -> dict[str, Input]:
        """Parameter name -> :class:`~labflow.sim.base.Input` (device unit, hard limits or choices).

        Read from the landscape when there is one, else from the first station's
        ``describe()`` -- what recipes are validated against before anything moves.
        """
        if self.landscape is not None:
            return {i.name: i for i in self.landscape.inputs}
        syn = self.stations[0].synthesis
        out = {}
        for name in getattr(syn, "parameter_names", []):
            d = next(iter(getattr(syn, name).describe().values()))
            enum = d.get("enum_strs")
            out[name] = Input(name, d.get("lower_ctrl_limit"), d.get("upper_ctrl_limit"), d.get("units", ""), tuple(enum) if enum else None)
        return out

    def outputs(self) -> dict[str, Output]:
        """Output name -> :class:`~labflow.sim.base.Output` (unit, direction)."""
        if self.landscape is not None:
            return {o.name: o for o in self.landscape.outputs}
        ins = self.stations[0].instrument
        return {o.name: o for o in getattr(ins, "outputs", ())}

    def choices(self) -> pd.DataFrame | None:
        """For pool landscapes: the points still available; else None."""
        return self.landscape.choices() if self.landscape is not None else None

    def close(self) -> None:
        """Stop anything in progress and release the devices. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for s in self.stations:
            for dev in (s.synthesis, s.instrument):
                try:
                    dev.stop()
                except Exception:  # closing must not fail half-way
                    pass
                destroy = getattr(dev, "destroy", None)
                if destroy is not None:
                    destroy()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def lab_limits(config: LabConfig) -> tuple[dict[str, Input], dict[str, Output]]:
    """Parameters (with device units and limits) and outputs of a lab config, without moving anything."""
    return config.limits()


def lab_station_groups(config: LabConfig) -> dict[str, list[str]]:
    """Every name a recipe may route to: each station's own name and each station set's name,
    mapped to station names. Simulated labs answer from the config; other kinds are built
    (without moving anything) and asked."""
    groups_of = getattr(config, "station_groups", None)
    if groups_of is not None:
        groups = groups_of()
        out = {name: [name] for names in groups.values() for name in names}
        if getattr(config, "station_sets", None):
            out.update(groups)
        return out
    lab = config.build(seed=0, time_scale=0.0)
    try:
        out = {s.name: [s.name] for s in lab.stations}
        out.update(lab.groups)
        return out
    finally:
        lab.close()

