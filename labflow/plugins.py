"""Plug-ins by entry points: small registries that merge labflow's built-ins with what installed
packages declare, as Prefect and pytest do.

Three groups are read (``importlib.metadata.entry_points``): ``labflow.planners`` (a
:class:`~labflow.planners.base.Planner` subclass), ``labflow.lab_kinds`` (a
:class:`~labflow.lab.LabConfig` subclass) and ``labflow.executors`` (an executor class,
:mod:`labflow.executors`). A package declares them in its ``pyproject.toml``::

    [project.entry-points."labflow.planners"]
    my-planner = "my_package.planner:MyPlanner"

Entries are loaded on first use only, so an installed plug-in costs nothing until a recipe names
it. A built-in name cannot be taken over by a plug-in (the built-in wins, with a warning). This
module uses the standard library only.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

__all__ = ["Registry", "load_object"]

T = TypeVar("T")


def load_object(ref: str) -> object:
    """The object a ``"package.module:attribute"`` reference names."""
    module, _, attr = ref.partition(":")
    obj: object = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names -> objects of one kind: built-ins (objects or lazy ``"module:attr"`` references),
    then the entry points of ``group``, then whatever :meth:`register` adds at run time."""

    def __init__(self, group: str, builtins: Mapping[str, T | str], *, what: str) -> None:
        self.group = group
        self.what = what
        self._builtins: dict[str, T | str] = dict(builtins)
        self._registered: dict[str, T] = {}
        self._loaded: dict[str, T] = {}

    def _entry_points(self) -> dict[str, Callable[[], T]]:
        found: dict[str, Callable[[], T]] = {}
        for ep in entry_points(group=self.group):
            if ep.name in self._builtins:
                warnings.warn(f"{ep.value} declares the {self.what} {ep.name!r} ({self.group}), a built-in name: ignored",
                              stacklevel=3)
                continue
            found[ep.name] = ep.load
        return found

    def names(self) -> list[str]:
        """Every known name: built-ins first (in their order), then plug-ins, sorted."""
        extra = sorted((set(self._entry_points()) | set(self._registered)) - set(self._builtins))
        return [*self._builtins, *extra]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def register(self, name: str, obj: T) -> T:
        """Add (or replace) ``name`` at run time; returns ``obj`` (usable as a decorator helper)."""
        self._registered[name] = obj
        self._loaded.pop(name, None)
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; raises :class:`LookupError` naming the known ones."""
        if name in self._loaded:
            return self._loaded[name]
        if name in self._registered:
            obj = self._registered[name]
        elif name in self._builtins:
            ref = self._builtins[name]
            obj = load_object(ref) if isinstance(ref, str) else ref  # type: ignore[assignment]
        else:
            loader = self._entry_points().get(name)
            if loader is None:
                raise LookupError(f"unknown {self.what} {name!r}; known: {self.names()}")
            obj = loader()
        self._loaded[name] = obj  # type: ignore[assignment]
        return obj  # type: ignore[return-value]
