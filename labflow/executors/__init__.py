"""Executors: they decide *when and where* an experiment runs, nothing else.

Every executor applies the same attempt rule (:class:`~labflow.campaign.policy.AttemptPolicy`:
retries, sample faults never retried) and hands results back in the order they finish; so a
campaign's records are the same whichever runs it (``tests/test_executor_equivalence.py``).

Built in: ``local`` (threads, real time), ``virtual`` (a discrete-event simulation in virtual
time), ``prefect`` (each experiment a Prefect task in a flow). More come from installed
packages through the ``labflow.executors`` entry-point group (``docs/how-to/write-an-executor.md``);
:func:`executor_names` lists them all and :func:`make_executor` builds one by name.
"""

from __future__ import annotations

from labflow.campaign.executor import Executor
from labflow.executors.base import BaseExecutor
from labflow.executors.registry import EXECUTORS, executor_class, executor_names, make_executor

__all__ = ["EXECUTORS", "BaseExecutor", "Executor", "executor_class", "executor_names", "make_executor"]
