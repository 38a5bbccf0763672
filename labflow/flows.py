"""Moved: the Prefect executor is :mod:`labflow.executors.prefect`; this path stays as a re-export."""

from labflow.executors.prefect import PrefectExecutor, experiment_task, run_as_flow

__all__ = ["PrefectExecutor", "experiment_task", "run_as_flow"]
