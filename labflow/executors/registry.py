"""The executor registry: built-in executors and the ``labflow.executors`` entry points.

An executor class is built as ``cls(policy=..., workers=...)`` (``workers``: one per station).
"""

from __future__ import annotations

from typing import Any

from labflow.campaign.policy import AttemptPolicy
from labflow.plugins import Registry

__all__ = ["EXECUTORS", "executor_class", "executor_names", "make_executor"]

EXECUTORS: Registry[type] = Registry(
    "labflow.executors",
    {
        "prefect": "labflow.executors.prefect:PrefectExecutor",
        "local": "labflow.executors.local:LocalExecutor",
        "virtual": "labflow.executors.virtual:VirtualTimeExecutor",
    },
    what="executor",
)


def executor_names() -> list[str]:
    """Every executor a recipe may name: the built-ins, then installed plug-ins."""
    return EXECUTORS.names()


def executor_class(name: str) -> type:
    """The executor class registered as ``name`` (:class:`LookupError` when unknown)."""
    return EXECUTORS.get(name)


def make_executor(name: str, *, policy: AttemptPolicy, workers: int, **options: Any) -> Any:
    """Build the executor ``name`` with the campaign's attempt ``policy`` and ``workers`` slots (one per station)."""
    return executor_class(name)(policy=policy, workers=workers, **options)
