"""Fidelity routing: which stations may run a candidate, and what one experiment costs.

With ``routes`` (a value of the candidate's ``route_parameter``, e.g. its fidelity -> the names
of the stations that measure at it), a candidate runs only on those stations; a queued candidate
waits for one of them rather than run elsewhere (while it waits, the loop asks the planner for a
candidate at the free station's route value, when the planner can take one: :meth:`keys_for`). ``costs`` (same keys) gives each experiment's
cost, recorded in the ``cost`` column and summed per key in ``CampaignState.cost``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from labflow.errors import LabflowError
from labflow.records import Candidate

__all__ = ["Routing"]


class Routing:
    """Routes (route value -> station names) and costs (route value -> cost of one experiment).

    Raises :class:`~labflow.errors.LabflowError` when a route names a station the campaign lacks.
    Without routes every station runs every candidate.
    """

    def __init__(self, routes: Mapping[str, Sequence[str]] | None, route_parameter: str | None,
                 costs: Mapping[str, float] | None, stations: Collection[str]) -> None:
        self.route_parameter = route_parameter
        self.routes = {k: list(v) for k, v in (routes or {}).items()}
        self.costs = dict(costs or {})
        for key, names in self.routes.items():
            if not names or not set(names) <= set(stations):
                raise LabflowError(f"route {key!r} names stations {names}; the campaign has {sorted(stations)}")

    def match(self, queue: Sequence[Candidate], free: Sequence[str]) -> tuple[int, int] | None:
        """(queue index, free-station index) of the first queued candidate a free station may run."""
        if not self.routes:
            return (0, 0) if queue and free else None
        for i, candidate in enumerate(queue):
            allowed = self.routes.get(str(candidate.params.get(self.route_parameter))) if self.route_parameter else None
            for j, station in enumerate(free):
                if allowed is None or station in allowed:
                    return (i, j)
        return None

    def keys_for(self, station: str) -> list[str]:
        """The route values (e.g. fidelities) whose candidates ``station`` may run, in the routes' order."""
        return [key for key, names in self.routes.items() if station in names]

    def metadata(self, candidate: Candidate) -> dict[str, Any]:
        """The route value for the run's start document (e.g. ``{"fidelity": "low"}``), if the candidate has one."""
        if self.route_parameter is not None and self.route_parameter in candidate.params:
            return {self.route_parameter: candidate.params[self.route_parameter]}
        return {}

    def cost_key(self, params: Mapping[str, Any], station: str) -> str | None:
        """The cost key of an experiment: its route value, or the one route that holds its station."""
        if self.route_parameter is not None and self.route_parameter in params:
            return str(params[self.route_parameter])
        keys = [k for k, v in self.routes.items() if station in v]
        if len(keys) == 1:
            return keys[0]
        if len(self.costs) == 1:
            return next(iter(self.costs))
        return None

    def cost(self, key: str | None) -> float:
        """The cost of one experiment under ``key`` (NaN when unknown)."""
        return self.costs.get(key, math.nan) if key is not None else math.nan
