"""Benchmark runs on a Dask distributed cluster: ``labflow bench --cluster local:N | ADDRESS``.

The runs of a sweep are independent, seeded campaigns in virtual time, so they spread over a
cluster as they spread over the processes of one machine: each run is one Dask task calling
:func:`labflow.bench.runner.run_one`, whose result depends only on its arguments. The caller
appends each result to ``runs.jsonl`` as it comes back, so an interrupted sweep resumes the same
way whichever machines ran it, and a run gives the same trace on a cluster as in one process.

``local:N`` starts a :class:`distributed.LocalCluster` of ``N`` worker processes with one
thread each (Dask's nanny already sets ``OMP_NUM_THREADS=1`` in them; torch is limited to one
thread too). Any other value is the address of a running scheduler (``tcp://host:8786``), whose
workers must have the same labflow installed; the datasets are read on the workers.

Dask is an optional dependency (the ``cluster`` extra: ``pip install labflow[cluster]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["ClusterAddress", "ClusterUnavailable", "parse_cluster", "run_on_cluster"]


class ClusterUnavailable(RuntimeError):
    """The cluster cannot run the sweep: Dask is not installed, no scheduler answers, it has no
    workers, or they run another labflow. Nothing was run on it."""

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$|^[A-Za-z0-9_.\-\[\]:]+:\d+$")


@dataclass(frozen=True)
class ClusterAddress:
    """Where bench runs go: a local cluster of ``workers`` processes, or a scheduler at ``address``."""

    workers: int | None = None
    address: str | None = None

    @property
    def is_local(self) -> bool:
        return self.workers is not None

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.is_local else str(self.address)


def parse_cluster(text: str) -> ClusterAddress:
    """``local:N`` (N >= 1 worker processes here) or a scheduler address (``tcp://host:8786``, ``host:8786``).

    Raises :class:`ValueError` naming the value and what was expected.
    """
    value = text.strip()
    m = _LOCAL.match(value)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ValueError(f"--cluster local:N needs N >= 1 worker processes, got {text!r}")
        return ClusterAddress(workers=n)
    if value.startswith("local"):
        raise ValueError(f"--cluster takes local:N with N a whole number of worker processes (e.g. local:2), got {text!r}")
    if not _ADDRESS.match(value):
        raise ValueError(f"--cluster takes local:N or a Dask scheduler address such as tcp://10.0.0.5:8786, got {text!r}")
    return ClusterAddress(address=value)


def _single_threaded(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Run ``fn(**kwargs)`` on a worker with torch limited to one thread (one process per core:
    more threads per process only contend)."""
    import torch

    torch.set_num_threads(1)
    return fn(**kwargs)


def _labflow_version() -> str:
    import labflow

    return getattr(labflow, "__version__", "unknown")


@contextmanager
def _client(cluster: ClusterAddress, *, connect_timeout: float) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # the optional extra is missing
        raise ClusterUnavailable("labflow bench --cluster needs Dask distributed: pip install 'labflow[cluster]'") from exc
    if cluster.is_local:
        with LocalCluster(n_workers=cluster.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as local, Client(local) as client:
            yield client
    else:
        try:
            client = Client(cluster.address, timeout=connect_timeout)
        except OSError as exc:  # refused, unreachable or timed out (TimeoutError is an OSError)
            raise ClusterUnavailable(f"no Dask scheduler answered at {cluster.address} within {connect_timeout:g} s ({exc})") from None
        with client:
            yield client


def run_on_cluster(
    cluster: ClusterAddress,
    fn: Callable[..., Any],
    jobs: Iterable[Mapping[str, Any]],
    finished: Callable[[Any], None],
    *,
    connect_timeout: float = 30.0,
) -> None:
    """Run ``fn(**job)`` for every job on ``cluster``, calling ``finished(result)`` here as each comes back.

    Jobs are submitted together and results handled in completion order (the caller sorts them);
    a job that raises on a worker raises here, after the results that came back before it were
    handed to ``finished``. Each job is a separate Dask task (``pure=False``: never deduplicated).
    """
    from distributed import as_completed

    jobs = list(jobs)
    if not jobs:
        return
    with _client(cluster, connect_timeout=connect_timeout) as client:
        if not cluster.is_local:
            versions = client.run(_labflow_version)
            if not versions:
                raise ClusterUnavailable(f"the Dask scheduler at {cluster.address} has no workers; start some with: dask worker {cluster.address}")
            here = _labflow_version()
            other = {w: v for w, v in versions.items() if v != here}
            if other:
                raise ClusterUnavailable(f"Dask workers run another labflow version than this machine ({here}): {other}; "
                                   "install the same labflow on every worker")
        futures = [client.submit(_single_threaded, fn, dict(job), pure=False) for job in jobs]
        for future in as_completed(futures):
            finished(future.result())
